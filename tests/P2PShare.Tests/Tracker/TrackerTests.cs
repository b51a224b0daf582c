using Orleans.TestingHost;
using P2PShare.Tests.Support;
using P2PShare.Tracker;

namespace P2PShare.Tests.Tracker;

public sealed class TrackerTests
{
    [Fact]
    public async Task Every_peer_registers_with_its_quotas_and_gateway()
    {
        await using var peers = await PeerCluster.StartAsync();
        var table = await peers.Tracker.GetPeersAsync();
        Assert.Equal(["peer-1", "peer-2", "peer-3"], table.Select(p => p.Name));
        foreach (var row in table)
        {
            Assert.Equal(256 * Bytes.MiB, row.Report.MemoryQuota);
            Assert.Equal(10 * Bytes.GiB, row.Report.DiskQuota);
            Assert.Equal(peers.Silo(row.Name).SiloAddress, row.Report.Silo);
            Assert.Matches(@"^[\d.]+:\d+$", row.Report.Gateway);
            Assert.True(row.Report.Slots > 0);
        }
    }

    [Fact]
    public async Task Memory_change_reaches_the_tracker_without_waiting_for_the_heartbeat()
    {
        await using var peers = await PeerCluster.StartAsync();
        await peers.Peer("peer-2").SetAsync("k", new byte[1000], null);
        await Eventually.TrueAsync(async () =>
            (await peers.Tracker.GetPeersAsync()).Single(p => p.Name == "peer-2").Report.MemoryUsed == 1001,
            TimeSpan.FromSeconds(5), "peer-2 reports its memory use");
    }

    [Fact]
    public async Task Gracefully_stopped_peer_unregisters()
    {
        await using var peers = await PeerCluster.StartAsync();
        // Stop a peer that does not host the tracker, so the registry itself survives the stop.
        var trackerPeer = PeerCluster.PeerName(TrackerSilo(peers).Name);
        var victim = new[] { "peer-1", "peer-2", "peer-3" }.First(p => p != trackerPeer);
        await peers.Cluster.StopSiloAsync(peers.Silo(victim));
        // Unregistering is part of the stop, so the row is gone as soon as the stop returns.
        Assert.DoesNotContain(victim, await peers.TrackedPeersAsync());
        Assert.Equal(2, (await peers.TrackedPeersAsync()).Length);
    }

    [Fact]
    public async Task Killed_peer_is_removed_quickly()
    {
        await using var peers = await PeerCluster.StartAsync();
        var started = DateTime.UtcNow;
        await peers.Cluster.KillSiloAsync(peers.Silo("peer-3"));
        await peers.WaitForPeersAsync("peer-1", "peer-2");
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Tracker_is_rebuilt_after_its_silo_is_killed()
    {
        await using var peers = await PeerCluster.StartAsync();
        var trackerSilo = TrackerSilo(peers);
        var survivors = new[] { "peer-1", "peer-2", "peer-3" }.Where(p => p != PeerCluster.PeerName(trackerSilo.Name)).ToArray();

        await peers.Cluster.KillSiloAsync(trackerSilo);

        // No one re-registers by hand: the next reports rebuild the registry on the new activation.
        await peers.WaitForPeersAsync(survivors);
        Assert.NotEqual(trackerSilo.SiloAddress, TrackerSilo(peers).SiloAddress);
        var picked = await peers.Tracker.PickPeerAsync(PickRequest.Any);
        Assert.Contains(picked, survivors);
    }

    [Fact]
    public async Task A_burst_of_picks_spreads_evenly_over_peers()
    {
        await using var peers = await PeerCluster.StartAsync();
        var picks = await Task.WhenAll(Enumerable.Range(0, 300).Select(_ => peers.Tracker.PickPeerAsync(PickRequest.Any)));
        var counts = picks.GroupBy(p => p).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(3, counts.Count);
        foreach (var (peer, count) in counts)
            Assert.InRange(count, 95, 105); // reservations make it near-exact; random ties alone would not
    }

    [Fact]
    public async Task Pick_skips_excluded_peers_and_fails_clearly_when_none_is_left()
    {
        await using var peers = await PeerCluster.StartAsync();
        var request = new PickRequest(["peer-1", "peer-2"]);
        for (var i = 0; i < 10; i++) Assert.Equal("peer-3", await peers.Tracker.PickPeerAsync(request));
        var ex = await Assert.ThrowsAsync<NoPeersAvailableException>(() =>
            peers.Tracker.PickPeerAsync(new PickRequest(["peer-1", "peer-2", "peer-3"])));
        Assert.Equal(ErrorKind.NoPeersAvailable, ex.Kind);
    }

    private static InProcessSiloHandle TrackerSilo(PeerCluster peers)
    {
        var id = peers.Tracker.GetGrainId();
        Assert.True(peers.Cluster.TryGetGrainContext(id, out var context), "tracker is active");
        return peers.Cluster.Silos.Single(s => s.SiloAddress.Equals(context!.Address.SiloAddress));
    }
}
