using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using P2PShare.Compute;
using P2PShare.Peers;
using P2PShare.Tests.Support;

namespace P2PShare.Tests.Compute;

/// <summary>
/// Timing-sensitive tests (time slicing, fairness) share two cores with their own worker processes;
/// they run alone rather than beside other test classes.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SerialComputeCollection
{
    public const string Name = "serial compute";
}

/// <summary>CPU sharing on a real 3-silo cluster with real sandbox worker processes.</summary>
[Collection(SerialComputeCollection.Name)]
public sealed class ComputeClusterTests
{
    private const string Square = "int main(int x) => x * x;";

    // Burns CPU for the given number of seconds of wall time; with time slicing it simply takes longer.
    private const string Spin = """
        long main(double seconds)
        {
            var until = DateTime.UtcNow.AddSeconds(seconds);
            long n = 0;
            while (DateTime.UtcNow < until) n++;
            return n;
        }
        """;

    private static Task<PeerCluster> StartAsync(int slots = 2, TimeSpan? quantum = null) =>
        PeerCluster.StartAsync(3, services => services.Configure<ComputeOptions>(o =>
        {
            o.Slots = slots;
            o.WarmWorkers = 1;
            o.MaxLiveWorkers = Math.Max(4, slots * 4);
            o.Quantum = quantum ?? TimeSpan.FromMilliseconds(100);
        }));

    private static TaskSpec Task(string program, string args = "[]", bool confidential = false, string submitter = "tester",
        string? on = null, double timeoutSeconds = 60) =>
        new(program, null, args, confidential, TimeSpan.FromSeconds(timeoutSeconds), submitter, on);

