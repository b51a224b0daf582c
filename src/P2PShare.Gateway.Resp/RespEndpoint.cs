using P2PShare.Peers;
using P2PShare.Tracker;

namespace P2PShare.Resp;

/// <summary>
/// This peer's Redis-protocol endpoint as the tracker knows it: <c>ip:port</c> under <see cref="Key"/>
/// in every load report once the port is open, so <c>p2pshare peers --json</c> and the status page show it.
/// </summary>
public sealed class RespEndpoint(PeerIdentity identity) : IPeerEndpointSource
{
    /// <summary>The endpoint's key in <see cref="LoadReport.Endpoints"/>.</summary>
    public const string Key = "redis";

    private string? _endpoint;

    public string Name => Key;

    /// <summary>The bound address and port; null until the port is open.</summary>
    public string? Endpoint => Volatile.Read(ref _endpoint);

    /// <summary>Called once the port is open: the bound address, or the silo's when bound to every address.</summary>
    public void Opened(System.Net.IPEndPoint bound)
    {
        var address = bound.Address.Equals(System.Net.IPAddress.Any) || bound.Address.Equals(System.Net.IPAddress.IPv6Any)
            ? identity.Silo.Endpoint.Address
            : bound.Address;
        Volatile.Write(ref _endpoint, new System.Net.IPEndPoint(address, bound.Port).ToString());
    }

    /// <summary>A peer's Redis endpoint from its report; null when it has none.</summary>
    public static string? Of(LoadReport report) => report.Endpoints?.GetValueOrDefault(Key);
}
