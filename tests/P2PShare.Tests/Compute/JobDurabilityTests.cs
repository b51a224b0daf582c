using Microsoft.Extensions.DependencyInjection;
using P2PShare.Compute;
using P2PShare.Peers;
using P2PShare.Tests.Postgres;
using P2PShare.Tests.Support;
using Xunit;

namespace P2PShare.Tests.Compute;

/// <summary>
/// With job records in PostgreSQL (as in <c>postgres</c> mode), a job outlives the silo that
/// supervised it: the record is read back on another silo and the job is followed to its end.
/// </summary>
[Collection(SerialComputeCollection.Name)]
public sealed class JobDurabilityTests(TestDatabase db) : IClassFixture<TestDatabase>
{
    private Task<PeerCluster> StartAsync() =>
        PeerCluster.StartAsync(3, services => services.Configure<ComputeOptions>(o =>
        {
            o.Slots = 2;
            o.WarmWorkers = 1;
        }), db.ConnectionString);

    [PostgresFact]
    public async Task Confidential_task_whose_origin_dies_ends_PeerLost_and_is_never_run_elsewhere()
    {
        await using var peers = await StartAsync();
        var job = await peers.Peer("peer-3").SubmitAsync(JobWaits.Slow(9, 60, confidential: true));
        await JobWaits.RunningAsync(peers, job.JobId);
        await peers.Cluster.KillSiloAsync(peers.Silo("peer-3"));

        var done = await JobWaits.TerminalAsync(peers, job.JobId, TimeSpan.FromSeconds(60));
        Assert.Equal(JobStatus.PeerLost, done.Status);
        Assert.Equal(TaskErrorKind.PeerLost, done.ErrorKind);
        Assert.Contains("confidential", done.Error);
        var attempt = Assert.Single(done.Attempts);
        Assert.Equal("peer-3", attempt.Peer);
        Assert.Equal(JobStatus.PeerLost, attempt.Status);
        // The survivors never saw the task.
        foreach (var survivor in new[] { "peer-1", "peer-2" })
            Assert.DoesNotContain((await peers.Peer(survivor).ListJobsAsync(100)).Jobs, j => j.JobId == job.JobId);
    }

    [PostgresFact]
    public async Task Job_whose_supervising_silo_dies_is_finished_from_its_stored_record()
    {
        await using var peers = await StartAsync();
        // Submitted on peer-3 (which holds the job's grain), run on peer-1: kill the supervisor only.
        var job = await peers.Peer("peer-3").SubmitAsync(JobWaits.Slow(12, 4, on: "peer-1"));
        await JobWaits.RunningAsync(peers, job.JobId);
        await peers.Cluster.KillSiloAsync(peers.Silo("peer-3"));

        var done = await JobWaits.TerminalAsync(peers, job.JobId, TimeSpan.FromSeconds(60));
        Assert.Equal(JobStatus.Succeeded, done.Status);
        Assert.Equal("144", done.ResultJson);
        Assert.Equal("peer-1", Assert.Single(done.Attempts).Peer);
    }

    [PostgresFact]
    public async Task Task_whose_peer_and_supervisor_die_together_is_rerun_from_the_stored_record()
    {
        await using var peers = await StartAsync();
        // Submitted on peer-2 and run there too (tracker pick excluded by pinning is not allowed for
        // retries, so let the tracker choose and kill whichever peer runs it along with peer-2).
        var job = await peers.Peer("peer-2").SubmitAsync(JobWaits.Slow(5, 6));
        var running = await JobWaits.RunningAsync(peers, job.JobId);
        await peers.Cluster.KillSiloAsync(peers.Silo("peer-2"));
        if (running.ExecutedBy != "peer-2") await peers.Cluster.KillSiloAsync(peers.Silo(running.ExecutedBy));

        var done = await JobWaits.TerminalAsync(peers, job.JobId, TimeSpan.FromSeconds(60));
        Assert.Equal(JobStatus.Succeeded, done.Status);
        Assert.Equal("25", done.ResultJson);
        Assert.Equal(2, done.Attempts.Length);
        Assert.Equal(JobStatus.PeerLost, done.Attempts[0].Status);
        Assert.DoesNotContain(done.ExecutedBy, new[] { "peer-2", running.ExecutedBy });
    }
}