    private static async Task<JobInfo> WaitAsync(PeerCluster peers, JobInfo job, TimeSpan? limit = null)
    {
        var deadline = DateTime.UtcNow + (limit ?? TimeSpan.FromSeconds(60));
        while (true)
        {
            var current = await peers.Job(job.JobId).WaitAsync(TimeSpan.FromSeconds(5));
            if (current.IsTerminal) return current;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"job {job.JobId} still {current.Status}");
        }
    }

    [Fact]
    public async Task Task_runs_in_a_worker_and_returns_its_result()
    {
        await using var peers = await StartAsync();
        var job = await peers.Peer("peer-1").SubmitAsync(Task(Square, "[12]"));
        Assert.Equal(JobStatus.Queued, job.Status);
        var done = await WaitAsync(peers, job);
        Assert.Equal(JobStatus.Succeeded, done.Status);
        Assert.Equal("144", done.ResultJson);
        Assert.Equal("peer-1", done.Origin);
        Assert.StartsWith("peer-1:", done.JobId);
        var attempt = Assert.Single(done.Attempts);
        Assert.Equal(done.ExecutedBy, attempt.Peer);
        Assert.Equal(JobStatus.Succeeded, attempt.Status);
        Assert.NotNull(done.StartedUtc);
    }

    [Fact]
    public async Task Confidential_task_never_leaves_origin_peer()
    {
        await using var peers = await StartAsync();
        var jobs = await System.Threading.Tasks.Task.WhenAll(Enumerable.Range(0, 100)
            .Select(i => peers.Peer("peer-2").SubmitAsync(Task(Square, $"[{i}]", confidential: true))));
        var done = await System.Threading.Tasks.Task.WhenAll(jobs.Select(j => WaitAsync(peers, j)));
        Assert.All(done, j =>
        {
            Assert.Equal(JobStatus.Succeeded, j.Status);
            Assert.Equal("peer-2", j.ExecutedBy);
        });
        // The other peers never saw any of them.
        Assert.Empty((await peers.Peer("peer-1").ListJobsAsync(1000)).Jobs);
        Assert.Empty((await peers.Peer("peer-3").ListJobsAsync(1000)).Jobs);
    }

    [Fact]
    public async Task Burst_of_300_equal_tasks_spreads_over_three_peers()
    {
        await using var peers = await StartAsync();
        var jobs = await System.Threading.Tasks.Task.WhenAll(Enumerable.Range(0, 300)
            .Select(i => peers.Peer("peer-1").SubmitAsync(Task(Square, $"[{i}]"))));
        var done = await System.Threading.Tasks.Task.WhenAll(jobs.Select(j => WaitAsync(peers, j, TimeSpan.FromMinutes(2))));
        Assert.All(done, j => Assert.Equal(JobStatus.Succeeded, j.Status));
        var perPeer = done.GroupBy(j => j.ExecutedBy).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(3, perPeer.Count);
        Assert.All(perPeer.Values, count => Assert.InRange(count, 85, 115)); // ±15%
    }

    [Fact]
    public async Task Infinite_loop_is_killed_at_its_timeout_while_the_peer_keeps_serving()
    {
        await using var peers = await StartAsync();
        var peer = peers.Peer("peer-3");
        var loop = await peer.SubmitAsync(Task("int main() { while (true) { } }", on: "peer-3", timeoutSeconds: 2));

        // While the loop spins, the same peer answers memory calls and runs other tasks.
        await peer.SetAsync("alive", [1], null);
        Assert.Equal([1], await peer.GetAsync("alive"));
        var other = await WaitAsync(peers, await peer.SubmitAsync(Task(Square, "[3]", on: "peer-3")));
        Assert.Equal("9", other.ResultJson);

        var ended = await WaitAsync(peers, loop);
        Assert.Equal(JobStatus.TimedOut, ended.Status);
        Assert.Equal(TaskErrorKind.TimedOut, ended.ErrorKind);
        Assert.InRange(ended.RunMs, 1900, 10_000);

        var after = await WaitAsync(peers, await peer.SubmitAsync(Task(Square, "[4]", on: "peer-3")));
        Assert.Equal("16", after.ResultJson);
    }

    [Fact]
    public async Task Short_task_overtakes_long_cpu_bound_tasks_on_a_one_slot_peer()
    {
        await using var peers = await StartAsync(slots: 1);
        var peer = peers.Peer("peer-1");
        // Compile the short program and warm a worker first: the test measures scheduling, not Roslyn.
        Assert.Equal("1", (await WaitAsync(peers, await peer.SubmitAsync(Task(Square, "[1]", on: "peer-1", submitter: "batch")))).ResultJson);
        var longOnes = new[]
        {
            await peer.SubmitAsync(Task(Spin, "[10]", on: "peer-1", submitter: "batch")),
            await peer.SubmitAsync(Task(Spin, "[10]", on: "peer-1", submitter: "batch")),
        };
        await Eventually.TrueAsync(async () => (await peers.Job(longOnes[1].JobId).GetAsync()).Status == JobStatus.Running,
            TimeSpan.FromSeconds(10), "both long tasks have started");

        var clock = Stopwatch.StartNew();
        var quick = await WaitAsync(peers, await peer.SubmitAsync(Task(Square, "[5]", on: "peer-1", submitter: "batch")));
        clock.Stop();

        Assert.Equal("25", quick.ResultJson);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"short task took {clock.Elapsed.TotalMilliseconds:0} ms");
        foreach (var job in longOnes)
        {
            Assert.False((await peers.Job(job.JobId).GetAsync()).IsTerminal);
            await peers.Job(job.JobId).CancelAsync();
        }
    }

    [Fact]
    public async Task One_submitter_flooding_a_peer_does_not_starve_another()
    {
        // Time slicing off (huge quantum): fairness alone must get B's task through.
        await using var peers = await StartAsync(slots: 1, quantum: TimeSpan.FromMinutes(10));
        var peer = peers.Peer("peer-2");
        var flood = new List<JobInfo>();
        for (var i = 0; i < 20; i++) flood.Add(await peer.SubmitAsync(Task(Spin, "[0.5]", on: "peer-2", submitter: "A")));
        var b = await WaitAsync(peers, await peer.SubmitAsync(Task(Square, "[2]", on: "peer-2", submitter: "B")));
        Assert.Equal(JobStatus.Succeeded, b.Status);

        var floodNow = await System.Threading.Tasks.Task.WhenAll(flood.Select(j => peers.Job(j.JobId).GetAsync()));
        var finishedBeforeB = floodNow.Count(j => j.IsTerminal && j.FinishedUtc <= b.FinishedUtc);
        Assert.True(finishedBeforeB <= 2, $"{finishedBeforeB} of A's tasks finished before B's one task");
        foreach (var job in flood) await peers.Job(job.JobId).CancelAsync();
    }

    [Fact]
    public async Task Cancel_removes_a_queued_task_and_kills_a_running_one()
    {
        await using var peers = await StartAsync(slots: 1, quantum: TimeSpan.FromMinutes(10));
        var peer = peers.Peer("peer-1");
        var running = await peer.SubmitAsync(Task(Spin, "[30]", on: "peer-1"));
        await Eventually.TrueAsync(async () => (await peers.Job(running.JobId).GetAsync()).Status == JobStatus.Running,
            TimeSpan.FromSeconds(10), "the long task runs");
        var queued = await peer.SubmitAsync(Task(Spin, "[30]", on: "peer-1"));

        var cancelledQueued = await WaitAsync(peers, await peers.Job(queued.JobId).CancelAsync());
        Assert.Equal(JobStatus.Cancelled, cancelledQueued.Status);
        Assert.Null(cancelledQueued.StartedUtc);

        var cancelledRunning = await WaitAsync(peers, await peers.Job(running.JobId).CancelAsync());
        Assert.Equal(JobStatus.Cancelled, cancelledRunning.Status);
        Assert.NotNull(cancelledRunning.StartedUtc);

        var next = await WaitAsync(peers, await peer.SubmitAsync(Task(Square, "[6]", on: "peer-1")), TimeSpan.FromSeconds(20));
        Assert.Equal("36", next.ResultJson);
    }

    [Fact]
    public async Task Second_run_of_the_same_program_skips_compilation()
    {
        await using var peers = await StartAsync();
        var program = "int main(int x) => x + 40;";
        var first = await WaitAsync(peers, await peers.Peer("peer-3").SubmitAsync(Task(program, "[1]", on: "peer-3")));
        var second = await WaitAsync(peers, await peers.Peer("peer-3").SubmitAsync(Task(program, "[2]", on: "peer-3")));
        Assert.False(first.CompileCached);
        Assert.True(second.CompileCached);
        Assert.Equal("42", second.ResultJson);
    }

    [Fact]
    public async Task Bad_programs_fail_with_their_kind_and_leave_the_peer_serving()
    {
        await using var peers = await StartAsync();
        var peer = peers.Peer("peer-2");
        (string Program, TaskErrorKind Kind, string Fragment)[] cases =
        [
            ("int main() => y;", TaskErrorKind.CompileError, "(1,15): error CS0103"),
            ("string main() => System.IO.File.ReadAllText(\"/etc/passwd\");", TaskErrorKind.NotAllowed, "System.IO.File"),
            ("int main() => throw new InvalidOperationException(\"boom\");", TaskErrorKind.Exception, "boom"),
            ("int f(int x) => f(x + 1) + 1; int main() => f(0);", TaskErrorKind.Crashed, "stack overflow"),
        ];
        foreach (var (program, kind, fragment) in cases)
        {
            var job = await WaitAsync(peers, await peer.SubmitAsync(Task(program, on: "peer-2")));
            Assert.Equal(JobStatus.Failed, job.Status);
            Assert.Equal(kind, job.ErrorKind);
            Assert.Contains(fragment, job.Error);
        }

        Assert.Equal("49", (await WaitAsync(peers, await peer.SubmitAsync(Task(Square, "[7]", on: "peer-2")))).ResultJson);
    }

    [Fact]
    public async Task Vector_arithmetic_runs_and_a_vector_load_past_the_array_is_refused()
    {
        await using var peers = await StartAsync();
        var peer = peers.Peer("peer-1");
        const string outOfBounds = "int main() { var a = new int[4]; return System.Runtime.Intrinsics.Vector128.LoadUnsafe(ref a[0], 1000).GetElement(0); }";
        var refused = await WaitAsync(peers, await peer.SubmitAsync(Task(outOfBounds, on: "peer-1")));
        Assert.Equal(JobStatus.Failed, refused.Status);
        Assert.Equal(TaskErrorKind.NotAllowed, refused.ErrorKind);
        Assert.Contains("System.Runtime.Intrinsics.Vector128.LoadUnsafe (unsafe code)", refused.Error);

        const string simd = "using System.Runtime.Intrinsics; int main(int x) => Vector128.Sum(Vector128.Create(x, 2, 3, 4) * Vector128.Create(10));";
        var done = await WaitAsync(peers, await peer.SubmitAsync(Task(simd, "[1]", on: "peer-1")));
        Assert.Equal(JobStatus.Succeeded, done.Status);
        Assert.Equal("100", done.ResultJson);
    }

    [Fact]
    public async Task Load_reports_show_the_scheduler_and_unknown_jobs_are_not_found()
    {
        await using var peers = await StartAsync(slots: 1, quantum: TimeSpan.FromMinutes(10));
        var peer = peers.Peer("peer-1");
        var jobs = new List<JobInfo>();
        for (var i = 0; i < 3; i++) jobs.Add(await peer.SubmitAsync(Task(Spin, "[20]", on: "peer-1")));
        await Eventually.TrueAsync(async () =>
        {
            var row = (await peers.Tracker.GetPeersAsync()).Single(p => p.Name == "peer-1").Report;
            return row.Slots == 1 && row.RunningTasks == 1 && row.QueuedTasks == 2 && row.CpuLoad == 3.0;
        }, TimeSpan.FromSeconds(10), "peer-1 reports 1 running and 2 queued on 1 slot");
        foreach (var job in jobs) await peers.Job(job.JobId).CancelAsync();

        await Assert.ThrowsAsync<NotFoundException>(() => peers.Job("peer-1:000000000000").GetAsync());
    }
}
