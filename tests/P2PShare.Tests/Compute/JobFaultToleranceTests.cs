using Microsoft.Extensions.DependencyInjection;
using P2PShare.Compute;
using P2PShare.Peers;
using P2PShare.Tests.Support;
using Xunit;

namespace P2PShare.Tests.Compute;

/// <summary>
/// Jobs outlive the peers running them: a non-confidential attempt lost with its peer is re-run on
/// another, a confidential one ends PeerLost, and a task's own failure is never retried.
/// </summary>
[Collection(SerialComputeCollection.Name)]
public sealed class JobFaultToleranceTests
{
    private static Task<PeerCluster> StartAsync() =>
        PeerCluster.StartAsync(3, services => services.Configure<ComputeOptions>(o =>
        {
            o.Slots = 2;
            o.WarmWorkers = 1;
        }));

    [Fact]
    public async Task Tasks_on_a_killed_peer_are_rerun_elsewhere_and_every_job_succeeds_once()
    {
        await using var peers = await StartAsync();
        var origin = peers.Peer("peer-1");
        var jobs = new List<JobInfo>();
        for (var i = 1; i <= 12; i++) jobs.Add(await origin.SubmitAsync(JobWaits.Slow(i, 3)));

        // Kill peer-3 once it runs some of them.
        await Eventually.TrueAsync(async () =>
        {
            var states = await Task.WhenAll(jobs.Select(j => peers.Job(j.JobId).GetAsync()));
            return states.Any(s => s.ExecutedBy == "peer-3" && s.Status == JobStatus.Running);
        }, TimeSpan.FromSeconds(20), "peer-3 runs one of the tasks");
        var onVictim = (await Task.WhenAll(jobs.Select(j => peers.Job(j.JobId).GetAsync())))
            .Where(s => s.ExecutedBy == "peer-3" && !s.IsTerminal).Select(s => s.JobId).ToHashSet();
        await peers.Cluster.KillSiloAsync(peers.Silo("peer-3"));

        var done = await Task.WhenAll(jobs.Select(j => JobWaits.TerminalAsync(peers, j.JobId, TimeSpan.FromSeconds(90))));
        for (var i = 0; i < done.Length; i++)
        {
            Assert.Equal(JobStatus.Succeeded, done[i].Status);
            Assert.Equal(((long)(i + 1) * (i + 1)).ToString(), done[i].ResultJson);
        }

        Assert.NotEmpty(onVictim);
        foreach (var job in done.Where(d => onVictim.Contains(d.JobId)))
        {
            Assert.True(job.Attempts.Length >= 2, $"{job.JobId} has {job.Attempts.Length} attempt(s)");
            Assert.Equal("peer-3", job.Attempts[0].Peer);
            Assert.Equal(JobStatus.PeerLost, job.Attempts[0].Status);
            Assert.Contains("peer-3", job.Attempts[0].Note);
            Assert.NotEqual("peer-3", job.ExecutedBy);
            Assert.Equal(job.Attempts.Length, job.Attempt);
        }

        Assert.All(done.Where(d => !onVictim.Contains(d.JobId)), d => Assert.Single(d.Attempts));
    }

    [Fact]
    public async Task Task_with_no_retries_left_ends_PeerLost()
    {
        await using var peers = await StartAsync();
        // Two submissions land on two different peers; follow the one that does not run on the origin,
        // whose silo holds the job records of this in-memory test cluster.
        var first = await peers.Peer("peer-1").SubmitAsync(JobWaits.Slow(5, 30, retries: 0));
        var second = await peers.Peer("peer-1").SubmitAsync(JobWaits.Slow(6, 30, retries: 0));
        var states = new[] { await JobWaits.RunningAsync(peers, first.JobId), await JobWaits.RunningAsync(peers, second.JobId) };
        var victim = states.First(s => s.ExecutedBy != "peer-1");
        await peers.Cluster.KillSiloAsync(peers.Silo(victim.ExecutedBy));

        var done = await JobWaits.TerminalAsync(peers, victim.JobId, TimeSpan.FromSeconds(30));
        Assert.Equal(JobStatus.PeerLost, done.Status);
        Assert.Equal(TaskErrorKind.PeerLost, done.ErrorKind);
        Assert.Contains("no retries left", done.Error);
        Assert.Single(done.Attempts);
        foreach (var s in states) await peers.Job(s.JobId).CancelAsync();
    }

