using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using P2PShare.Compute;
using P2PShare.Compute.Protocol;
using P2PShare.Tests.Support;
using Xunit.Abstractions;

namespace P2PShare.Tests.Compute;

/// <summary>Real worker processes, driven the way the scheduler drives them.</summary>
public sealed class WorkerProcessTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly ProgramCompiler _compiler = new(NullLogger<ProgramCompiler>.Instance);
    private readonly List<IWorker> _workers = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var worker in _workers) await worker.DisposeAsync();
    }

    private async Task<WorkerProcess> StartAsync(long heapLimit = 256 * Bytes.MiB)
    {
        var factory = new WorkerProcessFactory(
            Options.Create(new ComputeOptions { WorkerHeapLimitBytes = heapLimit }), NullLogger<WorkerProcessFactory>.Instance);
        var worker = await factory.StartWorkerAsync(CancellationToken.None);
        _workers.Add(worker);
        return worker;
    }

    private ExecutionRequest Request(string program, string args = "[]", string? function = null, int maxResult = 16 * 1024 * 1024, int maxOutput = 64 * 1024)
    {
        var compiled = _compiler.Compile(program, function);
        return new ExecutionRequest(compiled.Hash, compiled.Assembly, compiled.Function, args, maxResult, maxOutput);
    }

    private static Task<ExecutionResult> RunAsync(IWorker worker, ExecutionRequest request) =>
        worker.RunAsync(request, CancellationToken.None).WaitAsync(Deadline);

    [Fact]
    public async Task Square_of_7_is_49()
    {
        var watch = Stopwatch.StartNew();
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request("int main(int x) => x * x;", "[7]"));
        output.WriteLine($"start to hello {worker.StartupTime.TotalMilliseconds:0} ms; start to first answer {watch.ElapsedMilliseconds} ms");

        Assert.Equal(TaskErrorKind.None, result.ErrorKind);
        Assert.Equal("49", result.ResultJson);
        Assert.Null(result.Error);
        Assert.True(worker.IsHealthy);
        Assert.Equal(1, worker.ProgramsLoaded);
    }

    [Fact]
    public async Task A_warm_worker_runs_many_requests_and_loads_each_program_once()
    {
        var worker = await StartAsync();
        var square = Request("int main(int x) => x * x;", "[3]");
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < 20; i++) Assert.Equal("9", (await RunAsync(worker, square)).ResultJson);
        output.WriteLine($"warm round trip {watch.Elapsed.TotalMilliseconds / 20:0.00} ms");
        Assert.Equal("\"ab\"", (await RunAsync(worker, Request("string main(string a, string b) => a + b;", "[\"a\",\"b\"]"))).ResultJson);
        Assert.Equal(2, worker.ProgramsLoaded);
    }

    [Fact]
    public async Task Async_function_is_awaited()
    {
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request("async Task<int> main(int x) { await Task.Delay(20); return x + 1; }", "[41]"));
        Assert.Equal("42", result.ResultJson);
        var valueTask = await RunAsync(worker, Request("async ValueTask<string> main() { await Task.Yield(); return \"v\"; }"));
        Assert.Equal("\"v\"", valueTask.ResultJson);
        var plainTask = await RunAsync(worker, Request("async Task main() { await Task.Yield(); }"));
        Assert.Equal("null", plainTask.ResultJson);
    }

    [Fact]
    public async Task Structured_results_are_JSON()
    {
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request("record P(int X, string Name);\nP[] main(int[] xs) => xs.Select(x => new P(x, $\"n{x}\")).ToArray();", "[[1,2]]"));
        Assert.Equal("[{\"X\":1,\"Name\":\"n1\"},{\"X\":2,\"Name\":\"n2\"}]", result.ResultJson);
    }

    [Fact]
    public async Task Console_output_is_captured_and_capped()
    {
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request("int main() { Console.WriteLine(\"hello\"); Console.Write(42); return 1; }"));
        Assert.Equal("1", result.ResultJson);
        Assert.Equal("hello\n42", result.Output);

        var flood = await RunAsync(worker, Request("int main() { for (var i = 0; i < 100000; i++) Console.WriteLine(\"0123456789\"); return 2; }", maxOutput: 1000));
        Assert.Equal("2", flood.ResultJson);
        Assert.StartsWith("0123456789\n", flood.Output);
        Assert.Contains("[output truncated at 1000 bytes]", flood.Output);
        Assert.True(flood.Output.Length < 1100);

        // Output never leaks into the next run, nor onto the protocol pipe.
        Assert.Equal("", (await RunAsync(worker, Request("int main(int x) => x;", "[5]"))).Output);
    }

    [Fact]
    public async Task Program_exception_is_reported_with_type_and_message()
    {
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request("int main() => throw new InvalidOperationException(\"boom\");"));
        Assert.Equal(TaskErrorKind.Exception, result.ErrorKind);
        Assert.Equal("InvalidOperationException: boom", result.Error);
        Assert.Null(result.ResultJson);
        Assert.True(worker.IsHealthy);

        var inAsync = await RunAsync(worker, Request("async Task<int> main() { await Task.Yield(); throw new ArgumentException(\"late\"); }"));
        Assert.Equal(TaskErrorKind.Exception, inAsync.ErrorKind);
        Assert.Equal("ArgumentException: late", inAsync.Error);
    }

    [Theory]
    [InlineData("[]", "main(int x) expects 1 argument but 0 were given")]
    [InlineData("[1, 2]", "main(int x) expects 1 argument but 2 were given")]
    [InlineData("[\"seven\"]", "main(int x): argument 1 (x) cannot be converted from \"seven\" to int")]
    [InlineData("[null]", "main(int x): argument 1 (x) cannot be converted from null to int")]
    [InlineData("{\"x\": 1}", "arguments must be a JSON array")]
    [InlineData("[1", "arguments are not valid JSON")]
    public async Task Wrong_arguments_are_InvalidArguments(string args, string message)
    {
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request("int main(int x) => x * x;", args));
        Assert.Equal(TaskErrorKind.InvalidArguments, result.ErrorKind);
        Assert.Contains(message, result.Error);
        Assert.True(worker.IsHealthy);
    }

    [Fact]
    public async Task Infinite_loop_is_ended_by_Kill_and_a_fresh_worker_still_works()
    {
        var worker = await StartAsync();
        var run = worker.RunAsync(Request("int main() { var i = 0; while (true) i++; }"), CancellationToken.None);
        await Task.Delay(TimeSpan.FromSeconds(1)); // the program is meant to be running when killed; not a synchronisation
        Assert.False(run.IsCompleted);

        worker.Kill();
        var result = await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(TaskErrorKind.Crashed, result.ErrorKind);
        Assert.Equal("worker killed", result.Error);
        Assert.False(worker.IsHealthy);

        var fresh = await StartAsync();
        Assert.Equal("4", (await RunAsync(fresh, Request("int main(int x) => x * x;", "[2]"))).ResultJson);
    }

    [Fact]
    public async Task Cancelling_the_token_kills_the_worker_and_completes_as_Cancelled()
    {
        var worker = await StartAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        var result = await worker.RunAsync(Request("int main() { var i = 0; while (true) i++; }"), cts.Token).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(TaskErrorKind.Cancelled, result.ErrorKind);
        Assert.False(worker.IsHealthy);
    }

    [Fact]
    public async Task Heap_bomb_ends_OutOfMemory()
    {
        var worker = await StartAsync(heapLimit: 64 * Bytes.MiB);
        var result = await RunAsync(worker, Request("int main() { var l = new List<byte[]>(); while (true) l.Add(new byte[1 << 20]); }"));
        Assert.Equal(TaskErrorKind.OutOfMemory, result.ErrorKind);
        Assert.Contains("out of memory", result.Error);
    }

    [Fact]
    public async Task Stack_overflow_crashes_the_worker_with_a_clear_error()
    {
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request("int f(int x) => f(x + 1) + 1;", "[0]"));
        Assert.Equal(TaskErrorKind.Crashed, result.ErrorKind);
        Assert.Contains("stack overflow", result.Error);
        Assert.False(worker.IsHealthy);
        var again = await RunAsync(worker, Request("int main(int x) => x;", "[1]"));
        Assert.Equal(TaskErrorKind.Crashed, again.ErrorKind);
    }

    [Fact]
    public async Task Pause_stops_progress_and_Resume_continues()
    {
        var worker = await StartAsync();
        // Judged by the worker's own CPU time, not wall time: other tests and engineers share the cores.
        const string spin = "long main(long n) { long x = 0; for (long i = 0; i < n; i++) x = x * 31 + i; return x; }";
        await RunAsync(worker, Request(spin, "[100000000]")); // lets the JIT optimise the loop
        using var process = Process.GetProcessById(worker.ProcessId);
        TimeSpan Cpu()
        {
            process.Refresh();
            return process.TotalProcessorTime;
        }

        // Calibrated on the worker's CPU time, not wall time: on a loaded machine wall time overstates
        // the loop's cost, the program came out too short and could end before it was paused.
        var probeStart = Cpu();
        await RunAsync(worker, Request(spin, "[100000000]"));
        var probeCpu = Cpu() - probeStart;
        var iterations = (long)(100_000_000L * 2000 / Math.Max(1, probeCpu.TotalMilliseconds)); // ~2 s of CPU

        var startCpu = Cpu();
        var run = RunAsync(worker, Request(spin, $"[{iterations}]"));
        await Eventually.TrueAsync(() => Task.FromResult(Cpu() - startCpu > TimeSpan.FromMilliseconds(200)), Deadline, "the program starts spinning");
        worker.Pause();
        await Task.Delay(200); // lets the stop signal land before the first sample
        var pausedCpu = Cpu();
        await Task.Delay(TimeSpan.FromSeconds(1));
        var stillPausedCpu = Cpu();
        Assert.False(run.IsCompleted);
        worker.Resume();
        var result = await run;
        output.WriteLine($"{iterations} iterations; CPU while paused for 1 s: {(stillPausedCpu - pausedCpu).TotalMilliseconds:0} ms; total CPU {(Cpu() - startCpu).TotalMilliseconds:0} ms");

        Assert.True(stillPausedCpu - pausedCpu < TimeSpan.FromMilliseconds(50), $"the worker used {(stillPausedCpu - pausedCpu).TotalMilliseconds:0} ms of CPU while paused");
        Assert.Equal(TaskErrorKind.None, result.ErrorKind);
        Assert.True(worker.IsHealthy);
    }

    [Fact]
    public async Task Result_larger_than_the_cap_is_ResultTooLarge()
    {
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request("string main() => new string('x', 100_000);", maxResult: 10_000));
        Assert.Equal(TaskErrorKind.ResultTooLarge, result.ErrorKind);
        Assert.Contains("10000 bytes", result.Error);
        Assert.True(worker.IsHealthy);
        var fits = await RunAsync(worker, Request("string main() => new string('x', 100);", maxResult: 10_000));
        Assert.Equal(102, fits.ResultJson!.Length);
    }

    [Fact]
    public async Task Dispose_kills_the_process()
    {
        var worker = await StartAsync();
        var pid = worker.ProcessId;
        await worker.DisposeAsync();
        Assert.Throws<ArgumentException>(() => Process.GetProcessById(pid));
    }

    [Fact]
    public void Worker_outcome_codes_equal_TaskErrorKind()
    {
        Assert.Equal((int)TaskErrorKind.None, WorkerOutcome.None);
        Assert.Equal((int)TaskErrorKind.InvalidArguments, WorkerOutcome.InvalidArguments);
        Assert.Equal((int)TaskErrorKind.Exception, WorkerOutcome.Exception);
        Assert.Equal((int)TaskErrorKind.OutOfMemory, WorkerOutcome.OutOfMemory);
        Assert.Equal((int)TaskErrorKind.Crashed, WorkerOutcome.Crashed);
        Assert.Equal((int)TaskErrorKind.ResultTooLarge, WorkerOutcome.ResultTooLarge);
    }
}
