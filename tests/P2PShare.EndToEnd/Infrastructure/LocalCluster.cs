using System.Text.Json;
using Xunit;

namespace P2PShare.EndToEnd.Infrastructure;

/// <summary>
/// A real cluster of <see cref="Size"/> peer processes started by deploy/local/cluster.sh on free
/// ports, with its own temporary cluster folder. Always torn down by <see cref="DisposeAsync"/>.
/// </summary>
public class LocalCluster : IAsyncLifetime
{
    public const int Size = 3;

    /// <summary>cluster.sh's exit code for "port in use": another process took a port we probed.</summary>
    private const int PortInUseExitCode = 3;

    // The first `up` may have to build the peer host and the CLI.
    private static readonly TimeSpan UpTimeout = TimeSpan.FromMinutes(6);
    private static readonly TimeSpan DownTimeout = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan CliTimeout = TimeSpan.FromSeconds(60);

    private readonly Dictionary<string, string?> _environment = new();

    public string ClusterDir { get; } =
        Path.Combine(Path.GetTempPath(), "p2pshare-e2e-" + Guid.NewGuid().ToString("N")[..12]);

    public int SiloPortBase { get; private set; }

    public int GatewayPortBase { get; private set; }

    /// <summary>Seed-protocol peer port of peer-1; peer-k listens on base+k-1.</summary>
    public int LegacyPortBase { get; private set; }

    /// <summary>Seed-protocol tracker port, served by peer-1.</summary>
    public int TrackerLegacyPort { get; private set; }

    /// <summary>HTTP port of peer-1 (status page, probes, metrics); peer-k listens on base+k-1.</summary>
    public int HttpPortBase { get; private set; }

    /// <summary>Redis-protocol (RESP2) port of peer-1; peer-k listens on base+k-1.</summary>
    public int RespPortBase { get; private set; }

    /// <summary>The status page of peer <paramref name="index"/> (1-based).</summary>
    public Uri HttpBase(int index = 1) => new($"http://127.0.0.1:{HttpPortBase + index - 1}/");

    /// <summary>
    /// Whether the peers also serve the Orleans Dashboard. Off unless a test class needs it: it adds a
    /// statistics timer to every silo.
    /// </summary>
    protected virtual bool Dashboard => false;

    /// <summary>
    /// Peer settings for this cluster as <c>P2PSHARE__SECTION__KEY</c> variables (the peers inherit
    /// cluster.sh's environment), e.g. a small memory quota a test can fill.
    /// </summary>
    protected virtual IReadOnlyDictionary<string, string> PeerSettings => new Dictionary<string, string>();

    public IEnumerable<string> PeerNames => Enumerable.Range(1, Size).Select(i => $"peer-{i}");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(ClusterDir);
        // Ours, not the developer's: no gateway list from the shell, no MSBuild state of `dotnet test`
        // leaking into the build cluster.sh may run.
        _environment["P2PSHARE_CLUSTER_DIR"] = ClusterDir;
        _environment["P2PSHARE_GATEWAYS"] = null;
        foreach (var name in Environment.GetEnvironmentVariables().Keys.Cast<string>())
        {
            if (name.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase))
            {
                _environment[name] = null;
            }
        }

        foreach (var (name, value) in PeerSettings)
        {
            _environment[name] = value;
        }

        try
        {
            await StartAsync();
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    private async Task StartAsync()
    {
        ProcessResult up = null!;
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            // Every port from a free run: cluster.sh's defaults (26379 for RESP, ...) may belong to a
            // developer's own cluster on this machine.
            var ports = FreePorts.PickRuns(Size, 6);
            (SiloPortBase, GatewayPortBase, LegacyPortBase, TrackerLegacyPort, HttpPortBase, RespPortBase) = (ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]);
            _environment["P2PSHARE_SILO_PORT_BASE"] = SiloPortBase.ToString();
            _environment["P2PSHARE_GATEWAY_PORT_BASE"] = GatewayPortBase.ToString();
            _environment["P2PSHARE_LEGACY_PORT_BASE"] = LegacyPortBase.ToString();
            _environment["P2PSHARE_TRACKER_LEGACY_PORT"] = TrackerLegacyPort.ToString();
            _environment["P2PSHARE_HTTP_PORT_BASE"] = HttpPortBase.ToString();
            _environment["P2PSHARE_RESP_PORT_BASE"] = RespPortBase.ToString();
            _environment["P2PSHARE_HTTP_BIND"] = null;
            _environment["P2PSHARE_DASHBOARD"] = Dashboard ? "on" : "off";
            up = await ClusterScriptAsync(UpTimeout, "up", Size.ToString());
            if (up.ExitCode != PortInUseExitCode)
            {
                break;
            }
        }

        if (up.ExitCode != 0)
        {
            throw new InvalidOperationException($"cluster did not start:\n{up}\n{PeerLogs()}");
        }
    }

    public async Task DisposeAsync()
    {
        try
        {
            var down = await ClusterScriptAsync(DownTimeout, "down");
            if (down.ExitCode != 0)
            {
                throw new InvalidOperationException($"cluster did not stop:\n{down}");
            }
        }
        finally
        {
            try
            {
                Directory.Delete(ClusterDir, recursive: true);
            }
            catch (IOException)
            {
                // A leftover temp folder is not worth failing the run for.
            }
        }
    }

    /// <summary>Runs deploy/local/p2pshare against this cluster.</summary>
    public Task<ProcessResult> CliAsync(params string[] arguments) =>
        ProcessRunner.RunAsync(RepoPaths.CliWrapper, arguments, CliTimeout, _environment);

    /// <summary>Runs any program with this cluster's environment (ports, cluster folder).</summary>
    public Task<ProcessResult> RunWithClusterEnvironmentAsync(string file, IEnumerable<string> arguments, TimeSpan timeout) =>
        ProcessRunner.RunAsync(file, arguments, timeout, _environment);

    public Task<ProcessResult> ClusterScriptAsync(TimeSpan timeout, params string[] arguments) =>
        ProcessRunner.RunAsync(RepoPaths.ClusterScript, arguments, timeout, _environment);

    /// <summary>The peer names <c>peers --json</c> lists now.</summary>
    public async Task<IReadOnlyList<string>> ListedPeerNamesAsync()
    {
        var result = await CliAsync("peers", "--json");
        Assert.True(result.ExitCode == 0, result.ToString());
        using var json = JsonDocument.Parse(result.StdoutBytes);
        return json.RootElement.EnumerateArray().Select(p => p.GetProperty("name").GetString()!).ToList();
    }

    /// <summary>Everything the peers logged, for a failure message.</summary>
    public string PeerLogs()
    {
        var logs = Path.Combine(ClusterDir, "logs");
        if (!Directory.Exists(logs))
        {
            return "(no peer logs)";
        }

        return string.Join('\n', Directory.GetFiles(logs, "*.log").Order().Select(file =>
        {
            var lines = File.ReadAllLines(file);
            return $"--- {Path.GetFileName(file)} (last 40 lines) ---\n" + string.Join('\n', lines.TakeLast(40));
        }));
    }
}

/// <summary>
/// The end-to-end classes run one after the other: each has its own cluster, and one cluster at a
/// time keeps a 2-core machine responsive enough for the timing assertions.
/// </summary>
[CollectionDefinition(Name)]
public sealed class LocalClusterCollection
{
    public const string Name = "Local cluster";
}
