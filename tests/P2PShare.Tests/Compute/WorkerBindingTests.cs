using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using P2PShare.Compute;

namespace P2PShare.Tests.Compute;

/// <summary>
/// One trust domain per worker process: the pool and the scheduler, against fake workers, never give
/// a worker that ran one submitter's task to another submitter; idle workers are frozen, thawed for
/// their submitter's next task, and discarded after <c>Compute:IdleWorkerTimeout</c>.
/// </summary>
public sealed class WorkerBindingTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    private readonly FakeWorkerFactory _factory = new();

    private ComputeScheduler Create(int slots = 1, int maxLive = 16, int warm = 0, TimeSpan? idleTimeout = null) =>
        new(_factory, Options.Create(new ComputeOptions
        {
            Slots = slots,
            Quantum = TimeSpan.FromMilliseconds(20),
            MaxLiveWorkers = maxLive,
            WarmWorkers = warm,
            IdleWorkerTimeout = idleTimeout ?? TimeSpan.FromHours(1),
        }), TimeProvider.System, NullLogger<ComputeScheduler>.Instance);

    private WorkerPool Pool(int warm = 0, int maxWorkers = 16, TimeSpan? idleTimeout = null) =>
        new(_factory, warm, warm + 4, maxWorkers, 100, idleTimeout ?? TimeSpan.FromHours(1), TimeProvider.System, NullLogger.Instance);

    // The program hash names the submitter, so a worker's program list says whose tasks it ran.
    private static ExecutionRequest Work(string submitter, int ms = 5) =>
        new(submitter + "-program", [], "work", string.Create(CultureInfo.InvariantCulture, $"[{ms}]"), 1024, 1024);

    private static Task<ScheduledOutcome> Outcome(ScheduledTask task) => task.Completion.WaitAsync(Deadline);

    private static async Task Eventually(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out waiting until {what}");
            await Task.Delay(5);
        }
    }

    private static string Owner(FakeWorker worker) => worker.Programs[0].Split('-')[0];

    [Fact]
    public async Task A_worker_bound_to_one_submitter_never_runs_another_submitters_task()
    {
        // Idle workers of alice are there when bob's tasks start; he must get workers of his own.
        await using var scheduler = Create(slots: 2, warm: 1);
        var submitters = new[] { "alice", "bob", "carol" };
        for (var round = 0; round < 5; round++)
        {
            var tasks = submitters.SelectMany(s => Enumerable.Range(0, 2).Select(_ => scheduler.Submit(s, Work(s), Long))).ToList();
            Assert.All(await Task.WhenAll(tasks.Select(Outcome)), o => Assert.Equal(JobStatus.Succeeded, o.Status));
        }

        var ran = _factory.Workers.Where(w => w.Programs.Count > 0).ToList();
        Assert.All(ran, w => Assert.Single(w.Programs.Distinct()));
        Assert.True(ran.Select(Owner).Distinct().Count() == 3, "each submitter had workers of its own");
        // Workers were reused within a submitter: far fewer workers than the 30 tasks.
        Assert.True(ran.Count < 20, $"{ran.Count} workers ran 30 tasks");
    }

    [Fact]
    public async Task The_pool_hands_a_submitter_only_its_own_idle_worker_or_an_unbound_one()
    {
        await using var pool = Pool();
        var alices = await pool.RentAsync("alice", CancellationToken.None);
        pool.Return(alices);

        var bobs = await pool.RentAsync("bob", CancellationToken.None);
        var alicesAgain = await pool.RentAsync("alice", CancellationToken.None);

        Assert.NotSame(alices, bobs);
        Assert.Same(alices, alicesAgain);
        Assert.Equal("alice", pool.BoundTo(alices));
        Assert.Equal("bob", pool.BoundTo(bobs));
    }

    [Fact]
    public async Task A_warm_worker_is_unbound_until_its_first_task_binds_it()
    {
        await using var pool = Pool(warm: 1);
        pool.Refill();
        await Eventually(() => pool.IdleCount == 1, "a worker is warm");
        var warm = _factory.Workers.Single();
        Assert.Null(pool.BoundTo(warm));

        var rented = await pool.RentAsync("bob", CancellationToken.None);

        Assert.Same(warm, rented);
        Assert.Equal("bob", pool.BoundTo(warm));
        pool.Return(rented);
        // The pool warms another unbound worker for whoever comes next; bob's stays his.
        await Eventually(() => _factory.Workers.Count == 2 && pool.IdleCount == 2, "a new unbound worker is warm");
        var alices = await pool.RentAsync("alice", CancellationToken.None);
        Assert.NotSame(warm, alices);
    }

    [Fact]
    public async Task An_idle_worker_is_frozen_and_thawed_for_its_submitters_next_task()
    {
        await using var scheduler = Create();

        Assert.Equal(JobStatus.Succeeded, (await Outcome(scheduler.Submit("alice", Work("alice"), Long))).Status);
        var worker = _factory.Workers.Single();
        await Eventually(() => worker.IsPaused, "the idle worker is frozen");

        var next = await Outcome(scheduler.Submit("alice", Work("alice", 20), Long));

        Assert.Equal(JobStatus.Succeeded, next.Status);
        Assert.Equal(2, worker.Programs.Count);
        await Eventually(() => worker.IsPaused, "it is frozen again once idle");
        Assert.True(worker.Thaws >= 1 && worker.Freezes >= 2, $"frozen {worker.Freezes} times, thawed {worker.Thaws} times");
    }

    [Fact]
    public async Task A_bound_worker_idle_past_the_timeout_is_discarded_and_a_warm_one_is_kept()
    {
        await using var scheduler = Create(warm: 1, idleTimeout: TimeSpan.FromMilliseconds(200));
        await Eventually(() => _factory.Workers.Count == 1, "a worker is warm");

        Assert.Equal(JobStatus.Succeeded, (await Outcome(scheduler.Submit("alice", Work("alice"), Long))).Status);
        var alices = _factory.Workers.Single(w => w.Programs.Count > 0);

        await Eventually(() => alices.IsDisposed, "alice's idle worker is discarded");
        // The unbound warm worker does not expire: it is the pool's reserve for whoever comes next.
        await Eventually(() => _factory.Workers.Count(w => !w.IsDisposed && w.Programs.Count == 0) == 1, "a warm worker is ready");
        await Task.Delay(400);
        Assert.Equal(1, _factory.Workers.Count(w => !w.IsDisposed));
    }

    [Fact]
    public async Task A_full_pool_discards_another_submitters_idle_worker_to_make_room()
    {
        await using var pool = Pool(maxWorkers: 2);
        var alices = await pool.RentAsync("alice", CancellationToken.None);
        var bobs = await pool.RentAsync("bob", CancellationToken.None);
        pool.Return(alices);
        pool.Return(bobs);

        var carols = await pool.RentAsync("carol", CancellationToken.None);

        Assert.NotSame(alices, carols);
        Assert.NotSame(bobs, carols);
        // The coldest idle worker (alice's, returned first) made room; bob's is still idle for him.
        await Eventually(() => ((FakeWorker)alices).IsDisposed, "alice's idle worker is discarded");
        Assert.False(((FakeWorker)bobs).IsDisposed);
        Assert.Same(bobs, await pool.RentAsync("bob", CancellationToken.None));
    }
}
