using System.ComponentModel.DataAnnotations;
using P2PShare.Configuration;

namespace P2PShare.Peer.Http;

/// <summary>
/// The peer's opt-in HTTP host: status page, <c>/api/status</c>, health probes, Prometheus metrics and,
/// when asked, the Orleans Dashboard. Off unless a port is set. Section <c>Http</c>.
/// </summary>
public sealed class HttpOptions : IValidatableObject
{
    public const string Section = "Http";
    public const string DefaultBindAddress = "127.0.0.1";
    public const int DefaultRecentJobs = 30;
    public const int MaxRecentJobs = 1000;

    /// <summary>Port of the HTTP host; null: no HTTP host. 0 asks the OS for a free port (tests use it).</summary>
    [Port(AllowZero = true, ErrorMessage = "Http:Port (--http-port) must be 1..65535, not {0}")]
    public int? Port { get; set; }

    /// <summary>
    /// Address the HTTP host listens on. Loopback by default: the page shows job ids, submitters and
    /// errors, and nothing on it asks who is looking. Use <c>0.0.0.0</c> only behind a firewall or proxy.
    /// </summary>
    [IpAddress(ErrorMessage = "Http:BindAddress (--http-bind) '{0}' is not an IP address")]
    public string BindAddress { get; set; } = DefaultBindAddress;

    /// <summary>
    /// Serve the Orleans Dashboard under <c>/dashboard/</c>. It runs a service on every silo that has it,
    /// so turn it on for every peer of the cluster.
    /// </summary>
    public bool Dashboard { get; set; }

    /// <summary>How many recent job attempts the status page and <c>/api/status</c> list, cluster-wide.</summary>
    [Range(0, MaxRecentJobs, ErrorMessage = "Http:RecentJobs must be {1}..{2}")]
    public int RecentJobs { get; set; } = DefaultRecentJobs;

    /// <summary>Whether the peer serves HTTP at all: a port is set.</summary>
    public bool Enabled => Port is not null;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Dashboard && !Enabled)
            yield return new ValidationResult("Http:Dashboard (--dashboard) needs Http:Port (--http-port)");
    }
}
