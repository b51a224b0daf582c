using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Serialization;
using P2PShare.EndToEnd.Infrastructure;
using P2PShare.Peers;
using P2PShare.Tracker;
using Xunit;

namespace P2PShare.EndToEnd.MultiHost;

/// <summary>
/// A lab of <see cref="Size"/> hosts (network namespaces on a bridge) with PostgreSQL clustering,
/// started by deploy/netns/cluster.sh under a unique name prefix and subnet, with its own temporary
/// lab folder, so it never meets a developer's lab. Shared by the scenarios of one class; each
/// scenario calls <see cref="RestoreAsync"/> first. Always torn down by <see cref="DisposeAsync"/>.
/// Without root it does nothing: its tests are skipped (<see cref="RootFactAttribute"/>).
/// </summary>
public sealed class NetnsLab : IAsyncLifetime
{
    public const int Size = 3;

    /// <summary>cluster.sh's exit code for "refused": names or subnet taken by something else.</summary>
    private const int RefusedExitCode = 3;

    // The first `up` may have to build the peer host and the CLI.
    private static readonly TimeSpan UpTimeout = TimeSpan.FromMinutes(6);
    private static readonly TimeSpan DownTimeout = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan ScriptTimeout = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan CliTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan QuickCallTimeout = TimeSpan.FromSeconds(3);

    private readonly Dictionary<string, string?> _environment = new();
    private IHost? _clientHost;

    public static bool IsRoot { get; } = Environment.IsPrivilegedProcess;

    public string LabDir { get; } =
        Path.Combine(Path.GetTempPath(), "p2pshare-netns-" + Guid.NewGuid().ToString("N")[..12]);

    public string Prefix { get; private set; } = "";

    /// <summary>The first three octets of the lab's /24.</summary>
    public string Net { get; private set; } = "";

    /// <summary>How long <c>cluster.sh up 3</c> took, build included if one was needed.</summary>
    public TimeSpan UpTime { get; private set; }

    public string ConnectionString { get; private set; } = "";

    public IClusterClient Client =>
        _clientHost?.Services.GetRequiredService<IClusterClient>() ?? throw new InvalidOperationException("the lab is not up");

    public static IReadOnlyList<string> PeerNames { get; } =
        Enumerable.Range(1, Size).Select(i => $"peer-{i}").ToArray();

    public string AddressOf(string peer) => $"{Net}.{10 + int.Parse(peer["peer-".Length..])}";

    public async Task InitializeAsync()
    {
        if (!IsRoot)
        {
            return;
        }

        Directory.CreateDirectory(LabDir);
        _environment["P2PSHARE_NETNS_DIR"] = LabDir;
        _environment["P2PSHARE_GATEWAYS"] = null;
        foreach (var name in Environment.GetEnvironmentVariables().Keys.Cast<string>())
        {
            // No MSBuild state of `dotnet test` leaking into the build cluster.sh may run, and no
            // clustering settings of the developer's shell reaching the lab's CLI.
            if (name.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase)
                || name.StartsWith("P2PSHARE__", StringComparison.OrdinalIgnoreCase))
            {
                _environment[name] = null;
            }
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
        var watch = Stopwatch.StartNew();
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            // 't' + 6 hex digits: short enough for interface names, unlikely to meet another lab.
            Prefix = "t" + Guid.NewGuid().ToString("N")[..6];
            Net = $"10.{Random.Shared.Next(100, 250)}.{Random.Shared.Next(0, 256)}";
            _environment["P2PSHARE_NETNS_PREFIX"] = Prefix;
            _environment["P2PSHARE_NETNS_SUBNET"] = Net + ".0/24";
            watch.Restart();
            up = await ScriptAsync(UpTimeout, "up", Size.ToString());
            if (up.ExitCode != RefusedExitCode)
            {
                break;
            }
        }

        UpTime = watch.Elapsed;
        if (up.ExitCode != 0)
        {
            throw new InvalidOperationException($"lab did not start:\n{up}\n{PeerLogs()}");
        }

        var env = await ScriptAsync(ScriptTimeout, "env");
        if (env.ExitCode != 0)
        {
            throw new InvalidOperationException($"lab has no clustering settings:\n{env}");
        }

