using Microsoft.Extensions.DependencyInjection;
using Orleans.Runtime;
using P2PShare.Compute;
using P2PShare.Peers;
using P2PShare.Tests.Support;
using Xunit;

namespace P2PShare.Tests.Compute;

/// <summary>
/// The fast path (<see cref="IPeerGrain.RunAsync"/>, <see cref="IPeerGrain.RunBatchAsync"/>): one call
/// to the executing peer picked from the origin's load view, the origin's call as the supervision,
/// records in the origin's memory, promotion to a durable job grain after the threshold.
/// </summary>
[Collection(SerialComputeCollection.Name)]
public sealed class FastPathTests
{
    private const string Square = "int main(int x) => x * x;";

    // Tests of the fast path itself keep tasks on it however slow this machine compiles the first program.
    private static async Task<PeerCluster> StartAsync(int slots = 2, TimeSpan? promoteAfter = null)
    {
        var peers = await PeerCluster.StartAsync(3, services => services.Configure<ComputeOptions>(o =>
        {
            o.Slots = slots;
            o.WarmWorkers = 1;
            o.MaxLiveWorkers = Math.Max(4, slots * 4);
            o.PromoteAfter = promoteAfter ?? TimeSpan.FromSeconds(25);
        }));

        // The tracker lists every peer once the cluster is up, but an origin routes from its own view,
        // which takes the table at its next report exchange: a burst sent before that split over the
        // peers that had registered when that origin last exchanged (seen: 300 tasks over 2 of 3 peers).
        foreach (var name in new[] { "peer-1", "peer-2", "peer-3" })
        {
            var view = peers.Silo(name).ServiceProvider.GetRequiredService<P2PShare.Tracker.LoadView>();
            await Eventually.TrueAsync(() => System.Threading.Tasks.Task.FromResult(view.Peers.Length == 3), TimeSpan.FromSeconds(20),
                $"{name}'s load view lists the 3 peers");
        }

        return peers;
    }

    private static TaskSpec Task(string program, string args = "[]", bool confidential = false, string? on = null) =>
        new(program, null, args, confidential, TimeSpan.FromSeconds(60), "tester", on);

    private static async Task<int> JobGrainActivationsAsync(PeerCluster peers)
    {
        var stats = await peers.Client.GetGrain<IManagementGrain>(0).GetSimpleGrainStatistics();
        return stats.Where(s => s.GrainType.Contains(nameof(JobGrain), StringComparison.Ordinal)).Sum(s => s.ActivationCount);
    }

    [Fact]
    public async Task Fast_task_answers_with_its_result_and_creates_no_job_grain()
    {
        await using var peers = await StartAsync();
        var done = await System.Threading.Tasks.Task.WhenAll(Enumerable.Range(1, 20).Select(i => peers.Peer("peer-1").RunAsync(Task(Square, $"[{i}]"))));
        for (var i = 0; i < done.Length; i++)
        {
            Assert.Equal(JobStatus.Succeeded, done[i].Status);
            Assert.Equal(((i + 1) * (i + 1)).ToString(), done[i].ResultJson);
            Assert.StartsWith("peer-1:", done[i].JobId);
            Assert.Equal(done[i].ExecutedBy, Assert.Single(done[i].Attempts).Peer);
        }

        Assert.Equal(0, await JobGrainActivationsAsync(peers));

        // Still readable as any job: through its grain (which asks the origin), and in the executing peer's list.
        var job = done[6];
        var read = await peers.Job(job.JobId).GetAsync();
        Assert.Equal(JobStatus.Succeeded, read.Status);
        Assert.Equal("49", read.ResultJson);
        Assert.Equal(job.ExecutedBy, read.ExecutedBy);
        Assert.Contains((await peers.Peer(job.ExecutedBy).ListJobsAsync(100)).Jobs, j => j.JobId == job.JobId);
        await Assert.ThrowsAsync<NotFoundException>(() => peers.Job("peer-1:0000000000000").GetAsync());
    }

    [Fact]
    public async Task Malformed_args_are_refused_at_submission_with_why_and_the_peer_keeps_serving()
    {
        await using var peers = await StartAsync();
        var origin = peers.Peer("peer-1");
        var deep = new string('[', 65) + new string(']', 65); // past JSON's default depth of 64
        (string Args, string Why)[] hostile =
        [
            ("{\"a\": 1}", "args must be a JSON array"),
            ("7", "args must be a JSON array"),
            ("\"[1]\"", "args must be a JSON array"),
            ("[1", "args are not valid JSON"),
            ("[1] [2]", "args are not valid JSON"),
            ("[1] x", "args are not valid JSON"),
            ("", "args are not valid JSON"),
            ("   ", "args are not valid JSON"),
            ("[1, // no comments\n 2]", "args are not valid JSON"),
            (deep, "args are not valid JSON"),
            ("[\"\ud800\"]" + new string(' ', 2000) + "{", "args are not valid JSON"), // longer than the stack buffer
        ];
        foreach (var (args, why) in hostile)
        {
            var refused = await Assert.ThrowsAsync<InvalidArgumentException>(() => origin.RunAsync(Task(Square, args)));
            Assert.StartsWith(why, refused.Message);
        }

        Assert.Equal(0, await JobGrainActivationsAsync(peers));
        var fine = await origin.RunAsync(Task(Square, " [ 12 ] "));
        Assert.Equal(JobStatus.Succeeded, fine.Status);
        Assert.Equal("144", fine.ResultJson);
        var nested = await origin.RunAsync(Task("int main(int[] x) => x.Length;", "[" + new string(' ', 3000) + "[1, 2, 3]]"));
        Assert.Equal("3", nested.ResultJson);
    }

