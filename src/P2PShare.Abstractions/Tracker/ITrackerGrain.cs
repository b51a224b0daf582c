using System.Collections.Immutable;

namespace P2PShare.Tracker;

/// <summary>
/// The cluster's registry of live peers and their load; answers "which peer should run this".
/// One activation (key 0) on any silo. Its state is soft: rebuilt from reports after a move.
/// </summary>
[Alias("P2PShare.ITrackerGrain")]
public interface ITrackerGrain : IGrainWithIntegerKey
{
    /// <summary>Adds or refreshes a peer and waits until the tracker has it.</summary>
    [Alias("Register")]
    Task RegisterAsync(LoadReport report);

    /// <summary>
    /// Periodic and on-change load. One-way: peers never wait on the tracker, and a tracker that
    /// someday calls peers cannot deadlock against a report in flight.
    /// </summary>
    [OneWay, Alias("Report")]
    Task ReportAsync(LoadReport report);

    /// <summary>
    /// A load report that waits for the answer: the registry as the tracker sees it after taking the
    /// report, which the reporting silo routes by until its next report (its local load view). Not
    /// one-way, but the tracker never calls peers, so a report in flight cannot deadlock against it.
    /// </summary>
    [Alias("Exchange")]
    Task<ImmutableArray<PeerStatus>> ExchangeAsync(LoadReport report);

    /// <summary>Removes a stopping peer; later reports from that same silo instance are ignored.</summary>
    [Alias("Unregister")]
    Task UnregisterAsync(string peer, SiloAddress silo);

    /// <summary>Least-loaded live peer, counting what this tracker assigned since each peer's last report.</summary>
    /// <exception cref="NoPeersAvailableException">No live peer fits.</exception>
    [Alias("PickPeer")]
    Task<string> PickPeerAsync(PickRequest request);

    [Alias("GetPeers")]
    Task<ImmutableArray<PeerStatus>> GetPeersAsync();

    /// <summary>Name of the silo (peer) this tracker activation runs on: where it moves after a failure.</summary>
    [Alias("GetHost")]
    Task<string> GetHostAsync();
}

public static class TrackerGrainExtensions
{
    /// <summary>The one tracker of the cluster.</summary>
    public static ITrackerGrain GetTracker(this IGrainFactory grains) => grains.GetGrain<ITrackerGrain>(0);
}
