using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using P2PShare.Compute;
using P2PShare.Tests.Support;
using Xunit.Abstractions;

namespace P2PShare.Tests.Compute;

[Collection(SerialComputeCollection.Name)]
public sealed class PeerMemoryBoundTests(ITestOutputHelper log)
{
    [Fact]
    public async Task A_thousand_distinct_programs_grow_the_peer_by_less_than_100_MB()
    {
        await using var peers = await PeerCluster.StartAsync(1, services => services.Configure<ComputeOptions>(o =>
        {
            o.Slots = 2;
            o.WarmWorkers = 1;
        }));
        var peer = peers.Peer("peer-1");

        async Task RunAsync(int from, int count)
        {
            for (var batch = from; batch < from + count; batch += 50)
            {
                var jobs = await Task.WhenAll(Enumerable.Range(batch, Math.Min(50, from + count - batch)).Select(i =>
                    peer.SubmitAsync(new TaskSpec($"int main(int x) => x + {i};", null, "[1]", false, null, "mem", "peer-1"))));
                foreach (var job in jobs)
                {
                    var done = await peers.Job(job.JobId).WaitAsync(TimeSpan.FromSeconds(20));
                    Assert.Equal(JobStatus.Succeeded, done.Status);
                }
            }
        }

        // Warm up Roslyn and the workers first: the first compilations load the compiler itself.
        await RunAsync(0, 100);
        var before = Measure();
        var clock = Stopwatch.StartNew();
        await RunAsync(100, 1000);
        var after = Measure();

        log.WriteLine($"1000 distinct programs in {clock.Elapsed.TotalSeconds:0.0} s; managed {Mb(before.Managed)} -> {Mb(after.Managed)} MB, " +
                      $"working set {Mb(before.WorkingSet)} -> {Mb(after.WorkingSet)} MB");
        Assert.True(after.Managed - before.Managed < 100 * Bytes.MiB, "managed heap grew by 100 MB or more");
        Assert.True(after.WorkingSet - before.WorkingSet < 100 * Bytes.MiB, "working set grew by 100 MB or more");
    }

    private static (long Managed, long WorkingSet) Measure()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var self = Process.GetCurrentProcess();
        return (GC.GetTotalMemory(true), self.WorkingSet64);
    }

    private static string Mb(long bytes) => (bytes / (double)Bytes.MiB).ToString("0");
}
