using Microsoft.Extensions.DependencyInjection;
using P2PShare.Compute;
using P2PShare.Peers;
using P2PShare.Tests.Postgres;
using P2PShare.Tests.Support;
using Xunit;

namespace P2PShare.Tests.Compute;

/// <summary>
/// In <c>postgres</c> mode a finished job's record is swept from storage after the retention even
/// when the silo that supervised it is gone and nobody ever reads it again.
/// </summary>
[Collection(SerialComputeCollection.Name)]
public sealed class StoredJobSweepTests(TestDatabase db) : IClassFixture<TestDatabase>
{
    private static readonly TimeSpan Retention = TimeSpan.FromSeconds(2);

    // peer-2 supervises and keeps records a day, so only the sweep of peer-1 (2 s) can end them.
    private Task<PeerCluster> StartAsync() =>
        PeerCluster.StartAsync(2, services => services.Configure<ComputeOptions>(o => o.WarmWorkers = 1), db.ConnectionString,
            (peer, services) => services.Configure<ComputeOptions>(o => o.JobRetention = peer == "peer-1" ? Retention : TimeSpan.FromDays(1)));

    private Task<long> RowsOfAsync(string jobId) =>
        db.ScalarAsync<long>($"SELECT count(*) FROM p2pshare_grain_state WHERE grain_id_extension = '{jobId}'");

    [PostgresFact]
    public async Task Finished_job_whose_supervisor_stopped_is_swept_from_storage_unread()
    {
        await using var peers = await StartAsync();
        var job = await peers.Peer("peer-2").SubmitAsync(JobWaits.Slow(7, 0, on: "peer-2"));
        Assert.Equal("49", (await JobWaits.TerminalAsync(peers, job.JobId, TimeSpan.FromSeconds(30))).ResultJson);
        // The record the sweep reads: the grain key is the job id, under grain type "job".
        var row = Assert.Single(await db.RowsAsync($"SELECT grain_type, payload IS NOT NULL FROM p2pshare_grain_state WHERE grain_id_extension = '{job.JobId}'"));
        Assert.Equal(["job", true], row);

        // The supervisor goes, and with it the only silo that tracked the job.
        await peers.Cluster.StopSiloAsync(peers.Silo("peer-2"));

        // Nobody reads the job: peer-1's storage sweep expires it, and one retention later deletes its row.
        await Eventually.TrueAsync(async () => await RowsOfAsync(job.JobId) == 0, TimeSpan.FromSeconds(30), "the unread record is deleted");
        await Assert.ThrowsAsync<NotFoundException>(() => peers.Job(job.JobId).GetAsync());
    }

    [PostgresFact]
    public async Task Running_job_whose_record_looks_old_is_left_to_finish()
    {
        await using var peers = await StartAsync();
        var job = await peers.Peer("peer-1").SubmitAsync(JobWaits.Slow(8, 3, on: "peer-1"));
        await JobWaits.RunningAsync(peers, job.JobId);
        // Hostile case: a running job's record last written an hour ago is due by its age alone.
        await TestDatabase.ExecuteAsync(db.ConnectionString,
            $"UPDATE p2pshare_grain_state SET modified_at = now() - interval '1 hour' WHERE grain_id_extension = '{job.JobId}'");
        var sweep = peers.Silo("peer-1").ServiceProvider.GetRequiredService<StoredJobSweep>();
        Assert.True(await SweptAsync(sweep, job.JobId) > 0);

        var done = await JobWaits.TerminalAsync(peers, job.JobId, TimeSpan.FromSeconds(30));
        Assert.Equal(JobStatus.Succeeded, done.Status);
        Assert.Equal("64", done.ResultJson);
    }

    // A timer tick may hold the sweep; call until one call of our own ran and saw the job's row.
    private async Task<int> SweptAsync(StoredJobSweep sweep, string jobId)
    {
        var called = 0;
        await Eventually.TrueAsync(async () =>
        {
            called = await sweep.SweepAsync();
            return called > 0 || await RowsOfAsync(jobId) == 0;
        }, TimeSpan.FromSeconds(10), "a sweep reads the due record");
        return called;
    }
}
