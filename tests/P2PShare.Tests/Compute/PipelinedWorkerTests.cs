using System.Collections.Concurrent;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using P2PShare.Compute;
using P2PShare.Tests.Support;

namespace P2PShare.Tests.Compute;

/// <summary>
/// A submitter's next task written ahead to its running .NET worker keeps the scheduler's rules: its
/// timeout counts from its own start, a cancel before it starts ends it without a result, time slicing
/// still lets another submitter in, and a killed predecessor sends it to another worker.
/// </summary>
[Collection(SerialComputeCollection.Name)]
public sealed class PipelinedWorkerTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);
    private readonly ProgramCompiler _compiler = new(NullLogger<ProgramCompiler>.Instance);

    private const string Busy = """
        int main(int ms) { var watch = System.Diagnostics.Stopwatch.StartNew(); while (watch.ElapsedMilliseconds < ms) { } return ms; }
        """;

    private ExecutionRequest BusyFor(int ms)
    {
        var compiled = _compiler.Compile(Busy, null);
        return new ExecutionRequest(compiled.Hash, compiled.Assembly, compiled.Function, $"[{ms}]", 1 << 20, 1 << 16);
    }

    private static ComputeScheduler Scheduler(TimeSpan? quantum = null) =>
        new([new WorkerProcessFactory(Options.Create(new ComputeOptions()), NullLogger<WorkerProcessFactory>.Instance)],
            Options.Create(new ComputeOptions { Slots = 1, WarmWorkers = 0, MaxLiveWorkers = 4, Quantum = quantum ?? TimeSpan.FromMinutes(1) }),
            TimeProvider.System, NullLogger<ComputeScheduler>.Instance);

    private static ConcurrentDictionary<Guid, int> Pids(ComputeScheduler scheduler)
    {
        var pids = new ConcurrentDictionary<Guid, int>();
        scheduler.TaskStarted += task => pids[task.Id] = task.Worker!.ProcessId;
        return pids;
    }

    [Fact]
    public async Task A_task_written_ahead_times_out_from_its_own_start_not_from_when_it_was_written()
    {
        await using var scheduler = Scheduler();
        var pids = Pids(scheduler);
        var first = scheduler.Submit("alice", BusyFor(700), Long);
        // Alone it needs 700 ms; counted from when it was written it would need ~1.4 s.
        var second = scheduler.Submit("alice", BusyFor(700), TimeSpan.FromMilliseconds(1200));
        await Eventually.TrueAsync(() => Task.FromResult(second.State == ScheduledTaskState.SentAhead), Deadline, "the second task is written ahead");

        var a = await first.Completion.WaitAsync(Deadline);
        var b = await second.Completion.WaitAsync(Deadline);
        Assert.Equal((JobStatus.Succeeded, "700"), (a.Status, a.Result.ResultJson));
        Assert.Equal((JobStatus.Succeeded, "700"), (b.Status, b.Result.ResultJson));
        Assert.Equal(pids[first.Id], pids[second.Id]);
        Assert.True(b.StartedUtc >= a.FinishedUtc - TimeSpan.FromMilliseconds(50), $"started {b.StartedUtc:O}, the first finished {a.FinishedUtc:O}");
        Assert.True(b.RunTime < TimeSpan.FromMilliseconds(1200), $"run time {b.RunTime}");
    }

    [Fact]
    public async Task Cancelling_a_task_written_ahead_ends_it_unstarted_keeps_the_running_one_and_retires_the_worker()
    {
        await using var scheduler = Scheduler();
        var pids = Pids(scheduler);
        var first = scheduler.Submit("alice", BusyFor(800), Long);
        var second = scheduler.Submit("alice", BusyFor(800), Long);
        await Eventually.TrueAsync(() => Task.FromResult(second.State == ScheduledTaskState.SentAhead), Deadline, "the second task is written ahead");

        Assert.True(scheduler.Cancel(second.Id));
        var b = await second.Completion.WaitAsync(Deadline);
        Assert.Equal(JobStatus.Cancelled, b.Status);
        Assert.Null(b.StartedUtc);
        Assert.False(pids.ContainsKey(second.Id));

        var a = await first.Completion.WaitAsync(Deadline);
        Assert.Equal((JobStatus.Succeeded, "800"), (a.Status, a.Result.ResultJson));
        // The worker had started the cancelled request the moment it answered: it is killed, not reused.
        var pid = pids[first.Id];
        await Eventually.TrueAsync(() => Task.FromResult(!File.Exists($"/proc/{pid}/stat") || File.ReadAllText($"/proc/{pid}/stat").Contains(") Z", StringComparison.Ordinal)),
            Deadline, "the worker is gone");
        var third = scheduler.Submit("alice", BusyFor(1), Long);
        var c = await third.Completion.WaitAsync(Deadline);
        Assert.Equal((JobStatus.Succeeded, "1"), (c.Status, c.Result.ResultJson));
        Assert.NotEqual(pid, pids[third.Id]);
    }

    [Fact]
    public async Task Another_submitter_arriving_gets_its_turn_and_the_task_written_ahead_still_runs_next_on_its_worker()
    {
        await using var scheduler = Scheduler(TimeSpan.FromMilliseconds(100));
        var pids = Pids(scheduler);
        var first = scheduler.Submit("alice", BusyFor(1500), Long);
        var second = scheduler.Submit("alice", BusyFor(300), Long);
        await Eventually.TrueAsync(() => Task.FromResult(second.State == ScheduledTaskState.SentAhead), Deadline, "the second task is written ahead");
        var bobs = scheduler.Submit("bob", BusyFor(100), Long);

        var c = await bobs.Completion.WaitAsync(Deadline);
        Assert.Equal((JobStatus.Succeeded, "100"), (c.Status, c.Result.ResultJson));
        Assert.False(first.Completion.IsCompleted, "bob's task finished while alice's long one was paused, not after it");
        var a = await first.Completion.WaitAsync(Deadline);
        var b = await second.Completion.WaitAsync(Deadline);
        Assert.Equal((JobStatus.Succeeded, "1500"), (a.Status, a.Result.ResultJson));
        Assert.Equal((JobStatus.Succeeded, "300"), (b.Status, b.Result.ResultJson));
        Assert.Equal(pids[first.Id], pids[second.Id]);
        Assert.NotEqual(pids[first.Id], pids[bobs.Id]);
    }

    [Fact]
    public async Task When_the_running_task_times_out_the_task_written_ahead_runs_on_another_worker()
    {
        await using var scheduler = Scheduler();
        var pids = Pids(scheduler);
        var first = scheduler.Submit("alice", BusyFor(20_000), TimeSpan.FromMilliseconds(400));
        var second = scheduler.Submit("alice", BusyFor(5), Long);
        await Eventually.TrueAsync(() => Task.FromResult(second.State == ScheduledTaskState.SentAhead), Deadline, "the second task is written ahead");

        var a = await first.Completion.WaitAsync(Deadline);
        var b = await second.Completion.WaitAsync(Deadline);
        Assert.Equal(JobStatus.TimedOut, a.Status);
        Assert.Equal((JobStatus.Succeeded, "5"), (b.Status, b.Result.ResultJson));
        Assert.NotEqual(pids[first.Id], pids[second.Id]);
    }
}