    [Fact]
    public async Task A_task_whose_peer_dies_under_it_on_two_peers_is_not_tried_again()
    {
        await using var peers = await PeerCluster.StartAsync(4, services => services.Configure<ComputeOptions>(o =>
        {
            o.Slots = 1;
            o.WarmWorkers = 1;
        }));
        // The origin holds the job records of this in-memory cluster and must survive: keep its one slot
        // busy so that the tracker sends the attempts elsewhere.
        var hold = await peers.Peer("peer-1").SubmitAsync(JobWaits.Slow(1, 60, on: "peer-1"));
        await JobWaits.RunningAsync(peers, hold.JobId);
        var job = await peers.Peer("peer-1").SubmitAsync(JobWaits.Slow(2, 60, retries: 3));

        var first = await JobWaits.RunningAsync(peers, job.JobId);
        Assert.NotEqual("peer-1", first.ExecutedBy);
        await peers.Cluster.KillSiloAsync(peers.Silo(first.ExecutedBy));
        JobInfo second = first;
        await Eventually.TrueAsync(async () =>
        {
            second = await peers.Job(job.JobId).GetAsync();
            return second.Attempt == 2 && second.Status == JobStatus.Running;
        }, TimeSpan.FromSeconds(60), "the second attempt runs");
        Assert.NotEqual("peer-1", second.ExecutedBy);
        await peers.Cluster.KillSiloAsync(peers.Silo(second.ExecutedBy));

        var done = await JobWaits.TerminalAsync(peers, job.JobId, TimeSpan.FromSeconds(60));
        Assert.Equal(JobStatus.Failed, done.Status);
        Assert.Equal(TaskErrorKind.Crashed, done.ErrorKind);
        Assert.Contains($"on '{first.ExecutedBy}' and on '{second.ExecutedBy}'", done.Error);
        Assert.Contains("not tried again", done.Error);
        Assert.Equal(2, done.Attempts.Length);
        // The holding task ends with the cluster: cancelling it here could meet a client whose gateway
        // was one of the killed silos.
    }

    [Fact]
    public async Task Pinned_task_whose_peer_dies_is_not_moved()
    {
        await using var peers = await StartAsync();
        var job = await peers.Peer("peer-1").SubmitAsync(JobWaits.Slow(3, 30, on: "peer-2"));
        await JobWaits.RunningAsync(peers, job.JobId);
        await peers.Cluster.KillSiloAsync(peers.Silo("peer-2"));

        var done = await JobWaits.TerminalAsync(peers, job.JobId, TimeSpan.FromSeconds(30));
        Assert.Equal(JobStatus.PeerLost, done.Status);
        Assert.Contains("pinned", done.Error);
        Assert.Equal("peer-2", Assert.Single(done.Attempts).Peer);
    }

    [Fact]
    public async Task Task_failing_by_itself_is_not_retried()
    {
        await using var peers = await StartAsync();
        var job = await peers.Peer("peer-1").SubmitAsync(
            new TaskSpec("int main() => throw new InvalidOperationException(\"own fault\");", null, "[]", false, null, "tester", null, 3));
        var done = await JobWaits.TerminalAsync(peers, job.JobId, TimeSpan.FromSeconds(30));
        Assert.Equal(JobStatus.Failed, done.Status);
        Assert.Equal(TaskErrorKind.Exception, done.ErrorKind);
        Assert.Single(done.Attempts);
    }

