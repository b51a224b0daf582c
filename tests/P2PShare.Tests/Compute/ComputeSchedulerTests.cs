using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using P2PShare.Compute;

namespace P2PShare.Tests.Compute;

/// <summary>
/// The scheduler against fake workers in real time. Quanta are short (20 ms); every wait has a
/// generous deadline, and assertions compare orders of events, not tight durations, so they hold on
/// a loaded 2-core machine.
/// </summary>
public sealed class ComputeSchedulerTests
{
    private static readonly TimeSpan Slicing = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan NoSlicing = TimeSpan.FromHours(1);
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    private readonly FakeWorkerFactory _factory = new();

    private ComputeScheduler Create(int slots = 1, TimeSpan? quantum = null, int maxLive = 16, int warm = 0, int recycleAfter = 100) =>
        new(_factory, Options.Create(new ComputeOptions
        {
            Slots = slots,
            Quantum = quantum ?? Slicing,
            MaxLiveWorkers = maxLive,
            WarmWorkers = warm,
            RecycleAfterPrograms = recycleAfter,
        }), TimeProvider.System, NullLogger<ComputeScheduler>.Instance);

    private static ExecutionRequest Work(int ms, string program = "work") =>
        new(program, [], "work", string.Create(CultureInfo.InvariantCulture, $"[{ms}]"), 1024, 1024);

    private static ExecutionRequest Hang(string program = "hang") => new(program, [], "hang", "[]", 1024, 1024);

    private static ExecutionRequest Crash(int ms, string program = "crash") =>
        new(program, [], "crash", string.Create(CultureInfo.InvariantCulture, $"[{ms}]"), 1024, 1024);

    private static Task<ScheduledOutcome> Outcome(ScheduledTask task) => task.Completion.WaitAsync(Deadline);

