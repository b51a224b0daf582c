using System.ComponentModel.DataAnnotations;
using P2PShare.Configuration;

namespace P2PShare.Peers;

/// <summary>
/// Who this peer is and where it keeps its data. Section <c>Peer</c>. The host reads these before it
/// builds the silo (they name it and choose its ports), so they are checked there, not at silo start.
/// </summary>
public sealed class PeerOptions : IValidatableObject
{
    public const string Section = "Peer";
    public const int DefaultSiloPort = 11111;
    public const int DefaultGatewayPort = 30000;

    /// <summary>The peer's name; also the silo's <c>SiloName</c>. Unique in the cluster.</summary>
    [Required(ErrorMessage = "Peer:Name is required (--name NAME)")]
    [PeerName(ErrorMessage = "Peer:Name '{0}' {1}")]
    public string Name { get; set; } = "";

    /// <summary>Port for silo-to-silo traffic.</summary>
    [Port(ErrorMessage = "Peer:SiloPort must be 1..65535, not {0}")]
    public int SiloPort { get; set; } = DefaultSiloPort;

    /// <summary>Port clients (the CLI) connect to.</summary>
    [Port(ErrorMessage = "Peer:GatewayPort must be 1..65535, not {0}")]
    public int GatewayPort { get; set; } = DefaultGatewayPort;

    /// <summary>
    /// Silo endpoint (<c>host:port</c>) of the primary peer of a localhost cluster. Empty: this peer
    /// is the primary. The primary holds the membership table, so losing it loses the cluster.
    /// </summary>
    [HostPort(ErrorMessage = "Peer:Primary '{0}' is not host:port")]
    public string? Primary { get; set; }

    /// <summary>Folder for this peer's files. Default: <c>data/NAME</c> under the working directory.</summary>
    public string? DataDir { get; set; }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (SiloPort == GatewayPort)
            yield return new ValidationResult("Peer:SiloPort and Peer:GatewayPort must differ");
    }
}
