using Microsoft.Extensions.DependencyInjection;
using P2PShare.Compute;
using P2PShare.Peers;
using P2PShare.Tests.Postgres;
using P2PShare.Tests.Support;
using Xunit;

namespace P2PShare.Tests.Compute;

/// <summary>
/// In <c>postgres</c> mode, finished fast-path jobs are written to the job storage in batches, so
/// they can be read after the origin that ran them died.
/// </summary>
[Collection(SerialComputeCollection.Name)]
public sealed class FastPathDurabilityTests(TestDatabase db) : IClassFixture<TestDatabase>
{
    [PostgresFact]
    public async Task Finished_fast_jobs_are_stored_in_a_batch_and_read_after_their_origin_died()
    {
        await using var peers = await PeerCluster.StartAsync(3, services => services.Configure<ComputeOptions>(o =>
        {
            o.Slots = 2;
            o.WarmWorkers = 1;
            // Kept on the fast path however slow this machine compiles the first program.
            o.PromoteAfter = TimeSpan.FromSeconds(25);
        }), db.ConnectionString);
        var done = await Task.WhenAll(Enumerable.Range(1, 10).Select(i =>
            peers.Peer("peer-3").RunAsync(new TaskSpec("int main(int x) => x * x;", null, $"[{i}]", false, null, "tester", null))));
        Assert.All(done, j => Assert.Equal(JobStatus.Succeeded, j.Status));

        // One flush a second writes them all; then the origin goes.
        var writer = peers.Silo("peer-3").ServiceProvider.GetRequiredService<FinishedJobWriter>();
        await Eventually.TrueAsync(() => Task.FromResult(writer.Pending == 0), TimeSpan.FromSeconds(10), "the finished jobs are flushed");
        await writer.FlushAsync(); // a flush in progress when Pending hit 0 has ended once this one ran
        await peers.Cluster.KillSiloAsync(peers.Silo("peer-3"));

        for (var i = 0; i < done.Length; i++)
        {
            JobInfo? read = null;
            var jobId = done[i].JobId;
            await Eventually.TrueAsync(async () =>
            {
                try
                {
                    read = await peers.Job(jobId).GetAsync();
                    return true;
                }
                catch (Exception ex) when (PeerCall.IsUnavailable(ex) || ex is TimeoutException or PeerUnavailableException)
                {
                    return false;
                }
            }, TimeSpan.FromSeconds(30), $"job {jobId} is readable from storage");
            Assert.Equal(JobStatus.Succeeded, read!.Status);
            Assert.Equal(((i + 1) * (i + 1)).ToString(), read.ResultJson);
            Assert.Equal(done[i].ExecutedBy, Assert.Single(read.Attempts).Peer);
        }
    }
}
