using System.ComponentModel.DataAnnotations;
using P2PShare.Compute;
using P2PShare.Configuration;

namespace P2PShare.Legacy;

/// <summary>
/// The seed-protocol gateway: the original Python system's length-prefixed JSON over TCP, so its
/// clients and peers work against P2PShare unchanged. Both listeners are off unless a port is set.
/// </summary>
public sealed class LegacyOptions : IValidatableObject
{
    public const string Section = "Legacy";

    /// <summary>Peer-protocol port (the original's default was 9000); null: no listener.</summary>
    // Port 0 asks the OS for a free port (tests use it).
    [Port(AllowZero = true, ErrorMessage = "Legacy:PeerPort (--legacy-port) must be 1..65535, not {0}")]
    public int? PeerPort { get; set; }

    /// <summary>Tracker-protocol port (the original's default was 8888); null: no listener.</summary>
    [Port(AllowZero = true, ErrorMessage = "Legacy:TrackerPort (--tracker-legacy-port) must be 1..65535, not {0}")]
    public int? TrackerPort { get; set; }

    /// <summary>Address both listeners bind to; the original bound every interface.</summary>
    [IpAddress(ErrorMessage = "Legacy:BindAddress '{0}' is not an IP address")]
    public string BindAddress { get; set; } = "0.0.0.0";

    /// <summary>Largest accepted message, in bytes; default fits a 100 MiB file in base64 plus its JSON.</summary>
    [Range(1024, int.MaxValue, ErrorMessage = "Legacy:MaxFrameBytes must be at least 1024")]
    public int MaxFrameBytes { get; set; } = 140 * 1024 * 1024;

    /// <summary>Largest file PUT_FILE accepts (the original capped files at 100 MB).</summary>
    public long MaxFileBytes { get; set; } = 100 * Bytes.MiB;

    /// <summary>Connections served at once; more are closed at once.</summary>
    [Range(1, int.MaxValue, ErrorMessage = "Legacy:MaxConnections must be at least 1")]
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
    [Positive(ErrorMessage = "Legacy:ExternalPeerTimeout must be positive")]
    public TimeSpan ExternalPeerTimeout { get; set; } = TimeSpan.FromSeconds(30);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (PeerPort is > 0 && PeerPort == TrackerPort)
            yield return new ValidationResult("Legacy:PeerPort and Legacy:TrackerPort must differ");
        if (MaxBufferedBytes < MaxFrameBytes)
            yield return new ValidationResult("Legacy:MaxBufferedBytes must be at least Legacy:MaxFrameBytes");
        if (MaxFileBytes < 0 || MaxFileBytes > (long)MaxFrameBytes * 3 / 4)
            yield return new ValidationResult("Legacy:MaxFileBytes must fit a message in base64: at most 3/4 of Legacy:MaxFrameBytes");
        if (IdleTimeout <= TimeSpan.Zero || StallTimeout <= TimeSpan.Zero)
            yield return new ValidationResult("Legacy:IdleTimeout and Legacy:StallTimeout must be positive");
        if (TaskLanguages.Normalize(DefaultLanguage) is null)
            yield return new ValidationResult($"Legacy:DefaultLanguage '{DefaultLanguage}' is not a known task language");
    }
}
