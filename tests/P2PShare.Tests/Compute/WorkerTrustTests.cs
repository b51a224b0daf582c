using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using P2PShare.Compute;
using P2PShare.Compute.Protocol;
using P2PShare.Hosting;
using P2PShare.Tests.Support;
using Xunit.Abstractions;

namespace P2PShare.Tests.Compute;

/// <summary>
/// The peer trusts nothing a worker writes. A hostile worker is played by a small Python process
/// that speaks raw bytes on the real pipes, read by the real <see cref="WorkerProcess"/>; real .NET
/// and Python workers then check that programs cannot reach the protocol. Every breach ends the task
/// <c>Crashed: protocol violation (...)</c>, kills the worker, and leaves the peer's memory flat.
/// </summary>
[Collection(SerialComputeCollection.Name)]
public sealed class WorkerTrustTests(ITestOutputHelper log) : IAsyncLifetime
{
    private const int MaxResult = 1024 * 1024;
    private const int MaxOutput = 64 * 1024;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(120);

    /// <summary>
    /// A worker that says hello properly and then answers each request as its mode says. It reads
    /// requests exactly and writes with os.write, so the bytes on the pipe are precisely the ones below.
    /// </summary>
    private const string HostileWorker = """
        import json, os, struct, sys, time
        mode, arg = sys.argv[1], int(sys.argv[2])

        def send(data):
            view = memoryview(data)
            while view:
                view = view[os.write(1, view):]

        def frame(header, body=b"", raw=None):
            head = raw if raw is not None else json.dumps(header).encode()
            return struct.pack("<ii", 4 + len(head) + len(body), len(head)) + head + body

        def read(n):
            data = b""
            while len(data) < n:
                more = os.read(0, n - len(data))
                if not more:
                    sys.exit(0)
                data += more
            return data

        def request():
            (length,) = struct.unpack("<i", read(4))
            payload = read(length)
            (head,) = struct.unpack("<i", payload[:4])
            return json.loads(payload[4:4 + head])

        def hang():
            while True:
                time.sleep(60)

        send(frame({"ProcessId": os.getpid()}))
        if mode == "idle-garbage":
            time.sleep(0.2)
            send(b"not a frame at all")
            hang()
        if mode == "swap":
            first, second = request()["Sequence"], request()["Sequence"]
            for seq in (second, first):
                send(frame({"Sequence": seq, "Kind": 0, "Error": None, "Output": ""}, b"42"))
            hang()
        while True:
            req = request()
            seq = req["Sequence"]
            ok = {"Sequence": seq, "Kind": 0, "Error": None, "Output": ""}
            if mode == "normal":
                send(frame(ok, b"42"))
            elif mode == "length":
                send(struct.pack("<i", arg))
                send(b"x" * 1024)
                hang()
            elif mode == "truncated":
                send(frame(ok, b"[1,2,3]")[:-3])
                os.close(1)
                hang()
            elif mode == "garbage-json":
                send(frame(None, raw=b"{this is not json"))
                hang()
            elif mode == "kind":
                send(frame(dict(ok, Kind=arg, Error="Forged"), b""))
            elif mode == "wrong-id":
                send(frame(dict(ok, Sequence=seq + 1), b"42"))
            elif mode == "two-answers":
                send(frame(ok, b"42") + frame(ok, b"43"))
            elif mode == "extra-field":
                send(frame(dict(ok, Evil=1), b"42"))
            elif mode == "not-json-result":
                send(frame(ok, b"42 and more"))
            elif mode == "failure-with-result":
                send(frame(dict(ok, Kind=4, Error="Exception: x"), b"42"))
            elif mode == "long-error":
                send(frame(dict(ok, Kind=4, Error="e" * arg)))
            elif mode == "long-output":
                send(frame(dict(ok, Output="o" * arg), b"42"))
            elif mode == "stdout-garbage":
                while True:
                    send(b"\x41" * 65536)
            elif mode == "stderr":
                chunk = b"e" * (1 << 20)
                for _ in range(arg):
                    os.write(2, chunk)
                send(frame(ok, b"42"))
        """;

