using System.Globalization;
using P2PShare.Compute;
using P2PShare.Connecting;
using P2PShare.Files;
using P2PShare.Hosting;
using P2PShare.Legacy;
using P2PShare.Memory;
using P2PShare.Peer.Http;
using P2PShare.Peers;
using P2PShare.Resp;
using P2PShare.Tracker;

namespace P2PShare.Peer;

/// <summary>The peer's short switches for the settings people change most; every other setting is <c>--Section:Key=value</c>.</summary>
internal static class PeerSwitches
{
    public static IReadOnlyList<PeerSwitch> All { get; } =
    [
        new("--name", "Peer:Name", typeof(string), "NAME",
            "peer name = silo name, unique in the cluster; letters, digits, '-', '_' and '.'", "none, required"),
        new("--silo-port", "Peer:SiloPort", typeof(int), "N",
            "silo-to-silo port", Number(PeerOptions.DefaultSiloPort)),
        new("--gateway-port", "Peer:GatewayPort", typeof(int), "N",
            "port clients (the CLI) connect to", Number(PeerOptions.DefaultGatewayPort)),
        new("--primary", "Peer:Primary", typeof(string), "HOST:PORT",
            "local mode: silo endpoint (host:port) of the primary peer; omit on the primary", "none, this peer is the primary"),
        new("--clustering", "Clustering:Mode", typeof(string), "MODE",
            $"{ClusteringOptions.LocalMode}: one machine, localhost clustering, job records and reminders in memory; "
            + $"{ClusteringOptions.PostgresMode}: membership, job records and reminders in PostgreSQL, peers on many machines, no primary",
            ClusteringOptions.DefaultMode),
        new("--db", "Clustering:ConnectionString", typeof(string), "CONNSTR",
            "postgres mode (required there): Npgsql connection string of the cluster database, "
            + "e.g. 'Host=10.0.0.5;Port=5432;Database=p2pshare;Username=p2pshare;Password=...'", "none"),
        new("--address", "Clustering:AdvertisedAddress", typeof(string), "IP",
            "postgres mode: the address other peers and clients dial; the peer listens on all addresses",
            "this host's first non-loopback IPv4"),
        new("--data-dir", "Peer:DataDir", typeof(string), "DIR",
            "where the peer's files are kept (files/, tmp/, meta/)", "data/NAME"),
        new("--memory-quota", "Memory:QuotaBytes", typeof(long), "BYTES",
            "memory quota (keys + values)", Size(MemoryOptions.DefaultQuotaBytes)),
        new("--disk-quota", "Disk:QuotaBytes", typeof(long), "BYTES",
            "disk quota (files + uploads in progress)", Size(DiskOptions.DefaultQuotaBytes)),
        new("--max-file-size", "Disk:MaxFileBytes", typeof(long), "BYTES",
            "largest file", Size(DiskOptions.DefaultMaxFileBytes)),
        new("--report-interval", "Tracker:ReportInterval", typeof(TimeSpan), "TIME",
            "load report period", Duration(TrackerOptions.DefaultReportInterval)),
        new("--slots", "Compute:Slots", typeof(int), "N",
            "tasks run at once", "the cores the peer really has (affinity and cgroup CPU quota)"),
        new("--quantum", "Compute:Quantum", typeof(TimeSpan), "TIME",
            "time slice when more tasks are runnable than slots", Duration(ComputeOptions.DefaultQuantum)),
        new("--legacy-port", "Legacy:PeerPort", typeof(int?), "N",
            "serve the original Python system's peer protocol on this port, e.g. 9000", "off"),
        new("--tracker-legacy-port", "Legacy:TrackerPort", typeof(int?), "N",
            "serve the original tracker protocol on this port, e.g. 8888; any peer may host it", "off"),
        new("--legacy-bind", "Legacy:BindAddress", typeof(string), "IP",
            "address of both seed-protocol ports", new LegacyOptions().BindAddress),
        new("--resp-port", "Resp:Port", typeof(int?), "N",
            "serve this peer's memory to Redis clients (RESP2) on this port, e.g. 26379 (0: any free port)", "off"),
        new("--resp-bind", "Resp:Address", typeof(string), "IP",
            "address of the Redis-protocol port; it has no password, so anyone who reaches it can read and write this peer's memory", RespOptions.DefaultAddress),
        new("--http-port", "Http:Port", typeof(int?), "N",
            "serve the status page, /api/status, /healthz, /readyz and /metrics on this port, e.g. 5000 (0: any free port)", "off"),
        new("--http-bind", "Http:BindAddress", typeof(string), "IP",
            "address of the HTTP port; the page shows job ids, submitters and errors and has no login", HttpOptions.DefaultBindAddress),
        new("--dashboard", "Http:Dashboard", typeof(bool), null,
            "also serve the Orleans Dashboard at /dashboard/ (needs --http-port; turn it on for every peer or none)", "off"),
    ];

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Size(long bytes) => $"{Number(bytes)} ({Bytes.Format(bytes)})";

    /// <summary>A duration as appsettings.json writes it: <c>00:00:02</c>, <c>00:00:00.100</c>.</summary>
    internal static string Duration(TimeSpan value)
    {
        var text = value.ToString("c", CultureInfo.InvariantCulture);
        // "c" writes seven fraction digits; whole milliseconds read better as three.
        return value.Ticks % TimeSpan.TicksPerMillisecond == 0 && text.Length > 8 && text[^8] == '.' ? text[..^4] : text;
    }
}