    [Fact]
    public async Task Malformed_tasks_are_refused_at_submission_and_leave_no_job()
    {
        await using var peers = await StartAsync();
        var peer = peers.Peer("peer-1");
        await Assert.ThrowsAsync<InvalidArgumentException>(() => peer.SubmitAsync(JobWaits.Slow(1, 1, retries: 11)));
        await Assert.ThrowsAsync<InvalidArgumentException>(() => peer.SubmitAsync(JobWaits.Slow(1, 1) with { ArgsJson = "{" }));
        await Assert.ThrowsAsync<InvalidArgumentException>(() => peers.Job("not-a-job-id").GetAsync());
        await Assert.ThrowsAsync<NotFoundException>(() => peers.Job("peer-1:0123456789ab").WaitAsync(TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public async Task Finished_job_expires_after_its_retention()
    {
        await using var peers = await PeerCluster.StartAsync(1, services => services.Configure<ComputeOptions>(o =>
        {
            o.WarmWorkers = 1;
            o.JobRetention = TimeSpan.FromSeconds(2);
        }));
        var job = await peers.Peer("peer-1").SubmitAsync(JobWaits.Slow(4, 0));
        var done = await JobWaits.TerminalAsync(peers, job.JobId, TimeSpan.FromSeconds(30));
        Assert.Equal("16", done.ResultJson);
        Assert.Equal("16", (await peers.Job(job.JobId).GetAsync()).ResultJson);
        await Eventually.TrueAsync(async () =>
        {
            try
            {
                await peers.Job(job.JobId).GetAsync();
                return false;
            }
            catch (ExpiredException ex)
            {
                Assert.Equal($"job '{job.JobId}' expired: finished jobs are kept for 2 s", ex.Message);
                return true;
            }
        }, TimeSpan.FromSeconds(10), "the finished job is dropped after 2 s");

        // One more retention period later the record itself is gone.
        await Eventually.TrueAsync(async () =>
        {
            try
            {
                await peers.Job(job.JobId).GetAsync();
                return false;
            }
            catch (ExpiredException)
            {
                return false;
            }
            catch (NotFoundException)
            {
                return true;
            }
        }, TimeSpan.FromSeconds(10), "the expired job is forgotten after 2 s more");
    }

    [Fact]
    public async Task Finished_job_nobody_reads_is_swept_on_a_timer()
    {
        await using var peers = await PeerCluster.StartAsync(1, services => services.Configure<ComputeOptions>(o =>
        {
            o.WarmWorkers = 1;
            o.JobRetention = TimeSpan.FromSeconds(2);
        }));
        var retained = peers.Silo("peer-1").ServiceProvider.GetRequiredService<RetainedJobs>();
        var job = await peers.Peer("peer-1").SubmitAsync(JobWaits.Slow(4, 0));
        Assert.Equal("16", (await JobWaits.TerminalAsync(peers, job.JobId, TimeSpan.FromSeconds(30))).ResultJson);
        Assert.Equal(2, retained.RetainedBytes); // "16"

        // Nobody reads the job: the peer's sweep alone drops its result.
        await Eventually.TrueAsync(() => Task.FromResult(retained.RetainedBytes == 0), TimeSpan.FromSeconds(10), "the sweep drops the unread result");
        var ex = await Assert.ThrowsAsync<ExpiredException>(() => peers.Job(job.JobId).GetAsync());
        Assert.Contains("finished jobs are kept for 2 s", ex.Message);
    }

    [Fact]
    public async Task Over_the_retained_result_cap_the_oldest_job_expires_and_the_newest_stays()
    {
        await using var peers = await PeerCluster.StartAsync(1, services => services.Configure<ComputeOptions>(o =>
        {
            o.WarmWorkers = 1;
            o.MaxResultBytes = 1024;
            o.MaxRetainedResultBytes = 2500; // two 1000-byte results fit, three do not
        }));
        const string kilobyte = "string main(int i) => new string((char)('a' + i), 998);"; // 1000 bytes of JSON
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var job = await peers.Peer("peer-1").SubmitAsync(new TaskSpec(kilobyte, null, $"[{i}]", false, TimeSpan.FromSeconds(60), "tester", null));
            Assert.Equal(JobStatus.Succeeded, (await JobWaits.TerminalAsync(peers, job.JobId, TimeSpan.FromSeconds(30))).Status);
            ids.Add(job.JobId);
        }

        await Eventually.TrueAsync(async () =>
        {
            try
            {
                await peers.Job(ids[0]).GetAsync();
                return false;
            }
            catch (ExpiredException ex)
            {
                Assert.Equal($"job '{ids[0]}' expired: peer 'peer-1' keeps at most {Bytes.Format(2500)} of finished jobs' results and dropped the oldest", ex.Message);
                return true;
            }
        }, TimeSpan.FromSeconds(10), "the oldest job expires");
        Assert.Equal(new string('c', 998), System.Text.Json.JsonSerializer.Deserialize<string>((await peers.Job(ids[2]).GetAsync()).ResultJson!));
        Assert.True(peers.Silo("peer-1").ServiceProvider.GetRequiredService<RetainedJobs>().RetainedBytes <= 2500);
    }
}
