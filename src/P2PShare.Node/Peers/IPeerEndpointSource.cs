namespace P2PShare.Peers;

/// <summary>
/// A listener this peer runs besides Orleans (a protocol gateway, say) that wants the tracker, and
/// so <c>p2pshare peers</c> and the status page, to show where clients reach it. Register one as a
/// singleton <see cref="IPeerEndpointSource"/>; every load report carries what it says at the time
/// (<see cref="Tracker.LoadReport.Endpoints"/>).
/// </summary>
public interface IPeerEndpointSource
{
    /// <summary>The endpoint's key in <see cref="Tracker.LoadReport.Endpoints"/>: short, lower case, the protocol's name.</summary>
    string Name { get; }

    /// <summary>Where clients reach the listener (<c>ip:port</c>); null while it is not listening.</summary>
    string? Endpoint { get; }
}
