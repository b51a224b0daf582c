using P2PShare.Legacy;

namespace P2PShare.Peers;

/// <summary>Facts about this silo's peer, fixed at start.</summary>
public sealed class PeerIdentity(ILocalSiloDetails silo, TimeProvider time, IOptions<LegacyOptions> legacy)
{
    public string Name => silo.Name;
    public SiloAddress Silo => silo.SiloAddress;

    /// <summary>The gateway endpoint clients use for this peer, as <c>ip:port</c>.</summary>
    public string Gateway => silo.GatewayAddress is { } gw ? $"{gw.Endpoint.Address}:{gw.Endpoint.Port}" : "";

    /// <summary>
    /// Where seed-protocol clients reach this peer (<c>ip:port</c>, the silo's advertised address and
    /// <see cref="LegacyOptions.PeerPort"/>); null when the peer does not speak the seed protocol.
    /// </summary>
    public string? LegacyEndpoint => legacy.Value.PeerPort is not null && Volatile.Read(ref _legacyPort) is > 0 and var bound
        ? $"{silo.SiloAddress.Endpoint.Address}:{bound}"
        : null; // off, or not open yet

    private int _legacyPort;

    /// <summary>Called by the gateway once the seed-protocol peer port is open (its real port when 0 was asked).</summary>
    public void LegacyPortOpened(int port) => Volatile.Write(ref _legacyPort, port);

    public DateTime StartedUtc { get; } = time.GetUtcNow().UtcDateTime;
}
