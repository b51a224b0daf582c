using System.Diagnostics;
using System.Text;
using P2PShare.EndToEnd.Infrastructure;
using Xunit;

namespace P2PShare.EndToEnd;

/// <summary>A peer process dies (SIGKILL): the cluster notices, and the survivors keep serving.</summary>
[Collection(LocalClusterCollection.Name)]
public sealed class PeerFailureTests(LocalCluster cluster) : IClassFixture<LocalCluster>
{
    private static readonly TimeSpan DetectionDeadline = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Killed_peer_leaves_the_list_and_reports_unavailable_while_the_others_keep_serving()
    {
        var before = new Dictionary<string, string>();
        foreach (var peer in new[] { "peer-1", "peer-2" })
        {
            before[peer] = await SetAndGetAsync(peer);
        }

        var kill = await cluster.ClusterScriptAsync(TimeSpan.FromSeconds(30), "kill", "peer-3");
        Assert.True(kill.ExitCode == 0, kill.ToString());
        var killedAt = Stopwatch.StartNew();

        // If peer-3 hosted the tracker, the tracker reactivates elsewhere and is briefly empty until
        // the survivors' next reports; what must hold within the deadline is exactly the survivors.
        IReadOnlyList<string> listed;
        while (!(listed = await cluster.ListedPeerNamesAsync()).Order().SequenceEqual(["peer-1", "peer-2"]))
        {
            Assert.True(
                killedAt.Elapsed < DetectionDeadline,
                $"after {killedAt.Elapsed.TotalSeconds:0.0}s the peers are [{string.Join(", ", listed)}]\n{cluster.PeerLogs()}");
            await Task.Delay(250);
        }

        var dead = await cluster.CliAsync("mem", "get", "somekey", "--peer", "peer-3");
        Assert.True(dead.ExitCode == 5, dead.ToString());
        Assert.Single(dead.StderrLines);
        Assert.Contains("unavailable", dead.Stderr);

        foreach (var peer in new[] { "peer-1", "peer-2" })
        {
            var earlier = await cluster.CliAsync("mem", "get", before[peer], "--peer", peer);
            Assert.True(earlier.ExitCode == 0, earlier.ToString());
            await SetAndGetAsync(peer);
        }
    }

    /// <summary>Stores a fresh value on the peer, reads it back, returns its key.</summary>
    private async Task<string> SetAndGetAsync(string peer)
    {
        var key = $"e2e-survivor-{Guid.NewGuid():N}";
        var value = $"{peer} {Guid.NewGuid()}";
        var set = await cluster.CliAsync("mem", "set", key, value, "--peer", peer);
        Assert.True(set.ExitCode == 0, set.ToString());
        var get = await cluster.CliAsync("mem", "get", key, "--peer", peer);
        Assert.True(get.ExitCode == 0, get.ToString());
        Assert.Equal(Encoding.UTF8.GetBytes(value), get.StdoutBytes);
        return key;
    }
}