        const string key = "P2PSHARE__CLUSTERING__CONNECTIONSTRING=";
        var line = env.Stdout.Split('\n').Single(l => l.StartsWith(key, StringComparison.Ordinal));
        ConnectionString = line[key.Length..].Trim('\'');
        _clientHost = await ConnectClientAsync(ConnectionString);
    }

    /// <summary>An Orleans client of the test itself, finding gateways in the lab's database as the CLI does.</summary>
    private static async Task<IHost> ConnectClientAsync(string connectionString)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.UseOrleansClient(client =>
        {
            client.UseAdoNetClustering(o =>
            {
                o.Invariant = "Npgsql";
                o.ConnectionString = connectionString;
            });
            client.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = "p2pshare";
                o.ServiceId = "p2pshare";
            });
            // Dead gateways leave the list quickly; the table is re-read every second.
            client.Configure<GatewayOptions>(o => o.GatewayListRefreshPeriod = TimeSpan.FromSeconds(1));
            client.Services.AddSerializer(s => s.AddAssembly(typeof(IPeerGrain).Assembly));
        });
        var host = builder.Build();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await host.StartAsync(deadline.Token);
        return host;
    }

    public async Task DisposeAsync()
    {
        if (!IsRoot)
        {
            return;
        }

        try
        {
            if (_clientHost is not null)
            {
                using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                try
                {
                    await _clientHost.StopAsync(stop.Token);
                }
                catch (Exception)
                {
                    // A client whose cluster is half gone may fail to stop cleanly; the lab goes anyway.
                }

                _clientHost.Dispose();
                _clientHost = null;
            }

            if (Prefix.Length > 0)
            {
                var down = await ScriptAsync(DownTimeout, "down");
                if (down.ExitCode != 0)
                {
                    throw new InvalidOperationException($"lab did not go down:\n{down}");
                }
            }
        }
        finally
        {
            try
            {
                Directory.Delete(LabDir, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // A leftover temp folder is not worth failing the run for.
            }
        }
    }

    public Task<ProcessResult> ScriptAsync(TimeSpan timeout, params string[] arguments) =>
        ProcessRunner.RunAsync(RepoPaths.NetnsScript, arguments, timeout, _environment);

    /// <summary>Runs a lab command (kill, cut, heal, restart ...) and insists that it worked.</summary>
    public async Task RunAsync(params string[] arguments)
    {
        var result = await ScriptAsync(ScriptTimeout, arguments);
        Assert.True(result.ExitCode == 0, $"{result}\n{PeerLogs()}");
    }

    /// <summary>Runs deploy/netns/p2pshare (the real CLI in the root namespace) against the lab.</summary>
    public Task<ProcessResult> CliAsync(params string[] arguments) =>
        ProcessRunner.RunAsync(RepoPaths.NetnsCliWrapper, arguments, CliTimeout, _environment);

    public IPeerGrain Peer(string name) => Client.GetGrain<IPeerGrain>(name);

    /// <summary>
    /// The tracker's table now, or null when it does not answer quickly (its silo just died and it
    /// has not moved yet): pollers retry instead of waiting out Orleans' 30 s response timeout.
    /// </summary>
    public async Task<IReadOnlyList<PeerStatus>?> TrackedPeersAsync()
    {
        try
        {
            return await Client.GetTracker().GetPeersAsync().WaitAsync(QuickCallTimeout);
        }
        catch (Exception ex) when (ex is TimeoutException or OrleansException or SiloUnavailableException
                                       or P2PShareException or InvalidOperationException)
        {
            return null;
        }
    }

    public async Task<IReadOnlyList<string>?> TrackedNamesAsync() =>
        (await TrackedPeersAsync())?.Select(p => p.Name).Order(StringComparer.Ordinal).ToArray();

    /// <summary>Polls the tracker until it lists exactly <paramref name="expected"/>; returns how long that took.</summary>
    public async Task<TimeSpan> WaitUntilTrackedAsync(IEnumerable<string> expected, TimeSpan timeout, Stopwatch since)
    {
        var want = expected.Order(StringComparer.Ordinal).ToArray();
        IReadOnlyList<string>? seen = null;
        while (true)
        {
            seen = await TrackedNamesAsync() ?? seen;
            var now = since.Elapsed;
            if (seen is not null && seen.SequenceEqual(want))
            {
                return now;
            }

            if (now > timeout)
            {
                Assert.Fail($"after {now.TotalSeconds:0.0} s the tracker lists [{string.Join(", ", seen ?? [])}], " +
                            $"expected [{string.Join(", ", want)}]\n{PeerLogs()}");
            }

            await Task.Delay(100);
        }
    }

    /// <summary>The peer names <c>deploy/netns/p2pshare peers --json</c> lists now.</summary>
    public async Task<IReadOnlyList<string>> CliPeerNamesAsync()
    {
        var result = await CliAsync("peers", "--json");
        Assert.True(result.ExitCode == 0, result.ToString());
        using var json = JsonDocument.Parse(result.StdoutBytes);
        return json.RootElement.EnumerateArray().Select(p => p.GetProperty("name").GetString()!)
            .Order(StringComparer.Ordinal).ToArray();
    }

    /// <summary>
    /// Brings the lab back to every peer running with its link up and listed by the tracker, after a
    /// scenario killed or cut one: each scenario starts from a whole cluster.
    /// </summary>
    public async Task RestoreAsync()
    {
        foreach (var (name, link, state) in await StatusAsync())
        {
            if (link == "cut")
            {
                await RunAsync("heal", name);
                // Cut off and reconnected, a peer finds itself declared dead and aborts: restart it.
                await RunAsync("restart", name);
            }
            else if (state != "running")
            {
                await RunAsync("start", name);
            }
        }

        await WaitUntilTrackedAsync(PeerNames, TimeSpan.FromSeconds(30), Stopwatch.StartNew());
    }

    /// <summary>Each peer's link (up, cut) and process state (running, stopped) from <c>cluster.sh status</c>.</summary>
    public async Task<IReadOnlyList<(string Name, string Link, string State)>> StatusAsync()
    {
        var status = await ScriptAsync(ScriptTimeout, "status");
        Assert.True(status.ExitCode == 0, status.ToString());
        return status.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 6 && f[0].StartsWith("peer-", StringComparison.Ordinal))
            .Select(f => (f[0], f[4], f[5]))
            .ToArray();
    }

    /// <summary>The tail of every peer's log, for a failure message.</summary>
    public string PeerLogs()
    {
        var logs = Path.Combine(LabDir, "logs");
        if (!Directory.Exists(logs))
        {
            return "(no peer logs)";
        }

        return string.Join('\n', Directory.GetFiles(logs, "*.log").Order().Select(file =>
        {
            var lines = File.ReadAllLines(file);
            return $"--- {Path.GetFileName(file)} (last 30 lines) ---\n" + string.Join('\n', lines.TakeLast(30));
        }));
    }
}
