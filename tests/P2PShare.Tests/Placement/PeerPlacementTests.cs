using P2PShare.Peers;
using P2PShare.Tests.Support;

namespace P2PShare.Tests.Placement;

public sealed class PeerPlacementTests
{
    [Fact]
    public async Task Every_peer_grain_activates_on_the_silo_of_its_name()
    {
        await using var peers = await PeerCluster.StartAsync();
        foreach (var name in new[] { "peer-1", "peer-2", "peer-3" })
        {
            var description = await peers.Peer(name).DescribeAsync();
            Assert.Equal(name, description.Name);
            Assert.Equal(peers.Silo(name).SiloAddress, description.Silo);
        }
    }

    [Fact]
    public async Task Unknown_peer_is_PeerUnavailable_and_activates_nowhere()
    {
        await using var peers = await PeerCluster.StartAsync();
        var ex = await Assert.ThrowsAsync<PeerUnavailableException>(() =>
            PeerCall.RunAsync("peer-9", () => peers.Peer("peer-9").DescribeAsync()));
        Assert.Equal("peer-9", ex.Peer);
        Assert.Contains("no such peer", ex.Message);
    }

    [Fact]
    public async Task Stopped_peer_is_PeerUnavailable_and_never_moves()
    {
        await using var peers = await PeerCluster.StartAsync();
        await peers.Peer("peer-3").SetAsync("k", [7], null);
        await peers.Cluster.StopSiloAsync(peers.Silo("peer-3"));

        // Every call after the stop fails as unavailable; none is served by another silo.
        for (var i = 0; i < 5; i++)
        {
            var ex = await Assert.ThrowsAsync<PeerUnavailableException>(() =>
                PeerCall.RunAsync("peer-3", () => peers.Peer("peer-3").GetAsync("k")));
            Assert.Equal("peer-3", ex.Peer);
        }

        await peers.Peer("peer-2").SetAsync("k", [8], null);
        Assert.Equal([8], await peers.Peer("peer-2").GetAsync("k"));
        await peers.WaitForPeersAsync("peer-1", "peer-2");
    }

    [Fact]
    public async Task Killed_peer_is_PeerUnavailable_from_the_first_call_on()
    {
        await using var peers = await PeerCluster.StartAsync();
        await peers.Peer("peer-2").SetAsync("k", [1], null);
        await peers.Cluster.KillSiloAsync(peers.Silo("peer-2"));

        // Before and after membership declares the silo dead, callers see one failure kind.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        var attempts = 0;
        while (DateTime.UtcNow < deadline)
        {
            var ex = await Assert.ThrowsAsync<PeerUnavailableException>(() =>
                PeerCall.RunAsync("peer-2", () => peers.Peer("peer-2").GetAsync("k")));
            Assert.Equal("peer-2", ex.Peer);
            attempts++;
            await Task.Delay(100);
        }

        Assert.True(attempts > 3);
        // The survivors keep working.
        await peers.Peer("peer-1").SetAsync("still", [2], null);
        Assert.Equal([2], await peers.Peer("peer-1").GetAsync("still"));
    }

    [Fact]
    public async Task Deactivating_a_peer_grain_loses_no_data()
    {
        await using var peers = await PeerCluster.StartAsync();
        var peer = peers.Peer("peer-2");
        await peer.SetAsync("durable", [1, 2, 3], null);
        await peers.Cluster.DeactivateAsync(peer);
        await peers.Cluster.WaitForDeactivationAsync(peer);
        Assert.Equal([1, 2, 3], await peers.Peer("peer-2").GetAsync("durable"));
    }
}