    [Fact]
    public async Task Burst_of_300_fast_tasks_from_one_origin_splits_within_15_percent()
    {
        await using var peers = await StartAsync();
        var done = await System.Threading.Tasks.Task.WhenAll(Enumerable.Range(0, 300)
            .Select(i => peers.Peer("peer-1").RunAsync(Task(Square, $"[{i}]"))));
        Assert.All(done, j => Assert.Equal(JobStatus.Succeeded, j.Status));
        var perPeer = done.GroupBy(j => j.ExecutedBy).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(3, perPeer.Count);
        Assert.All(perPeer.Values, count => Assert.InRange(count, 85, 115)); // ±15%
    }

    [Fact]
    public async Task Confidential_fast_task_never_leaves_its_origin()
    {
        await using var peers = await StartAsync();
        var done = await System.Threading.Tasks.Task.WhenAll(Enumerable.Range(0, 50)
            .Select(i => peers.Peer("peer-2").RunAsync(Task(Square, $"[{i}]", confidential: true))));
        Assert.All(done, j =>
        {
            Assert.Equal(JobStatus.Succeeded, j.Status);
            Assert.Equal("peer-2", j.ExecutedBy);
        });
        Assert.Empty((await peers.Peer("peer-1").ListJobsAsync(1000)).Jobs);
        Assert.Empty((await peers.Peer("peer-3").ListJobsAsync(1000)).Jobs);
    }

    [Fact]
    public async Task Task_outliving_the_threshold_is_promoted_and_readable_while_running_and_after()
    {
        await using var peers = await StartAsync(promoteAfter: TimeSpan.FromSeconds(1));
        var running = await peers.Peer("peer-1").RunAsync(JobWaits.Slow(3, 3));
        Assert.False(running.IsTerminal);
        var seen = await JobWaits.RunningAsync(peers, running.JobId);
        Assert.Equal(running.ExecutedBy, seen.ExecutedBy);
        Assert.Equal(1, await JobGrainActivationsAsync(peers));

        var done = await JobWaits.TerminalAsync(peers, running.JobId, TimeSpan.FromSeconds(60));
        Assert.Equal(JobStatus.Succeeded, done.Status);
        Assert.Equal("9", done.ResultJson);
        Assert.Equal(running.ExecutedBy, Assert.Single(done.Attempts).Peer);
        Assert.Equal("9", (await peers.Job(running.JobId).GetAsync()).ResultJson);
    }

    [Fact]
    public async Task Batch_streams_each_result_as_it_finishes()
    {
        await using var peers = await StartAsync(promoteAfter: TimeSpan.FromSeconds(20));
        TaskSpec[] tasks = [JobWaits.Slow(1, 3), JobWaits.Slow(2, 0), JobWaits.Slow(3, 0)];
        var order = new List<int>();
        await foreach (var item in peers.Peer("peer-1").RunBatchAsync([.. tasks]))
        {
            Assert.Null(item.Error);
            Assert.Equal(JobStatus.Succeeded, item.Job!.Status);
            Assert.Equal(((item.Index + 1) * (item.Index + 1)).ToString(), item.Job.ResultJson);
            order.Add(item.Index);
        }

        Assert.Equal(3, order.Count);
        Assert.Equal(0, order[^1]); // the slow one comes last, though it was first in the batch
        Assert.Equal([0, 1, 2], order.Order());
    }

    [Fact]
    public async Task Batch_keeps_eight_tasks_per_slot_in_flight_so_its_tasks_do_not_queue_into_promotion()
    {
        await using var peers = await StartAsync(slots: 2);
        var window = JobRunner.BatchWindow(6);
        Assert.Equal(6 * JobRunner.BatchTasksPerSlot, window);
        var view = peers.Silo("peer-1").ServiceProvider.GetRequiredService<P2PShare.Tracker.LoadView>();
        int InFlight() => view.Peers.Sum(p => view.InFlight(p.Name));

        var results = new List<BatchItem>();
        var most = 0;
        await foreach (var item in peers.Peer("peer-1").RunBatchAsync([.. Enumerable.Range(0, 200).Select(i => JobWaits.Slow(i, 0.02))]))
        {
            results.Add(item);
            most = Math.Max(most, InFlight());
        }

        Assert.Equal(200, results.Count);
        Assert.All(results, r => Assert.Equal(JobStatus.Succeeded, r.Job!.Status));
        Assert.Equal(Enumerable.Range(0, 200), results.Select(r => r.Index).Order());
        // Pipelined beyond one task per slot, never beyond the window (was 1,024, whatever the slots).
        Assert.InRange(most, 7, window);
        Assert.Equal(0, InFlight());
    }

