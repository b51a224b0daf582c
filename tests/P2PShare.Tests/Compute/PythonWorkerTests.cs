using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using P2PShare.Compute;
using P2PShare.Hosting;
using P2PShare.Tests.Support;
using Xunit.Abstractions;

namespace P2PShare.Tests.Compute;

/// <summary>Real Python sandbox workers (python3 + p2pshare_worker.py), driven the way the scheduler drives them.</summary>
public sealed class PythonWorkerTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly List<IWorker> _workers = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var worker in _workers) await worker.DisposeAsync();
    }

    private static PythonWorkerFactory Factory(long heapLimit = 256 * Bytes.MiB, string python = "python3") =>
        new(Options.Create(new ComputeOptions { WorkerHeapLimitBytes = heapLimit, PythonPath = python }), NullLogger<PythonWorkerFactory>.Instance);

    private async Task<WorkerProcess> StartAsync(long heapLimit = 256 * Bytes.MiB)
    {
        var factory = Factory(heapLimit);
        Assert.True(factory.Unavailable is null, factory.Unavailable);
        var worker = await factory.StartWorkerAsync(CancellationToken.None);
        _workers.Add(worker);
        return worker;
    }

    private static ExecutionRequest Request(string program, string args = "[]", string function = "main", int maxResult = 16 * 1024 * 1024, int maxOutput = 64 * 1024)
    {
        var source = Encoding.UTF8.GetBytes(program);
        return new ExecutionRequest(Convert.ToHexStringLower(SHA256.HashData(source)), source, function, args, maxResult, maxOutput, TaskLanguages.Python);
    }

    private static Task<ExecutionResult> RunAsync(IWorker worker, ExecutionRequest request) =>
        worker.RunAsync(request, CancellationToken.None).WaitAsync(Deadline);

    [Fact]
    public async Task The_original_systems_program_runs_and_a_warm_worker_keeps_serving()
    {
        var watch = Stopwatch.StartNew();
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request("def main(x): return x * x", "[5]"));
        output.WriteLine($"python worker: start to hello {worker.StartupTime.TotalMilliseconds:0} ms; to first answer {watch.ElapsedMilliseconds} ms");
        Assert.Equal(TaskErrorKind.None, result.ErrorKind);
        Assert.Equal("25", result.ResultJson);

        var named = await RunAsync(worker, Request("def helper(a, b):\n    return {'sum': a + b, 'items': [a, b, None]}\n", "[2, 3]", "helper"));
        Assert.Equal("""{"sum": 5, "items": [2, 3, null]}""", named.ResultJson);
        var unicode = await RunAsync(worker, Request("def main(s): return s.upper() + ' \u2603'", "[\"h\u00e9llo\"]"));
        Assert.Equal("\"H\u00c9LLO \u2603\"", unicode.ResultJson);
        Assert.Equal(3, worker.ProgramsLoaded);
        Assert.True(worker.IsHealthy);
    }

    [Theory]
    [InlineData("def main():\n    return 1 / 0\n", "[]", TaskErrorKind.Exception, "ZeroDivisionError: division by zero (line 2)")]
    [InlineData("def main(:\n", "[]", TaskErrorKind.CompileError, "(1,10): SyntaxError")]
    [InlineData("def f(x): return x", "[1]", TaskErrorKind.InvalidArguments, "no function 'main'; the program defines: f")]
    [InlineData("def main(x): return x", "[1, 2]", TaskErrorKind.InvalidArguments, "main() cannot take 2 argument(s)")]
    [InlineData("def main(): return {1, 2}", "[]", TaskErrorKind.Exception, "result of type set is not JSON-serializable")]
    [InlineData("def main(): return float('nan')", "[]", TaskErrorKind.Exception, "not JSON-serializable")]
    [InlineData("def main(): raise SystemExit(3)", "[]", TaskErrorKind.Exception, "SystemExit: 3")]
    [InlineData("def main(): return 'x' * 5000", "[]", TaskErrorKind.ResultTooLarge, "the limit is 1024")]
    [InlineData("def main(x): return x", "{\"a\": 1}", TaskErrorKind.InvalidArguments, "args must be a JSON array")]
    public async Task A_failing_program_fails_with_its_kind_and_the_worker_lives_on(string program, string args, TaskErrorKind kind, string message)
    {
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request(program, args, maxResult: 1024));
        Assert.Equal(kind, result.ErrorKind);
        Assert.Contains(message, result.Error);
        Assert.True(worker.IsHealthy);
        Assert.Equal("2", (await RunAsync(worker, Request("def main(): return 2"))).ResultJson);
    }

    [Theory]
    [InlineData("import socket\ndef main():\n    return socket.create_connection(('127.0.0.1', 22))", "socket")]
    [InlineData("def main():\n    import urllib.request\n    return urllib.request.urlopen('http://127.0.0.1:9/').read()", "socket")]
    [InlineData("def main():\n    import subprocess\n    return subprocess.run(['id']).returncode", "subprocess")]
    [InlineData("def main():\n    import os\n    return os.system('id')", "os.system")]
    [InlineData("def main():\n    import os\n    return os.fork()", "os.fork")]
    [InlineData("def main():\n    import os\n    os.execv('/bin/sh', ['sh'])", "os.exec")]
    [InlineData("def main():\n    import os\n    return os.kill(1, 0)", "os.kill")]
    [InlineData("def main():\n    return open('/etc/passwd').read()", "open('/etc/passwd')")]
    [InlineData("def main():\n    open('out.txt', 'w').write('x')", "open('out.txt')")]
    [InlineData("def main():\n    import os\n    return os.listdir('/')", "os.listdir")]
    [InlineData("def main():\n    import os\n    return os.remove('/tmp/x')", "os.remove")]
    [InlineData("def main():\n    import ctypes\n    return 1", "ctypes")]
    [InlineData("def main():\n    import shutil\n    return shutil.rmtree('/tmp/nothing-here')", "not allowed in the sandbox")]
    [InlineData("def main():\n    return input()", "builtins.input")]
    public async Task Hostile_programs_are_refused_and_the_worker_lives_on(string program, string mentioned)
    {
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request(program));
        output.WriteLine($"{result.ErrorKind}: {result.Error}");
        Assert.Equal(TaskErrorKind.NotAllowed, result.ErrorKind);
        Assert.Contains(mentioned, result.Error);
        Assert.Equal("3", (await RunAsync(worker, Request("def main(): return 3"))).ResultJson);
    }

    [Fact]
    public async Task Output_is_captured_and_capped()
    {
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request("def main():\n    for i in range(1000):\n        print('line', i)\n    return 'done'", maxOutput: 100));
        Assert.Equal("\"done\"", result.ResultJson);
        Assert.StartsWith("line 0\nline 1\n", result.Output);
        Assert.Contains("[output cut at 100 bytes]", result.Output);
    }

    [Fact]
    public async Task A_memory_bomb_is_OutOfMemory_and_the_worker_is_replaced()
    {
        var worker = await StartAsync(heapLimit: 64 * Bytes.MiB);
        var result = await RunAsync(worker, Request("def main():\n    hog = []\n    while True:\n        hog.append(bytearray(1 << 20))"));
        Assert.Equal(TaskErrorKind.OutOfMemory, result.ErrorKind);
        await Eventually.TrueAsync(() => Task.FromResult(!worker.IsHealthy), Deadline, "the worker leaves after running out of memory");
    }

    [Fact]
    public async Task Kill_ends_an_endless_loop()
    {
        var worker = await StartAsync();
        var run = RunAsync(worker, Request("def main():\n    while True:\n        pass"));
        await Task.Delay(300);
        Assert.False(run.IsCompleted);
        worker.Kill();
        var result = await run;
        Assert.Equal(TaskErrorKind.Crashed, result.ErrorKind);
        Assert.False(worker.IsHealthy);
    }

    [Fact]
    public async Task Pause_stops_a_python_program_and_Resume_continues()
    {
        var worker = await StartAsync();
        using var process = Process.GetProcessById(worker.ProcessId);
        TimeSpan Cpu()
        {
            process.Refresh();
            return process.TotalProcessorTime;
        }

        var startCpu = Cpu();
        // ~1 s of CPU on this machine, whatever the load: the loop counts to a CPU-time target.
        var run = RunAsync(worker, Request("import time\ndef main(seconds):\n    n = 0\n    until = time.process_time() + seconds\n    while time.process_time() < until:\n        n += 1\n    return n", "[1.0]"));
        await Eventually.TrueAsync(() => Task.FromResult(Cpu() - startCpu > TimeSpan.FromMilliseconds(200)), Deadline, "the program starts spinning");
        worker.Pause();
        await Task.Delay(200);
        var pausedCpu = Cpu();
        await Task.Delay(TimeSpan.FromSeconds(1));
        var stillPausedCpu = Cpu();
        Assert.False(run.IsCompleted);
        worker.Resume();
        var result = await run;
        output.WriteLine($"CPU while paused for 1 s: {(stillPausedCpu - pausedCpu).TotalMilliseconds:0} ms");
        Assert.True(stillPausedCpu - pausedCpu < TimeSpan.FromMilliseconds(50));
        Assert.Equal(TaskErrorKind.None, result.ErrorKind);
    }

    [Fact]
    public void A_missing_interpreter_makes_python_unavailable_with_the_reason()
    {
        var factory = Factory(python: "/nonexistent/python3");
        Assert.NotNull(factory.Unavailable);
        Assert.Contains("/nonexistent/python3", factory.Unavailable);
        Assert.Equal(TaskLanguages.Python, factory.Language);
    }

    [Fact]
    public void Workers_get_an_empty_network_namespace_where_the_machine_allows_one()
    {
        // Root (CI) can always create one; elsewhere it depends on unprivileged user namespaces.
        var factory = Factory();
        output.WriteLine($"python {factory.Version}; network namespace: {factory.NetworkIsolated}");
        if (Environment.UserName == "root") Assert.True(factory.NetworkIsolated);
    }
}
