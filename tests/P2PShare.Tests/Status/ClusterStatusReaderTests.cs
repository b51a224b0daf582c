using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using P2PShare.Compute;
using P2PShare.Peers;
using P2PShare.Status;
using P2PShare.Tests.Support;

namespace P2PShare.Tests.Status;

public sealed class ClusterStatusReaderTests
{
    [Fact]
    public async Task A_peer_that_does_not_list_its_jobs_costs_one_timeout_and_is_named()
    {
        var stuck = new StuckJobLists("peer-3");
        await using var peers = await PeerCluster.StartAsync(3, services => services.AddSingleton<IIncomingGrainCallFilter>(stuck));
        var job = await peers.Peer("peer-1").SubmitAsync(new TaskSpec("int main() => 1;", null, "[]", true, null, "reader", null));
        await JobWaits.TerminalAsync(peers, job.JobId, TimeSpan.FromSeconds(30));

        var watch = Stopwatch.StartNew();
        var status = await new ClusterStatusReader(peers.Client, TimeProvider.System).ReadAsync(10, CancellationToken.None);
        watch.Stop();

        Assert.True(watch.Elapsed < ClusterStatusReader.PeerTimeout + TimeSpan.FromSeconds(2), $"took {watch.Elapsed}");
        Assert.Equal(["peer-1", "peer-2", "peer-3"], status.Peers.Select(p => p.Name));
        Assert.Equal(["peer-3"], status.PeersWithoutJobs);
        var row = Assert.Single(status.Jobs);
        Assert.Equal(job.JobId, row.JobId);
        Assert.Equal("peer-1", row.ExecutedBy);
        Assert.Equal(3, status.Cluster.Peers);
        Assert.Equal(status.Peers.Sum(p => p.Slots), status.Cluster.Slots);
    }

    [Fact]
    public void Job_rows_keep_the_first_line_of_an_error_and_never_the_result()
    {
        var info = new JobInfo("peer-1:abc", JobStatus.Failed, "peer-1", "peer-2", "me", false, "main",
            DateTime.UtcNow, DateTime.UtcNow, DateTime.UtcNow, 1.234, 5.678, "42", TaskErrorKind.CompileError,
            "(1,1): error CS1002: ; expected\n(1,2): error CS1003: more" + new string('x', 500), "out", false);

        var row = JobRow.From(info);

        Assert.Equal("(1,1): error CS1002: ; expected", row.Error);
        Assert.Equal("CompileError", row.ErrorKind);
        Assert.Equal(1.2, row.QueueMs);
        Assert.DoesNotContain(typeof(JobRow).GetProperties(), p => p.Name is "Result" or "ResultJson" or "Output");
    }

    /// <summary>Never lets one peer answer a job listing in time, as a dying or overloaded peer would.</summary>
    private sealed class StuckJobLists(string peer) : IIncomingGrainCallFilter
    {
        public async Task Invoke(IIncomingGrainCallContext context)
        {
            if (context.Grain is IPeerGrain && context.InterfaceMethod.Name == nameof(IPeerGrain.ListJobsAsync) && context.TargetId.Key.ToString() == peer)
                await Task.Delay(TimeSpan.FromSeconds(10));
            await context.Invoke();
        }
    }
}