    [Fact]
    public async Task Batch_reports_a_task_no_peer_can_take_beside_the_others()
    {
        await using var peers = await StartAsync();
        var items = new List<BatchItem>();
        await foreach (var item in peers.Peer("peer-1").RunBatchAsync([Task(Square, "[2]"), Task(Square, "[3]", on: "peer-9")]))
            items.Add(item);
        var ok = Assert.Single(items, i => i.Index == 0);
        Assert.Equal("4", ok.Job!.ResultJson);
        var refused = Assert.Single(items, i => i.Index == 1);
        Assert.Null(refused.Job);
        Assert.Contains("peer-9", refused.Error);
    }

    [Fact]
    public async Task Silo_killed_under_a_fast_task_fails_the_call_and_the_task_reruns_elsewhere()
    {
        // A long threshold keeps the tasks on the fast path: the origin's awaiting call is their only supervisor.
        await using var peers = await StartAsync(slots: 1, promoteAfter: TimeSpan.FromSeconds(25));
        var runs = Enumerable.Range(1, 3).Select(i => peers.Peer("peer-1").RunAsync(JobWaits.Slow(i, 6))).ToList();
        JobInfo? victim = null;
        await Eventually.TrueAsync(async () =>
        {
            foreach (var peer in new[] { "peer-2", "peer-3" })
            {
                victim = (await peers.Peer(peer).ListJobsAsync(10)).Jobs.FirstOrDefault(j => j.Status == JobStatus.Running);
                if (victim is not null) return true;
            }

            return false;
        }, TimeSpan.FromSeconds(30), "a task runs on peer-2 or peer-3");
        await peers.Cluster.KillSiloAsync(peers.Silo(victim!.ExecutedBy));

        JobInfo done;
        var index = -1;
        try
        {
            var all = await System.Threading.Tasks.Task.WhenAll(runs);
            done = all.Single(j => j.JobId == victim.JobId);
            index = Array.IndexOf(all, done);
        }
        catch (Exception ex) when (PeerCall.IsUnavailable(ex) || ex is TimeoutException or PeerUnavailableException)
        {
            // The client's own gateway was the killed silo: read the job through its grain instead.
            done = await JobWaits.TerminalAsync(peers, victim.JobId, TimeSpan.FromSeconds(60));
        }

        Assert.Equal(JobStatus.Succeeded, done.Status);
        if (index >= 0) Assert.Equal(((index + 1) * (index + 1)).ToString(), done.ResultJson);
        Assert.Equal(2, done.Attempts.Length);
        Assert.Equal(victim.ExecutedBy, done.Attempts[0].Peer);
        Assert.Equal(JobStatus.PeerLost, done.Attempts[0].Status);
        Assert.NotEqual(victim.ExecutedBy, done.ExecutedBy);
    }

    [Fact]
    public async Task Pinned_fast_task_whose_peer_dies_ends_PeerLost_and_is_not_moved()
    {
        await using var peers = await StartAsync(promoteAfter: TimeSpan.FromSeconds(25));
        var run = peers.Peer("peer-1").RunAsync(JobWaits.Slow(3, 10, on: "peer-2"));
        await Eventually.TrueAsync(async () => (await peers.Peer("peer-2").ListJobsAsync(10)).Jobs.Any(j => j.Status == JobStatus.Running),
            TimeSpan.FromSeconds(30), "the pinned task runs on peer-2");
        var jobId = (await peers.Peer("peer-2").ListJobsAsync(10)).Jobs[0].JobId;
        await peers.Cluster.KillSiloAsync(peers.Silo("peer-2"));

        JobInfo done;
        try
        {
            done = await run;
        }
        catch (Exception ex) when (PeerCall.IsUnavailable(ex) || ex is TimeoutException or PeerUnavailableException)
        {
            done = await JobWaits.TerminalAsync(peers, jobId, TimeSpan.FromSeconds(60));
        }

        Assert.Equal(JobStatus.PeerLost, done.Status);
        Assert.Contains("pinned", done.Error);
        Assert.Equal("peer-2", Assert.Single(done.Attempts).Peer);
    }

    [Fact]
    public async Task Cancel_reaches_a_fast_task_through_its_grain()
    {
        await using var peers = await StartAsync(promoteAfter: TimeSpan.FromSeconds(25));
        var run = peers.Peer("peer-1").RunAsync(JobWaits.Slow(5, 20, on: "peer-3"));
        await Eventually.TrueAsync(async () => (await peers.Peer("peer-3").ListJobsAsync(10)).Jobs.Any(j => j.Status == JobStatus.Running),
            TimeSpan.FromSeconds(30), "the task runs on peer-3");
        var jobId = (await peers.Peer("peer-3").ListJobsAsync(10)).Jobs[0].JobId;

        var cancelled = await peers.Job(jobId).CancelAsync();
        Assert.Equal(JobStatus.Cancelled, cancelled.Status);
        Assert.Equal(JobStatus.Cancelled, (await run).Status);
    }
}
