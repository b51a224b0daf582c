using Microsoft.Extensions.DependencyInjection;
using P2PShare.Compute;
using P2PShare.Tests.Support;

namespace P2PShare.Tests.Compute;

/// <summary>
/// The supervisor's backstop reminder exists only for jobs that run long enough to need it: short
/// jobs never touch the reminder table (three calls saved per job), long ones get it after 10 s and
/// lose it when they end.
/// </summary>
[Collection(SerialComputeCollection.Name)]
public sealed class JobReminderTests
{
    [Fact]
    public async Task Only_long_jobs_register_the_backstop_reminder_and_it_goes_when_they_end()
    {
        await using var peers = await PeerCluster.StartAsync();
        var table = peers.Cluster.Silos[0].ServiceProvider.GetRequiredService<IReminderTable>();
        async Task<int> RemindersOf(string jobId) => (await table.ReadRows(peers.Job(jobId).GetGrainId())).Reminders.Count;

        var quick = await JobWaits.TerminalAsync(peers, (await peers.Peer("peer-1").SubmitAsync(JobWaits.Slow(2, 0.1))).JobId, TimeSpan.FromSeconds(60));
        Assert.Equal(JobStatus.Succeeded, quick.Status);
        Assert.Equal(0, await RemindersOf(quick.JobId));

        var slow = await peers.Peer("peer-2").SubmitAsync(JobWaits.Slow(3, 14));
        await JobWaits.RunningAsync(peers, slow.JobId);
        Assert.Equal(0, await RemindersOf(slow.JobId));
        await Eventually.TrueAsync(async () => await RemindersOf(slow.JobId) == 1, TimeSpan.FromSeconds(20), "the long job registers its reminder after 10 s");
        var done = await JobWaits.TerminalAsync(peers, slow.JobId, TimeSpan.FromSeconds(60));
        Assert.Equal("9", done.ResultJson);
        await Eventually.TrueAsync(async () => await RemindersOf(slow.JobId) == 0, TimeSpan.FromSeconds(10), "the ended job removes its reminder");
    }
}
