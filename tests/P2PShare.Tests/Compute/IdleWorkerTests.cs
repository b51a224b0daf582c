using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using P2PShare.Compute;
using P2PShare.Tests.Support;
using Xunit.Abstractions;

namespace P2PShare.Tests.Compute;

/// <summary>
/// Real workers between tasks: a C# worker whose task left work spinning uses no CPU while idle and
/// still serves its submitter's next task; a Python zygote serves many tasks, each a fresh fork.
/// Figures (CPU per task, freeze and thaw costs) are written to the test output, not asserted.
/// </summary>
public sealed class IdleWorkerTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly ProgramCompiler _compiler = new(NullLogger<ProgramCompiler>.Instance);

    // Passes the deny-list (no threads, no Task.Run): an async loop that never awaits anything real
    // keeps a thread-pool thread busy after main has returned.
    private const string LeavesWorkSpinning = """
        static async Task Spin() { while (true) { await Task.Yield(); } }
        int main() { _ = Spin(); _ = Spin(); return 1; }
        """;

    private ExecutionRequest CSharp(string program)
    {
        var compiled = _compiler.Compile(program, null);
        return new ExecutionRequest(compiled.Hash, compiled.Assembly, compiled.Function, "[]", 1 << 20, 1 << 16);
    }

    private static ExecutionRequest Python(string program, string args = "[]")
    {
        var source = Encoding.UTF8.GetBytes(program);
        return new ExecutionRequest(Convert.ToHexStringLower(SHA256.HashData(source)), source, "main", args, 1 << 20, 1 << 16, TaskLanguages.Python);
    }

    private static ComputeScheduler Scheduler(IWorkerFactory factory) =>
        new([factory], Options.Create(new ComputeOptions { Slots = 1, WarmWorkers = 0, MaxLiveWorkers = 4 }), TimeProvider.System,
            NullLogger<ComputeScheduler>.Instance);

    [Fact]
    public async Task A_CSharp_worker_whose_task_left_work_spinning_uses_no_CPU_while_idle_and_serves_the_next_task()
    {
        var factory = new WorkerProcessFactory(Options.Create(new ComputeOptions()), NullLogger<WorkerProcessFactory>.Instance);
        Assert.True(factory.Unavailable is null, factory.Unavailable);
        await using var scheduler = Scheduler(factory);
        IWorker? worker = null;
        scheduler.TaskStarted += task => worker ??= task.Worker;

        var leaver = await scheduler.Submit("alice", CSharp(LeavesWorkSpinning), TimeSpan.FromSeconds(30)).Completion.WaitAsync(Deadline);
        Assert.Equal(JobStatus.Succeeded, leaver.Status);
        Assert.NotNull(worker);
        var pid = worker.ProcessId;

        // Frozen by the pool once Compute:FreezeAfterIdle has passed (at once by default); until then the leftover
        // work may spin. It must stop within the grace and a timer tick: polled, with a bound.
        var returned = Stopwatch.StartNew();
        await Eventually.TrueAsync(async () =>
        {
            var at = ProcessCpu.Of(pid);
            await Task.Delay(TimeSpan.FromMilliseconds(100));
            return ProcessCpu.Of(pid) - at <= TimeSpan.FromMilliseconds(3);
        }, Deadline, "the leftover work stops once the grace is over");
        var stoppedAfter = returned.Elapsed;
        Assert.True(stoppedAfter < TimeSpan.FromSeconds(2), $"the leftover work ran for {stoppedAfter.TotalMilliseconds:0} ms after the task");
        var before = ProcessCpu.Of(pid);
        await Task.Delay(TimeSpan.FromSeconds(1.2));
        var idle = ProcessCpu.Of(pid) - before;

        // Control: thawed, the leftover work really spins (so the flat line above is the freeze's doing).
        var watch = Stopwatch.StartNew();
        worker.Thaw();
        var thaw = watch.Elapsed;
        var thawedAt = ProcessCpu.Of(pid);
        await Eventually.TrueAsync(() => Task.FromResult(ProcessCpu.Of(pid) - thawedAt >= TimeSpan.FromMilliseconds(200)), Deadline,
            "the leftover work spins while thawed");
        watch.Restart();
        worker.Freeze();
        var freeze = watch.Elapsed;
        output.WriteLine($"stopped {stoppedAfter.TotalMilliseconds:0} ms after the task; idle CPU over 1.2 s: {idle.TotalMilliseconds:0} ms; thaw {thaw.TotalMicroseconds:0} us, freeze {freeze.TotalMicroseconds:0} us");
        Assert.True(idle <= TimeSpan.FromMilliseconds(30), $"the idle worker used {idle.TotalMilliseconds:0} ms of CPU");

        // Same submitter, same (thawed) worker: its next task still runs.
        var next = await scheduler.Submit("alice", CSharp("int main() => 42;"), TimeSpan.FromSeconds(30)).Completion.WaitAsync(Deadline);
        Assert.Equal(JobStatus.Succeeded, next.Status);
        Assert.Equal("42", next.Result.ResultJson);
        Assert.True(worker.IsHealthy);

        // Another submitter never meets that leftover work: a process of its own.
        IWorker? bobs = null;
        scheduler.TaskStarted += task => { if (task.Submitter == "bob") bobs = task.Worker; };
        var bob = await scheduler.Submit("bob", CSharp("int main() => 7;"), TimeSpan.FromSeconds(30)).Completion.WaitAsync(Deadline);
        Assert.Equal("7", bob.Result.ResultJson);
        Assert.NotNull(bobs);
        Assert.NotEqual(pid, bobs.ProcessId);
    }

    [Fact]
    public async Task Warm_CSharp_tasks_of_one_submitter_reuse_their_worker_figures()
    {
        var factory = new WorkerProcessFactory(Options.Create(new ComputeOptions()), NullLogger<WorkerProcessFactory>.Instance);
        await using var scheduler = Scheduler(factory);
        var request = CSharp("int main() => 1;");
        await scheduler.Submit("alice", request, TimeSpan.FromSeconds(30)).Completion.WaitAsync(Deadline);
        var workers = new HashSet<int>();
        scheduler.TaskStarted += task => { lock (workers) workers.Add(task.Worker!.ProcessId); };
        const int count = 200;
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
            Assert.Equal(JobStatus.Succeeded, (await scheduler.Submit("alice", request, TimeSpan.FromSeconds(30)).Completion.WaitAsync(Deadline)).Status);
        output.WriteLine($"warm C# task, submit to result (thaw + run + freeze): {watch.Elapsed.TotalMilliseconds / count:0.000} ms");
        Assert.Single(workers);
    }

    [Fact]
    public async Task A_python_zygote_serves_many_clean_tasks_in_one_reused_process_figures()
    {
        var factory = new PythonWorkerFactory(Options.Create(new ComputeOptions()), NullLogger<PythonWorkerFactory>.Instance);
        Assert.True(factory.Unavailable is null, factory.Unavailable);
        var worker = await factory.StartWorkerAsync(CancellationToken.None);
        try
        {
            var request = Python("import os\ndef main(x): return [x * x, os.getpid()]", "[7]");
            var first = await worker.RunAsync(request, CancellationToken.None).WaitAsync(Deadline);
            Assert.Equal(TaskErrorKind.None, first.ErrorKind);
            var startAndFirst = ProcessCpu.OfTreeWithReaped(worker.ProcessId);

            const int count = 200;
            var pids = new HashSet<string>();
            var watch = Stopwatch.StartNew();
            for (var i = 0; i < count; i++)
            {
                var result = await worker.RunAsync(request, CancellationToken.None).WaitAsync(Deadline);
                Assert.Equal(TaskErrorKind.None, result.ErrorKind);
                pids.Add(result.ResultJson!);
            }

            var wall = watch.Elapsed;
            var perTask = (ProcessCpu.OfTreeWithReaped(worker.ProcessId) - startAndFirst) / count;
            output.WriteLine($"python zygote: start + first task {startAndFirst.TotalMilliseconds:0} ms CPU; then {perTask.TotalMilliseconds:0.00} ms CPU "
                + $"(zygote + its task process) and {wall.TotalMilliseconds / count:0.00} ms wall per task");
            // The task leaves its process clean, so every task runs in the one the first task had.
            Assert.Single(pids);
            Assert.True(worker.IsHealthy);
        }
        finally
        {
            await worker.DisposeAsync();
        }
    }
}
