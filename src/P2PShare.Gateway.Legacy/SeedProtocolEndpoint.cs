using P2PShare.Peers;
using P2PShare.Tracker;

namespace P2PShare.Legacy;

/// <summary>
/// This peer's seed-protocol peer port as the tracker knows it: <c>ip:port</c> under <see cref="Key"/>
/// in every load report once the port is open, so that tracker ports hand it out (REQUEST_CPU,
/// <c>executed_by</c>) and <c>p2pshare peers --json</c> and the status page show it.
/// </summary>
public sealed class SeedProtocolEndpoint(PeerIdentity identity) : IPeerEndpointSource
{
    /// <summary>The seed-protocol peer port's key in <see cref="LoadReport.Endpoints"/>.</summary>
    public const string Key = "seed-protocol";

    private int _port;

    public string Name => Key;

    /// <summary>The silo's advertised address and the bound peer port; null until the port is open.</summary>
    public string? Endpoint => Volatile.Read(ref _port) is > 0 and var port
        ? $"{identity.Silo.Endpoint.Address}:{port}"
        : null;

    /// <summary>Called by the gateway once the peer port is open (its real port when 0 was asked).</summary>
    public void Opened(int port) => Volatile.Write(ref _port, port);

    /// <summary>A peer's seed-protocol endpoint from its report; null when it has no peer port.</summary>
    public static string? Of(LoadReport report) => report.Endpoints?.GetValueOrDefault(Key);
}