    /// <summary>Polls a condition until it holds; fails the test at the deadline.</summary>
    private static async Task Eventually(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out waiting until {what}");
            await Task.Delay(5);
        }
    }

    [Fact]
    public async Task A_flooding_submitter_does_not_starve_another()
    {
        // Slicing off: only the rotation between submitters can let B in early.
        await using var scheduler = Create(slots: 1, quantum: NoSlicing);
        var flood = Enumerable.Range(0, 50).Select(_ => scheduler.Submit("alice", Work(200), Long)).ToList();
        var bob = scheduler.Submit("bob", Work(20), Long);

        var outcome = await Outcome(bob);

        Assert.Equal(JobStatus.Succeeded, outcome.Status);
        // FIFO would run all 50 of alice's first; round robin lets bob in right after her current task.
        Assert.True(flood.Count(t => t.Completion.IsCompleted) <= 1,
            $"{flood.Count(t => t.Completion.IsCompleted)} of alice's tasks finished before bob's");
    }

    [Fact]
    public async Task Time_slicing_lets_a_short_task_finish_before_running_long_ones()
    {
        await using var scheduler = Create(slots: 1);
        var first = scheduler.Submit("alice", Work(10_000), Long);
        var second = scheduler.Submit("bob", Work(10_000), Long);
        await Eventually(() => first.StartedUtc is not null && second.StartedUtc is not null, "both long tasks run");

        var quick = scheduler.Submit("carol", Work(50), Long);
        var outcome = await Outcome(quick);

        Assert.Equal(JobStatus.Succeeded, outcome.Status);
        Assert.False(first.Completion.IsCompleted);
        Assert.False(second.Completion.IsCompleted);
        Assert.True(outcome.FinishedUtc - outcome.SubmittedUtc < TimeSpan.FromSeconds(5),
            $"the short task took {outcome.FinishedUtc - outcome.SubmittedUtc}");
        Assert.True(_factory.Pauses > 0 && _factory.Resumes > 0, "workers were paused and resumed");
        Assert.Equal(1, _factory.MaxProgressing);
    }

    [Fact]
    public async Task Without_time_slicing_a_short_task_waits_for_the_long_one()
    {
        await using var scheduler = Create(slots: 1, quantum: NoSlicing);
        var first = scheduler.Submit("alice", Work(400), Long);
        var second = scheduler.Submit("bob", Work(400), Long);
        await Eventually(() => first.StartedUtc is not null, "the first long task runs");

        var quick = scheduler.Submit("carol", Work(20), Long);
        var outcome = await Outcome(quick);
        var firstOutcome = await Outcome(first);
        await Outcome(second);

        Assert.Equal(JobStatus.Succeeded, outcome.Status);
        Assert.True(outcome.StartedUtc >= firstOutcome.FinishedUtc, "the short task started only after the long one ended");
        Assert.Equal(0, _factory.Pauses);
    }

    [Fact]
    public async Task Live_workers_never_exceed_the_bound_and_extra_tasks_wait_unstarted()
    {
        await using var scheduler = Create(slots: 1, maxLive: 3);
        var loads = new List<SchedulerLoad>();
        scheduler.Changed += () =>
        {
            var load = scheduler.Load;
            lock (loads) loads.Add(load);
        };

        var tasks = Enumerable.Range(0, 6).Select(i => scheduler.Submit($"user{i}", Work(150), Long)).ToList();
        var outcomes = await Task.WhenAll(tasks.Select(Outcome));

        Assert.All(outcomes, o => Assert.Equal(JobStatus.Succeeded, o.Status));
        Assert.Equal(3, _factory.MaxRuns);
        Assert.Equal(1, _factory.MaxProgressing);
        lock (loads)
        {
            Assert.All(loads, l => Assert.InRange(l.Running, 0, 3));
            Assert.Contains(loads, l => l is { Running: 3, Queued: > 0 });
        }
    }

    [Fact]
    public async Task A_submitters_queued_tasks_go_straight_to_its_worker_without_a_freeze_per_task()
    {
        // Slicing off: on a loaded machine a slice could end mid-task and rotate alice's own queue onto another worker.
        await using var scheduler = Create(slots: 1, quantum: NoSlicing);
        var tasks = Enumerable.Range(0, 6).Select(i => scheduler.Submit("alice", Work(5, $"p{i}"), Long)).ToList();

        foreach (var task in tasks) Assert.Equal(JobStatus.Succeeded, (await Outcome(task)).Status);

        var worker = Assert.Single(_factory.Workers);
        Assert.Equal(["p0", "p1", "p2", "p3", "p4", "p5"], worker.Programs);
        // Frozen once, when it went back to the pool after the last task; never thawed and frozen between tasks.
        await Eventually(() => worker.Freezes == 1, "the worker is frozen once, idle");
        Assert.Equal(0, worker.Thaws);
    }

    [Fact]
    public async Task A_task_handed_its_predecessors_worker_still_times_out_and_is_cancelled_and_the_next_gets_a_new_worker()
    {
        await using var scheduler = Create(slots: 1, quantum: NoSlicing);
        var first = scheduler.Submit("alice", Work(5, "first"), Long);
        var runaway = scheduler.Submit("alice", Hang("runaway"), TimeSpan.FromMilliseconds(300));
        var hung = scheduler.Submit("alice", Hang("hung"), Long);
        var last = scheduler.Submit("alice", Work(5, "last"), Long);

        Assert.Equal(JobStatus.Succeeded, (await Outcome(first)).Status);
        var timedOut = await Outcome(runaway);
        Assert.Equal(JobStatus.TimedOut, timedOut.Status);
        Assert.Equal("ran longer than 300 ms", timedOut.Result.Error);
        var handedOver = _factory.WorkerThatRan("first");
        Assert.Equal(handedOver.ProcessId, _factory.WorkerThatRan("runaway").ProcessId);
        Assert.Equal(1, handedOver.Kills);

        await Eventually(() => hung.StartedUtc is not null, "the hung task runs");
        Assert.True(scheduler.Cancel(hung.Id));
        Assert.Equal(JobStatus.Cancelled, (await Outcome(hung)).Status);
        Assert.Equal(1, _factory.WorkerThatRan("hung").Kills);
        Assert.Equal(JobStatus.Succeeded, (await Outcome(last)).Status);
        Assert.NotEqual(_factory.WorkerThatRan("hung").ProcessId, _factory.WorkerThatRan("last").ProcessId);
    }

    [Fact]
    public void Slots_and_workers_default_to_the_cores_the_peer_really_has()
    {
        var options = new ComputeOptions();

        // .NET's processor count honours the affinity mask and the cgroup CPU quota.
        Assert.Equal(Environment.ProcessorCount, ComputeOptions.Cores);
        Assert.Equal(ComputeOptions.Cores, options.Slots);
        Assert.Equal(ComputeOptions.Cores, options.WarmWorkers);
        // 64 submitters, each with a worker of its own, take turns without a worker start per task.
        Assert.True(options.MaxLiveWorkers >= ComputeOptions.DefaultServedSubmitters + options.Slots, $"MaxLiveWorkers {options.MaxLiveWorkers}");
        Assert.True(options.SandboxUidCount >= options.MaxLiveWorkers);
    }

    [Fact]
    public async Task Timeout_kills_the_worker_and_other_tasks_still_complete()
    {
        await using var scheduler = Create(slots: 1);
        var runaway = scheduler.Submit("alice", Hang("runaway"), TimeSpan.FromMilliseconds(300));
        var fine = scheduler.Submit("bob", Work(100, "fine"), Long);

        var timedOut = await Outcome(runaway);
        var done = await Outcome(fine);

        Assert.Equal(JobStatus.TimedOut, timedOut.Status);
        Assert.Equal(TaskErrorKind.TimedOut, timedOut.Result.ErrorKind);
        Assert.Equal("ran longer than 300 ms", timedOut.Result.Error);
        Assert.True(timedOut.RunTime >= TimeSpan.FromMilliseconds(300), $"run time {timedOut.RunTime}");
        var killed = _factory.WorkerThatRan("runaway");
        Assert.Equal(1, killed.Kills);
        await Eventually(() => killed.IsDisposed, "the killed worker is disposed");
        Assert.Equal(JobStatus.Succeeded, done.Status);
        Assert.NotEqual(killed.ProcessId, _factory.WorkerThatRan("fine").ProcessId);
    }

    [Fact]
    public async Task Paused_time_does_not_count_toward_the_timeout()
    {
        // Each needs 1.2 s of CPU within a 2.2 s timeout; sharing one slot, the later one finishes
        // more than 2.2 s of wall-clock time after it started. The 1 s margin absorbs stalls of a
        // loaded test machine; stalls only lengthen the wall-clock time.
        await using var scheduler = Create(slots: 1);
        var timeout = TimeSpan.FromMilliseconds(2200);
        var a = scheduler.Submit("alice", Work(1200), timeout);
        var b = scheduler.Submit("bob", Work(1200), timeout);

        var outcomes = new[] { await Outcome(a), await Outcome(b) };

        Assert.All(outcomes, o => Assert.Equal(JobStatus.Succeeded, o.Status));
        Assert.All(outcomes, o => Assert.InRange(o.RunTime, TimeSpan.FromSeconds(1), timeout));
        Assert.Contains(outcomes, o => o.FinishedUtc - o.StartedUtc!.Value > timeout);
        Assert.True(_factory.Pauses > 0);
    }

    [Fact]
    public async Task Cancelled_queued_task_never_starts()
    {
        await using var scheduler = Create(slots: 1, quantum: NoSlicing);
        var running = scheduler.Submit("alice", Hang(), Long);
        var queued = scheduler.Submit("bob", Work(10, "never"), Long);
        await Eventually(() => running.State == ScheduledTaskState.Running, "the first task runs");

        Assert.Equal(ScheduledTaskState.Queued, queued.State);
        Assert.True(scheduler.Cancel(queued.Id));
        var outcome = await Outcome(queued);

        Assert.Equal(JobStatus.Cancelled, outcome.Status);
        Assert.Equal(TaskErrorKind.Cancelled, outcome.Result.ErrorKind);
        Assert.Null(outcome.StartedUtc);
        Assert.False(scheduler.Cancel(queued.Id));
        Assert.Equal(new SchedulerLoad(1, 1, 0, 2), scheduler.Load);
        Assert.DoesNotContain(_factory.Workers, w => w.Programs.Contains("never"));
    }

    [Fact]
    public async Task Cancelled_running_task_has_its_worker_killed()
    {
        await using var scheduler = Create(slots: 1);
        var task = scheduler.Submit("alice", Hang(), Long);
        await Eventually(() => task.State == ScheduledTaskState.Running, "the task runs");

        Assert.True(scheduler.Cancel(task.Id));
        var outcome = await Outcome(task);

        Assert.Equal(JobStatus.Cancelled, outcome.Status);
        Assert.NotNull(outcome.StartedUtc);
        Assert.Equal(1, _factory.WorkerThatRan("hang").Kills);
        Assert.False(scheduler.Cancel(task.Id));
        Assert.False(scheduler.Cancel(Guid.NewGuid()));
        Assert.Equal(0, scheduler.Load.Running);
    }

    [Fact]
    public async Task Cancelled_paused_task_has_its_worker_killed_and_the_other_keeps_running()
    {
        await using var scheduler = Create(slots: 1);
        var a = scheduler.Submit("alice", Hang("a"), Long);
        var b = scheduler.Submit("bob", Hang("b"), Long);
        await Eventually(() => a.State == ScheduledTaskState.Paused || b.State == ScheduledTaskState.Paused, "a task is paused");
        var (paused, other) = a.State == ScheduledTaskState.Paused ? (a, b) : (b, a);

        Assert.True(scheduler.Cancel(paused.Id));
        var outcome = await Outcome(paused);

        Assert.Equal(JobStatus.Cancelled, outcome.Status);
        Assert.Equal(1, _factory.WorkerThatRan(paused == a ? "a" : "b").Kills);
        await Eventually(() => other.State == ScheduledTaskState.Running, "the other task runs");
        Assert.Equal(new SchedulerLoad(1, 1, 0, 2), scheduler.Load);
    }

    [Fact]
    public async Task Crashed_worker_is_replaced_and_the_next_task_runs()
    {
        await using var scheduler = Create(slots: 1, warm: 1);
        var crash = await Outcome(scheduler.Submit("alice", Crash(20), Long));
        var next = await Outcome(scheduler.Submit("alice", Work(20, "next"), Long));

        Assert.Equal(JobStatus.Failed, crash.Status);
        Assert.Equal(TaskErrorKind.Crashed, crash.Result.ErrorKind);
        Assert.Equal(JobStatus.Succeeded, next.Status);
        var crashed = _factory.WorkerThatRan("crash");
        Assert.NotEqual(crashed.ProcessId, _factory.WorkerThatRan("next").ProcessId);
        await Eventually(() => crashed.IsDisposed, "the crashed worker is disposed");
    }

    [Fact]
    public async Task Worker_is_retired_after_too_many_distinct_programs()
    {
        await using var scheduler = Create(slots: 1, recycleAfter: 2);
        foreach (var program in new[] { "p1", "p1", "p2", "p3", "p4", "p5", "p6" })
            Assert.Equal(JobStatus.Succeeded, (await Outcome(scheduler.Submit("alice", Work(5, program), Long))).Status);

        // Which worker a task gets depends on when the previous one is back in the pool; what must
        // always hold is that no worker goes past the limit and every worker that reached it retires.
        Assert.All(_factory.Workers, w => Assert.True(w.Programs.Distinct().Count() <= 2, $"worker ran {string.Join(",", w.Programs)}"));
        await Eventually(() => _factory.Workers.Where(w => w.Programs.Distinct().Count() == 2).All(w => w.IsDisposed),
            "workers that loaded two programs are retired");
    }

    [Fact]
    public async Task Pool_keeps_warm_workers_started_ahead()
    {
        await using var scheduler = Create(slots: 1, warm: 2);

        await Eventually(() => _factory.Workers.Count == 2, "two workers are warm");
        await Outcome(scheduler.Submit("alice", Work(5), Long));

        Assert.Equal(0, _factory.RunsOnForeignScheduler);
        await Eventually(() => _factory.Workers.Count(w => !w.IsDisposed) >= 2, "the pool refills");
    }

    [Fact]
    public async Task Load_counts_started_and_queued_tasks_and_Changed_is_raised()
    {
        await using var scheduler = Create(slots: 2, quantum: NoSlicing);
        var changes = 0;
        var started = 0;
        scheduler.Changed += () => Interlocked.Increment(ref changes);
        scheduler.TaskStarted += _ => Interlocked.Increment(ref started);
        Assert.Equal(new SchedulerLoad(2, 0, 0, 0), scheduler.Load);

        var tasks = Enumerable.Range(0, 3).Select(_ => scheduler.Submit("alice", Hang(), Long)).ToList();
        await Eventually(() => Volatile.Read(ref started) == 2, "two tasks start");

        Assert.Equal(new SchedulerLoad(2, 2, 1, 3), scheduler.Load);
        Assert.All(tasks.Take(2), t => Assert.NotNull(t.StartedUtc));
        Assert.Equal(ScheduledTaskState.Queued, tasks[2].State);
        Assert.True(Volatile.Read(ref changes) >= 4, $"Changed raised {changes} times");

        foreach (var task in tasks) scheduler.Cancel(task.Id);
        await Task.WhenAll(tasks.Select(Outcome));
        Assert.Equal(new SchedulerLoad(2, 0, 0, 3), scheduler.Load);
        Assert.True(scheduler.CanAccept);
    }

    [Fact]
    public async Task Broken_pool_fails_tasks_clearly_stops_accepting_and_recovers()
    {
        _factory.FailStarts = true;
        await using var scheduler = Create(slots: 1);

        var outcome = await Outcome(scheduler.Submit("alice", Work(5), Long));

        Assert.Equal(JobStatus.Failed, outcome.Status);
        Assert.Equal(TaskErrorKind.Unschedulable, outcome.Result.ErrorKind);
        Assert.Equal("worker processes cannot start on this peer: fake factory: worker binary is missing", outcome.Result.Error);
        Assert.False(scheduler.CanAccept);
        Assert.Contains("worker binary is missing", scheduler.UnavailableReason);
        Assert.Equal(new SchedulerLoad(1, 0, 0, 1), scheduler.Load);

        _factory.FailStarts = false;
        await Eventually(() => scheduler.CanAccept, "the pool recovers");
        Assert.Equal(JobStatus.Succeeded, (await Outcome(scheduler.Submit("alice", Work(5), Long))).Status);
    }

    [Fact]
    public async Task A_broken_python_pool_withdraws_only_python_and_comes_back()
    {
        var python = new FakeWorkerFactory { Language = TaskLanguages.Python, FailStarts = true };
        await using var scheduler = new ComputeScheduler([_factory, python], Options.Create(new ComputeOptions
        {
            Slots = 1,
            Quantum = Slicing,
            MaxLiveWorkers = 16,
            WarmWorkers = 0,
        }), TimeProvider.System, NullLogger<ComputeScheduler>.Instance);
        var changes = 0;
        scheduler.Changed += () => Interlocked.Increment(ref changes);
        Assert.Equal([TaskLanguages.CSharp, TaskLanguages.Python], scheduler.Runtimes);

        var failed = await Outcome(scheduler.Submit("alice", new ExecutionRequest("py", [], "work", "[5]", 1024, 1024, TaskLanguages.Python), Long));
        Assert.Equal(TaskErrorKind.Unschedulable, failed.Result.ErrorKind);
        Assert.Contains("worker binary is missing", failed.Result.Error);
        Assert.Equal([TaskLanguages.CSharp], scheduler.Runtimes);
        Assert.True(scheduler.HasRuntime(TaskLanguages.Python));
        Assert.Contains("python workers cannot start", scheduler.RuntimeMissingReason(TaskLanguages.Python));
        // C# is untouched: the peer still accepts and runs it.
        Assert.True(scheduler.CanAccept);
        Assert.Equal(JobStatus.Succeeded, (await Outcome(scheduler.Submit("alice", Work(5), Long))).Status);
        Assert.True(Volatile.Read(ref changes) > 0);

        python.FailStarts = false;
        await Eventually(() => scheduler.Runtimes.Contains(TaskLanguages.Python), "python comes back once its workers start");
        Assert.Equal(JobStatus.Succeeded, (await Outcome(scheduler.Submit("alice", new ExecutionRequest("py", [], "work", "[5]", 1024, 1024, TaskLanguages.Python), Long))).Status);
        Assert.False(scheduler.HasRuntime("cobol"));
    }

    [Fact]
    public async Task Tasks_never_run_on_the_submitters_scheduler()
    {
        // A grain submits from its activation's scheduler; the work must still run on the thread pool.
        await using var scheduler = Create(slots: 1);
        var exclusive = new ConcurrentExclusiveSchedulerPair().ExclusiveScheduler;

        var task = await Task.Factory.StartNew(
            () => scheduler.Submit("alice", Work(5), Long), CancellationToken.None, TaskCreationOptions.None, exclusive);
        await Outcome(task);

        Assert.Equal(1, _factory.RunsStarted);
        Assert.Equal(0, _factory.RunsOnForeignScheduler);
    }

    [Fact]
    public async Task Dispose_kills_workers_and_ends_unfinished_tasks_peer_lost()
    {
        var scheduler = Create(slots: 1, maxLive: 2);
        var tasks = new[] { "a", "b", "c" }.Select(p => scheduler.Submit(p, Hang(p), Long)).ToList();
        await Eventually(() => tasks.Count(t => t.StartedUtc is not null) == 2, "two tasks started");

        await scheduler.DisposeAsync();

        var outcomes = await Task.WhenAll(tasks.Select(Outcome));
        // Not the tasks' fault: PeerLost tells their supervisors to run them elsewhere.
        Assert.All(outcomes, o => Assert.Equal(JobStatus.PeerLost, o.Status));
        Assert.All(_factory.Workers, w => Assert.False(w.IsHealthy));
        Assert.False(scheduler.CanAccept);
        Assert.Throws<ObjectDisposedException>(() => scheduler.Submit("a", Work(5), Long));
    }
}
