namespace P2PShare.Legacy;

/// <summary>
/// The seed-protocol gateway: the original Python system's length-prefixed JSON over TCP, so its
/// clients and peers work against P2PShare unchanged. Both listeners are off unless a port is set.
/// </summary>
public sealed class LegacyOptions
{
    public const string Section = "Legacy";

    /// <summary>Peer-protocol port (the original's default was 9000); null: no listener.</summary>
    public int? PeerPort { get; set; }

    /// <summary>Tracker-protocol port (the original's default was 8888); null: no listener.</summary>
    public int? TrackerPort { get; set; }

    /// <summary>Address both listeners bind to; the original bound every interface.</summary>
    public string BindAddress { get; set; } = "0.0.0.0";

    /// <summary>Largest accepted message, in bytes; default fits a 100 MiB file in base64 plus its JSON.</summary>
    public int MaxFrameBytes { get; set; } = 140 * 1024 * 1024;

    /// <summary>Largest file PUT_FILE accepts (the original capped files at 100 MB).</summary>
    public long MaxFileBytes { get; set; } = 100 * Bytes.MiB;

    /// <summary>Connections served at once; more are closed at once.</summary>
    public int MaxConnections { get; set; } = 256;

    /// <summary>
    /// Bytes of large message bodies (over 64 KiB) held at once over all connections, counted as they
    /// arrive; bounds the gateway's memory. A body that finds no room within the stall timeout is refused.
    /// </summary>
    public long MaxBufferedBytes { get; set; } = 512 * Bytes.MiB;

    /// <summary>How long a connection may sit between messages before it is closed.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a started message may stall (no byte arriving) before the connection is closed.</summary>
    public TimeSpan StallTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Language of CPU_TASK programs that name none (the original ran Python).</summary>
    public string DefaultLanguage { get; set; } = "python";

    /// <summary>How long an original peer's registration lives without a REGISTER or UPDATE_LOAD (the original: 30 s).</summary>
    public TimeSpan ExternalPeerTimeout { get; set; } = TimeSpan.FromSeconds(30);
}
