namespace P2PShare.Peers;

/// <summary>Facts about this silo's peer, fixed at start.</summary>
public sealed class PeerIdentity(ILocalSiloDetails silo, TimeProvider time)
{
    public string Name => silo.Name;
    public SiloAddress Silo => silo.SiloAddress;

    /// <summary>The gateway endpoint clients use for this peer, as <c>ip:port</c>.</summary>
    public string Gateway => silo.GatewayAddress is { } gw ? $"{gw.Endpoint.Address}:{gw.Endpoint.Port}" : "";

    public DateTime StartedUtc { get; } = time.GetUtcNow().UtcDateTime;
}