    /// <summary>
    /// Writes a PeerLost answer on every fd it can: fd 1 is /dev/null, but the real protocol pipe is one
    /// of the worker's low private fds, which a program can guess.
    /// </summary>
    private const string ForgePeerLost = """
        import json, os, struct
        def main():
            head = json.dumps({"Sequence": 1, "Kind": 11, "Error": "PeerLost: forged", "Output": ""}).encode()
            data = struct.pack("<ii", 4 + len(head), len(head)) + head
            for fd in range(1, 64):
                try:
                    os.write(fd, data)
                except OSError:
                    pass
            return 1
        """;

    private readonly List<IWorker> _workers = [];
    private readonly string _python = Python().Interpreter ?? throw new InvalidOperationException("python3 is needed for these tests");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var worker in _workers) await worker.DisposeAsync();
    }

    private static PythonWorkerFactory Python() =>
        new(Options.Create(new ComputeOptions { PythonPath = "python3" }), NullLogger<PythonWorkerFactory>.Instance);

    private async Task<WorkerProcess> HostileAsync(string mode, long arg = 0)
    {
        var worker = await WorkerProcess.StartAsync(_python, ["-I", "-c", HostileWorker, mode, arg.ToString(System.Globalization.CultureInfo.InvariantCulture)],
            256 * Bytes.MiB, new Dictionary<string, string>(), inheritEnvironment: false, WorkerProcess.DotnetOutcomes,
            NullLogger.Instance, CancellationToken.None);
        _workers.Add(worker);
        return worker;
    }

    private static ExecutionRequest Request(int maxResult = MaxResult, int maxOutput = MaxOutput) =>
        new("0123456789abcdef", [1, 2, 3], "main", "[]", maxResult, maxOutput);

    private static Task<ExecutionResult> RunAsync(IWorker worker, ExecutionRequest? request = null) =>
        worker.RunAsync(request ?? Request(), CancellationToken.None).WaitAsync(Deadline);

    /// <summary>The task ends Crashed naming the violation, and the worker process is gone.</summary>
    private static async Task AssertViolationAsync(WorkerProcess worker, ExecutionResult result, string what)
    {
        Assert.Equal(TaskErrorKind.Crashed, result.ErrorKind);
        Assert.StartsWith("protocol violation (", result.Error);
        Assert.Contains(what, result.Error);
        Assert.Null(result.ResultJson);
        Assert.False(worker.IsHealthy);
        await AssertGoneAsync(worker.ProcessId);
    }

    private static async Task AssertGoneAsync(int pid)
    {
        await Eventually.TrueAsync(() => Task.FromResult(!IsAlive(pid)), TimeSpan.FromSeconds(10), $"process {pid} is gone");
    }

    private static bool IsAlive(int pid)
    {
        // A zombie still has /proc/PID until reaped; its state letter says it is dead.
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)] is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }

    [Fact]
    public async Task The_fake_worker_plays_by_the_rules_when_told_to()
    {
        var worker = await HostileAsync("normal");
        var first = await RunAsync(worker);
        var second = await RunAsync(worker);
        Assert.Equal((TaskErrorKind.None, "42"), (first.ErrorKind, first.ResultJson));
        Assert.Equal((TaskErrorKind.None, "42"), (second.ErrorKind, second.ResultJson));
        Assert.True(worker.IsHealthy);
    }

    [Theory]
    [InlineData(int.MaxValue)] // a 2 GiB claim
    [InlineData(500 * 1024 * 1024)] // under the old fixed 512 MiB guard, which allocated it
    public async Task A_huge_length_prefix_allocates_nothing_and_is_a_violation(int length)
    {
        var worker = await HostileAsync("length", length);
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var result = await RunAsync(worker);
        allocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;

        log.WriteLine($"{result.Error}; the peer allocated {allocated / 1024} KiB meanwhile");
        await AssertViolationAsync(worker, result, $"a frame of {length} bytes; the limit for it is");
        Assert.True(allocated < 64 * Bytes.MiB, $"the peer allocated {allocated} bytes reading one bad frame");
    }

    [Fact]
    public async Task A_length_one_byte_over_what_the_request_can_produce_is_a_violation()
    {
        var limit = FrameLimit.Response(MaxResult, MaxOutput).MaxPayloadBytes;
        var worker = await HostileAsync("length", limit + 1);
        await AssertViolationAsync(worker, await RunAsync(worker), $"a frame of {limit + 1} bytes; the limit for it is {limit}");
    }

    [Theory]
    [InlineData(-5)]
    [InlineData(int.MinValue)]
    [InlineData(3)]
    public async Task A_negative_or_too_short_length_is_a_violation(int length)
    {
        var worker = await HostileAsync("length", length);
        await AssertViolationAsync(worker, await RunAsync(worker), $"frame length {length}");
    }

    [Fact]
    public async Task A_truncated_frame_is_a_violation()
    {
        var worker = await HostileAsync("truncated");
        await AssertViolationAsync(worker, await RunAsync(worker), "the pipe closed inside a frame");
    }

    [Fact]
    public async Task A_header_that_is_not_JSON_is_a_violation()
    {
        var worker = await HostileAsync("garbage-json");
        await AssertViolationAsync(worker, await RunAsync(worker), "the header is not a valid WorkerResponseHeader");
    }

    [Fact]
    public async Task A_header_with_a_field_the_protocol_does_not_have_is_a_violation()
    {
        var worker = await HostileAsync("extra-field");
        await AssertViolationAsync(worker, await RunAsync(worker), "the header is not a valid WorkerResponseHeader");
    }

    [Theory]
    [InlineData(TaskErrorKind.PeerLost)]
    [InlineData(TaskErrorKind.TimedOut)]
    [InlineData(TaskErrorKind.Cancelled)]
    [InlineData(TaskErrorKind.Unschedulable)]
    [InlineData(TaskErrorKind.NotAllowed)] // the .NET worker never judges a program: the peer did
    [InlineData(TaskErrorKind.CompileError)]
    [InlineData((TaskErrorKind)99)]
    [InlineData((TaskErrorKind)(-1))]
    public async Task An_outcome_only_the_peer_can_decide_is_a_violation(TaskErrorKind forged)
    {
        var worker = await HostileAsync("kind", (int)forged);
        var result = await RunAsync(worker);
        await AssertViolationAsync(worker, result, "is not one a worker may report");
        Assert.DoesNotContain("Forged", result.Error);
    }

    [Fact]
    public async Task An_answer_to_another_request_is_a_violation()
    {
        var worker = await HostileAsync("wrong-id");
        await AssertViolationAsync(worker, await RunAsync(worker), "while request");
    }

    [Fact]
    public async Task Answers_out_of_order_to_requests_written_ahead_are_a_violation_for_both()
    {
        var worker = await HostileAsync("swap");
        Assert.True(worker.CanRunAhead);
        var first = worker.RunAsync(Request(), CancellationToken.None);
        var second = worker.RunAsync(Request(), CancellationToken.None);
        await AssertViolationAsync(worker, await first.WaitAsync(Deadline), "was the next to answer");
        await AssertViolationAsync(worker, await second.WaitAsync(Deadline), "was the next to answer");
    }

    [Fact]
    public async Task A_second_answer_kills_the_worker_before_it_can_serve_again()
    {
        var worker = await HostileAsync("two-answers");
        var first = await RunAsync(worker);
        Assert.Equal((TaskErrorKind.None, "42"), (first.ErrorKind, first.ResultJson));

        await Eventually.TrueAsync(() => Task.FromResult(!worker.IsHealthy), TimeSpan.FromSeconds(10), "the extra answer is seen");
        Assert.Equal("it wrote to the protocol pipe while no request was outstanding", worker.Violation);
        await AssertGoneAsync(worker.ProcessId);
        var next = await RunAsync(worker);
        Assert.Equal(TaskErrorKind.Crashed, next.ErrorKind);
    }

    [Fact]
    public async Task Bytes_while_no_request_is_outstanding_kill_the_idle_worker()
    {
        var worker = await HostileAsync("idle-garbage");
        await Eventually.TrueAsync(() => Task.FromResult(!worker.IsHealthy), TimeSpan.FromSeconds(10), "the stray bytes are seen");
        Assert.Equal("it wrote to the protocol pipe while no request was outstanding", worker.Violation);
        await AssertGoneAsync(worker.ProcessId);
    }

    [Fact]
    public async Task Endless_stdout_garbage_is_a_violation_and_costs_the_peer_nothing()
    {
        var worker = await HostileAsync("stdout-garbage");
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var result = await RunAsync(worker);
        allocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;
        await AssertViolationAsync(worker, result, "a frame of 1094795585 bytes"); // "AAAA"
        Assert.True(allocated < 64 * Bytes.MiB, $"the peer allocated {allocated} bytes");
    }

    [Theory]
    [InlineData("not-json-result", "the result is not JSON")]
    [InlineData("failure-with-result", "a Exception answer with a result")]
    [InlineData("long-error", "an error of 5000 characters")]
    public async Task An_answer_outside_what_a_worker_can_say_is_a_violation(string mode, string what)
    {
        var worker = await HostileAsync(mode, 5000);
        await AssertViolationAsync(worker, await RunAsync(worker), what);
    }

    [Fact]
    public async Task Output_over_the_request_s_cap_is_a_violation()
    {
        var worker = await HostileAsync("long-output", 2000);
        await AssertViolationAsync(worker, await RunAsync(worker, Request(maxOutput: 1000)), "output of 2000 bytes; the limit is 1000");
    }

    [Fact]
    public async Task A_gibibyte_of_stderr_without_a_newline_is_drained_and_the_peer_stays_flat()
    {
        var worker = await HostileAsync("stderr", 1024);
        var before = Memory();
        var result = await RunAsync(worker);
        var after = Memory();

        log.WriteLine($"stderr {worker.StderrBytes >> 20} MiB; managed {before.Managed >> 20} -> {after.Managed >> 20} MiB, " +
                      $"working set {before.WorkingSet >> 20} -> {after.WorkingSet >> 20} MiB");
        Assert.Equal((TaskErrorKind.None, "42"), (result.ErrorKind, result.ResultJson));
        Assert.Equal(1024L * Bytes.MiB, worker.StderrBytes);
        Assert.True(worker.IsHealthy, "stderr is the worker's to fill; it is not a violation");
        Assert.True(after.WorkingSet - before.WorkingSet < 100 * Bytes.MiB, "working set grew by 100 MB or more");
        Assert.True(after.Managed - before.Managed < 50 * Bytes.MiB, "managed heap grew by 50 MB or more");
    }

    [Fact]
    public async Task Neither_worker_leaves_its_standard_handles_on_the_protocol_pipes()
    {
        var dotnet = await new WorkerProcessFactory(Options.Create(new ComputeOptions()), NullLogger<WorkerProcessFactory>.Instance)
            .StartWorkerAsync(CancellationToken.None);
        _workers.Add(dotnet);
        var python = await Python().StartWorkerAsync(CancellationToken.None);
        _workers.Add(python);

        foreach (var worker in new[] { dotnet, python })
        {
            Assert.Equal("/dev/null", Target(worker.ProcessId, 0));
            Assert.Equal("/dev/null", Target(worker.ProcessId, 1));
            Assert.StartsWith("pipe:", Target(worker.ProcessId, 2)); // stderr still reaches the peer, as bytes with a cap
        }

        static string Target(int pid, int fd) => new FileInfo($"/proc/{pid}/fd/{fd}").LinkTarget ?? "";
    }

    [Fact]
    public async Task A_CSharp_program_cannot_open_the_raw_standard_output()
    {
        var compiler = new ProgramCompiler(NullLogger<ProgramCompiler>.Instance);
        var refused = Assert.Throws<TaskRejectedException>(() => compiler.Compile(
            "int main() { var s = System.Console.OpenStandardOutput(); s.Write(new byte[] { 9, 0, 0, 0 }); return 1; }", null));
        Assert.Equal(TaskErrorKind.NotAllowed, refused.TaskError);
        await Task.CompletedTask;
    }

    [Fact]
    public async Task A_python_program_that_forges_a_PeerLost_frame_on_every_fd_crashes_its_own_task_only()
    {
        var factory = Python();
        var worker = await factory.StartWorkerAsync(CancellationToken.None);
        _workers.Add(worker);
        var result = await RunAsync(worker, PythonRequest(ForgePeerLost));

        log.WriteLine($"{result.ErrorKind}: {result.Error}");
        await AssertViolationAsync(worker, result, "");
        Assert.DoesNotContain("forged", result.Error);

        var next = await factory.StartWorkerAsync(CancellationToken.None);
        _workers.Add(next);
        Assert.Equal("49", (await RunAsync(next, PythonRequest("def main(x): return x * x", "[7]"))).ResultJson);
    }

    [Fact]
    public async Task In_a_cluster_a_task_forging_PeerLost_fails_once_and_is_not_run_on_another_peer()
    {
        await using var peers = await PeerCluster.StartAsync(3, services => services.Configure<ComputeOptions>(o =>
        {
            o.Slots = 1;
            o.WarmWorkers = 1;
        }));
        var job = await peers.Peer("peer-1").SubmitAsync(new TaskSpec(ForgePeerLost, null, "[]", false, TimeSpan.FromSeconds(60), "mallory", null,
            MaxRetries: 3, Language: TaskLanguages.Python));
        var done = await JobWaits.TerminalAsync(peers, job.JobId, Deadline);

        log.WriteLine($"{done.Status} {done.ErrorKind}: {done.Error}");
        Assert.Equal(JobStatus.Failed, done.Status);
        Assert.Equal(TaskErrorKind.Crashed, done.ErrorKind);
        Assert.Contains("protocol violation", done.Error);
        Assert.Single(done.Attempts);

        var after = await JobWaits.TerminalAsync(peers, (await peers.Peer("peer-1").SubmitAsync(new TaskSpec("def main(x): return x * x", null, "[9]", false,
            TimeSpan.FromSeconds(60), "alice", done.ExecutedBy, Language: TaskLanguages.Python))).JobId, Deadline);
        Assert.Equal("81", after.ResultJson);
    }

    [Fact]
    public async Task A_python_program_writing_100_MB_to_the_raw_stderr_leaves_the_peer_flat()
    {
        const string spill = """
            import os
            def main():
                chunk = b"x" * (1 << 20)
                for _ in range(100):
                    os.write(2, chunk)
                return 7
            """;
        var worker = await Python().StartWorkerAsync(CancellationToken.None);
        _workers.Add(worker);
        var before = Memory();
        var result = await RunAsync(worker, PythonRequest(spill));
        var after = Memory();

        log.WriteLine($"stderr {worker.StderrBytes >> 20} MiB; working set {before.WorkingSet >> 20} -> {after.WorkingSet >> 20} MiB");
        Assert.Equal((TaskErrorKind.None, "7"), (result.ErrorKind, result.ResultJson));
        Assert.True(worker.StderrBytes >= 100L * Bytes.MiB);
        Assert.True(after.WorkingSet - before.WorkingSet < 100 * Bytes.MiB, "working set grew by 100 MB or more");
    }

    [Fact]
    public async Task After_every_kind_of_violation_the_scheduler_replaces_the_worker_and_serves_a_normal_task()
    {
        var factory = new ScriptedFactory(this, ["length", "kind", "wrong-id", "garbage-json", "normal"]);
        var options = new ComputeOptions { Slots = 1, WarmWorkers = 0, MaxLiveWorkers = 4 };
        await using var scheduler = new ComputeScheduler([factory], Options.Create(options), TimeProvider.System, NullLogger<ComputeScheduler>.Instance);
        foreach (var expected in new[] { "protocol violation", "protocol violation", "protocol violation", "protocol violation" })
        {
            var outcome = await scheduler.Submit("hostile", Request(), TimeSpan.FromSeconds(60)).Completion.WaitAsync(Deadline);
            Assert.Equal(JobStatus.Failed, outcome.Status);
            Assert.Equal(TaskErrorKind.Crashed, outcome.Result.ErrorKind);
            Assert.StartsWith(expected, outcome.Result.Error);
        }

        var fine = await scheduler.Submit("nice", Request(), TimeSpan.FromSeconds(60)).Completion.WaitAsync(Deadline);
        Assert.Equal((JobStatus.Succeeded, "42"), (fine.Status, fine.Result.ResultJson));
        Assert.Equal(5, factory.Started);
    }

    [Theory]
    [InlineData(TaskErrorKind.PeerLost)]
    [InlineData(TaskErrorKind.TimedOut)]
    [InlineData(TaskErrorKind.Cancelled)]
    public async Task The_scheduler_never_takes_a_peer_decided_outcome_from_any_worker(TaskErrorKind lie)
    {
        var options = new ComputeOptions { Slots = 1, WarmWorkers = 0, MaxLiveWorkers = 4 };
        await using var scheduler = new ComputeScheduler([new LyingFactory(lie)], Options.Create(options), TimeProvider.System, NullLogger<ComputeScheduler>.Instance);
        var outcome = await scheduler.Submit("liar", Request(), TimeSpan.FromSeconds(60)).Completion.WaitAsync(Deadline);
        Assert.Equal(JobStatus.Failed, outcome.Status);
        Assert.Equal(TaskErrorKind.Crashed, outcome.Result.ErrorKind);
        Assert.Equal($"protocol violation (the worker reported {lie})", outcome.Result.Error);
    }

    private static ExecutionRequest PythonRequest(string program, string args = "[]")
    {
        var source = Encoding.UTF8.GetBytes(program);
        return new ExecutionRequest(Convert.ToHexStringLower(SHA256.HashData(source)), source, "main", args, MaxResult, MaxOutput, TaskLanguages.Python);
    }

    private static (long Managed, long WorkingSet) Memory()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var self = Process.GetCurrentProcess();
        return (GC.GetTotalMemory(true), self.WorkingSet64);
    }

    /// <summary>An in-process worker that answers every run with the outcome it was told to claim.</summary>
    private sealed class LyingFactory(TaskErrorKind lie) : IWorkerFactory
    {
        public Task<IWorker> StartAsync(CancellationToken cancellationToken) => Task.FromResult<IWorker>(new Liar(lie));

        private sealed class Liar(TaskErrorKind lie) : IWorker
        {
            public int ProcessId => 0;

            public bool IsHealthy => true;

            public int ProgramsLoaded => 0;

            public Task<ExecutionResult> RunAsync(ExecutionRequest request, CancellationToken cancellationToken) =>
                Task.FromResult(ExecutionResult.Failure(lie, $"{lie}: forged"));

            public void Pause()
            {
            }

            public void Resume()
            {
            }

            public void Kill()
            {
            }

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }

    /// <summary>Starts hostile workers in the given modes, one per start, in order.</summary>
    private sealed class ScriptedFactory(WorkerTrustTests tests, string[] modes) : IWorkerFactory
    {
        private int _started;

        public int Started => Volatile.Read(ref _started);

        public async Task<IWorker> StartAsync(CancellationToken cancellationToken)
        {
            var index = Interlocked.Increment(ref _started) - 1;
            var mode = modes[Math.Min(index, modes.Length - 1)];
            return await tests.HostileAsync(mode, mode == "length" ? int.MaxValue : (int)TaskErrorKind.PeerLost);
        }
    }
}
