using System.Net;
using P2PShare.Hosting;

namespace P2PShare.Peer.Http;

/// <summary>
/// The peer's opt-in HTTP host: status page, <c>/api/status</c>, health probes, Prometheus metrics and,
/// when asked, the Orleans Dashboard. Off unless a port is set. Section <c>Http</c>.
/// </summary>
public sealed class HttpOptions
{
    public const string Section = "Http";
    public const string DefaultBindAddress = "127.0.0.1";
    public const int DefaultRecentJobs = 30;
    public const int MaxRecentJobs = 1000;

    /// <summary>Port of the HTTP host; null: no HTTP host. 0 asks the OS for a free port (tests use it).</summary>
    public int? Port { get; set; }

    /// <summary>
    /// Address the HTTP host listens on. Loopback by default: the page shows job ids, submitters and
    /// errors, and nothing on it asks who is looking. Use <c>0.0.0.0</c> only behind a firewall or proxy.
    /// </summary>
    public string BindAddress { get; set; } = DefaultBindAddress;

    /// <summary>
    /// Serve the Orleans Dashboard under <c>/dashboard/</c>. It runs a service on every silo that has it,
    /// so turn it on for every peer of the cluster.
    /// </summary>
    public bool Dashboard { get; set; }

    /// <summary>How many recent job attempts the status page and <c>/api/status</c> list, cluster-wide.</summary>
    public int RecentJobs { get; set; } = DefaultRecentJobs;

    public bool Enabled => Port is not null;
}

/// <summary>One-line problems with the HTTP settings, in the style of <see cref="OptionsValidator"/>.</summary>
public static class HttpOptionsValidator
{
    public static IEnumerable<string> Validate(HttpOptions o, PeerOptions peer)
    {
        if (o.Port is < 0 or > 65535) yield return $"Http:Port (--http-port) must be 1..65535, not {o.Port}";
        if (o.Port is > 0 && (o.Port == peer.SiloPort || o.Port == peer.GatewayPort))
            yield return $"Http:Port {o.Port} is already the silo or gateway port";
        if (!IPAddress.TryParse(o.BindAddress, out _)) yield return $"Http:BindAddress (--http-bind) '{o.BindAddress}' is not an IP address";
        if (o.Dashboard && !o.Enabled) yield return "Http:Dashboard (--dashboard) needs Http:Port (--http-port)";
        if (o.RecentJobs is < 0 or > HttpOptions.MaxRecentJobs) yield return $"Http:RecentJobs must be 0..{HttpOptions.MaxRecentJobs}";
    }
}
