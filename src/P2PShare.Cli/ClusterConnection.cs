using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Hosting;
using P2PShare.Connecting;
using P2PShare.Peers;
using P2PShare.Tracker;

namespace P2PShare.Cli;

/// <summary>Everything the user said about where the cluster is and which peer to talk to.</summary>
/// <remarks>
/// <see cref="DatabaseConnectionString"/> set: postgres clustering, gateways come from the cluster
/// database and <see cref="Gateways"/> is empty. Otherwise the fixed gateway list.
/// </remarks>
public sealed record ConnectionSettings(IReadOnlyList<HostPort> Gateways, string? Origin, string? DatabaseConnectionString = null)
{
    public const string OriginEnvironmentVariable = "P2PSHARE_ORIGIN";

    public bool UsesDatabase => DatabaseConnectionString is not null;

    /// <summary>Where the CLI looks for the cluster, for messages: the gateways or the database (never its password).</summary>
    public string Describe() =>
        DatabaseConnectionString is { } db ? $"database {ClusterDatabase.Describe(db)}" : Cli.Gateways.Describe(Gateways);
}

/// <summary>
/// An Orleans client connected to the cluster, plus the rule for picking the peer a command acts on.
/// Connecting is bounded by <see cref="ConnectTimeout"/>: a CLI that hangs on a dead address is
/// worse than one that says so.
/// </summary>
public sealed class ClusterConnection : IAsyncDisposable
{
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(8);

    /// <summary>
    /// How long a transfer tries a peer's own gateway before it goes through the connected one: a
    /// peer that advertises an address this machine cannot reach must not delay it much.
    /// </summary>
    public static readonly TimeSpan DirectConnectTimeout = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(3);

    private readonly IHost _host;
    private readonly ConnectionSettings _settings;
    private readonly IPEndPoint? _firstGateway;
    private readonly ConnectionLossSignal _lost;

    private ClusterConnection(IHost host, ConnectionSettings settings, IPEndPoint? firstGateway, ConnectionLossSignal lost)
    {
        _host = host;
        _lost = lost;
        _settings = settings;
        _firstGateway = firstGateway;
        Client = host.Services.GetRequiredService<IClusterClient>();
    }

    public IClusterClient Client { get; }

    /// <summary>
    /// Cancelled when the client has no gateway left. Calls already sent would otherwise wait for
    /// the full response timeout (30 s) before failing.
    /// </summary>
    public CancellationToken ConnectionLost => _lost.Token;

    public string GatewaysText => _settings.Describe();

    public ITrackerGrain Tracker => Client.GetTracker();

    public IPeerGrain Peer(string name) => Client.GetGrain<IPeerGrain>(name);

    public static async Task<ClusterConnection> ConnectAsync(ConnectionSettings settings, CancellationToken ct, TimeSpan? timeout = null)
    {
        var described = settings.Describe();
        var connectTimeout = timeout ?? ConnectTimeout;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(connectTimeout);

        IPEndPoint[] endpoints = [];
        string? database = null;
        try
        {
            if (settings.DatabaseConnectionString is { } connectionString)
            {
                // Leave a second of the deadline for the gateway itself.
                database = ClusterDatabase.Bounded(connectionString, connectTimeout - TimeSpan.FromSeconds(1));
                // Orleans' own failure there is a chain of exceptions after its connect timeout; this
                // says in one line (exit 5) what is wrong, within the deadline.
                var problem = await ClusterDatabase.FindProblemAsync(database, ClusterDatabase.MembershipQueryKeys, timeout: null, deadline.Token)
                    .ConfigureAwait(false);
                if (problem is not null)
                {
                    throw Unreachable(problem);
                }
            }
            else
            {
                endpoints = await Task.WhenAll(settings.Gateways.Select(g => Gateways.ResolveAsync(g, deadline.Token)))
                    .ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new ClusterUnreachableException(described,
                database is null ? "name resolution timed out" : $"no answer within {connectTimeout.TotalSeconds:0} s");
        }

        var lost = new ConnectionLossSignal();
        var host = BuildHost(endpoints, database, lost);
        try
        {
            await host.StartAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            await StopQuietlyAsync(host).ConfigureAwait(false);
            lost.Dispose();
            if (ct.IsCancellationRequested)
            {
                throw;
            }

            var reason = ex is OperationCanceledException
                ? $"no answer within {connectTimeout.TotalSeconds:0} s"
                : database is not null && NoGateways(ex)
                    ? "no live peer is registered in the cluster database"
                    : ErrorReporting.OneLine(ErrorReporting.Innermost(ex));
            throw new ClusterUnreachableException(described, reason, ex);
        }

        lost.Arm();
        return new ClusterConnection(host, settings, endpoints.Length > 0 ? endpoints[0] : null, lost);
    }

    /// <summary>The CLI's words for a cluster database that cannot serve it.</summary>
    private static ClusterUnreachableException Unreachable(DatabaseProblem problem)
    {
        var where = $"database {problem.Where}";
        return problem.Kind switch
        {
            DatabaseProblemKind.NoSchema => new(where, "it has no P2PShare schema; run deploy/postgres/setup.sh", problem.Cause),
            DatabaseProblemKind.IncompleteSchema => new(where, "its P2PShare schema is incomplete; apply deploy/postgres/schema.sql"),
            DatabaseProblemKind.NoAnswer => new(where, $"no answer within {ConnectTimeout.TotalSeconds:0} s"),
            _ => new(where, problem.Cause is { } cause ? ErrorReporting.OneLine(cause) : problem.Message, problem.Cause),
        };
    }

    /// <summary>Orleans' complaint when the gateway list it read is empty.</summary>
    private static bool NoGateways(Exception ex)
    {
        for (var e = ex; e is not null; e = e.InnerException)
        {
            if (e.Message.Contains("gateway", StringComparison.OrdinalIgnoreCase)
                && (e.Message.Contains("no ", StringComparison.OrdinalIgnoreCase) || e.Message.Contains("not find", StringComparison.OrdinalIgnoreCase)
                    || e.Message.Contains("empty", StringComparison.OrdinalIgnoreCase)))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The peer a command acts on: <c>--peer</c>, else the configured origin, else the peer that
    /// serves the first gateway, since that is the machine the user pointed the CLI at.
    /// </summary>
    public async Task<string> ResolvePeerAsync(string? explicitPeer, CancellationToken ct)
    {
        if (!string.IsNullOrWhiteSpace(explicitPeer))
        {
            return explicitPeer;
        }

        if (!string.IsNullOrWhiteSpace(_settings.Origin))
        {
            return _settings.Origin;
        }

        var peers = await Tracker.GetPeersAsync().ConfigureAwait(false);
        if (peers.IsDefaultOrEmpty)
        {
            throw new NoPeersAvailableException("the tracker knows no live peers yet; pass --peer NAME or retry shortly");
        }

        if (_firstGateway is null)
        {
            return PeerOnThisMachine(peers)
                ?? throw new UsageException("no peer runs on this machine; name one with --peer NAME or --origin NAME (or P2PSHARE_ORIGIN)");
        }

        var first = _settings.Gateways[0].ToString();
        foreach (var peer in peers.OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            // Same text needs no DNS, and still matches a host name only the peers can resolve.
            if (string.Equals(peer.Report.Gateway, first, StringComparison.OrdinalIgnoreCase))
            {
                return peer.Name;
            }

            var advertised = await TryResolveAdvertisedAsync(peer.Report.Gateway, ct).ConfigureAwait(false);
            if (advertised is not null && Gateways.SameEndpoint(advertised, _firstGateway))
            {
                return peer.Name;
            }
        }

        throw new UsageException($"cannot tell which peer serves gateway {_settings.Gateways[0]}; pass --peer NAME");
    }

    /// <summary>
    /// A connection through <paramref name="peerName"/>'s own gateway, for bulk transfers. Through
    /// any other gateway every chunk takes one more hop: that silo receives it and sends it on to
    /// the peer's silo, spending its CPU and memory (measured in docs/BENCHMARKS.md). Null when this
    /// connection already goes through that gateway alone, when the tracker does not know the peer,
    /// or when its advertised gateway does not answer from here within <see cref="DirectConnectTimeout"/>;
    /// the caller then keeps using this connection.
    /// </summary>
    public async Task<ClusterConnection?> ConnectToPeerGatewayAsync(string peerName, CancellationToken ct)
    {
        var peers = await Tracker.GetPeersAsync().ConfigureAwait(false);
        var peer = peers.IsDefault ? null : peers.FirstOrDefault(p => p.Name == peerName);
        if (peer is null || !HostPort.TryParse(peer.Report.Gateway, out var gateway))
        {
            return null;
        }

        if (_firstGateway is not null && _settings.Gateways.Count == 1)
        {
            if (string.Equals(peer.Report.Gateway, _settings.Gateways[0].ToString(), StringComparison.OrdinalIgnoreCase))
            {
                return null;
            }

            var advertised = await TryResolveAdvertisedAsync(peer.Report.Gateway, ct).ConfigureAwait(false);
            if (advertised is null || Gateways.SameEndpoint(advertised, _firstGateway))
            {
                return null;
            }
        }

        try
        {
            return await ConnectAsync(new ConnectionSettings([gateway], _settings.Origin), ct, DirectConnectTimeout).ConfigureAwait(false);
        }
        catch (ClusterUnreachableException)
        {
            return null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopQuietlyAsync(_host).ConfigureAwait(false);
        _lost.Dispose();
    }

    /// <summary>
    /// Postgres clustering has no "first gateway" the user chose; the natural origin is the peer
    /// on the machine the CLI runs on (its advertised gateway address is one of ours).
    /// </summary>
    private static string? PeerOnThisMachine(IEnumerable<PeerStatus> peers)
    {
        var local = LocalAddresses();
        foreach (var peer in peers.OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            if (!HostPort.TryParse(peer.Report.Gateway, out var gateway))
            {
                continue;
            }

            if (IPAddress.TryParse(gateway.Host, out var ip)
                && (IPAddress.IsLoopback(ip) || local.Contains(ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip)))
            {
                return peer.Name;
            }
        }

        return null;
    }

    private static HashSet<IPAddress> LocalAddresses()
    {
        var addresses = new HashSet<IPAddress>();
        try
        {
            foreach (var nic in System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces())
            {
                foreach (var unicast in nic.GetIPProperties().UnicastAddresses)
                {
                    addresses.Add(unicast.Address);
                }
            }
        }
        catch (System.Net.NetworkInformation.NetworkInformationException)
        {
            // Without the interface list only loopback counts as local.
        }

        return addresses;
    }

    private static IHost BuildHost(IPEndPoint[] endpoints, string? database, ConnectionLossSignal lost)
    {
        // DisableDefaults: no appsettings.json from the current directory and no console logger;
        // the CLI's output is its tables, JSON and one-line errors, nothing else.
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            DisableDefaults = true,
            ApplicationName = "p2pshare",
        });
        builder.Logging.ClearProviders();
        // The default ConsoleLifetime stops the host on Ctrl-C, which closes the client's connection
        // while an interrupted upload still needs it to abort its session on the peer.
        builder.Services.AddSingleton<IHostLifetime, CommandLifetime>();
        builder.UseOrleansClient(client =>
        {
            if (database is not null)
            {
                client.UseAdoNetClustering(o =>
                {
                    o.Invariant = ClusteringOptions.NpgsqlInvariant;
                    o.ConnectionString = database;
                });
            }
            else
            {
                client.UseStaticClustering(endpoints);
            }

            client.UseConnectionRetryFilter(new ConnectRetryFilter().ShouldRetryAsync);
            client.AddClusterConnectionLostHandler((_, _) => lost.Signal());
            client.AddGatewayCountChangedHandler((_, e) =>
            {
                if (e.NumberOfConnectedGateways == 0)
                {
                    lost.Signal();
                }
            });
            client.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = ClusterIds.ClusterId;
                o.ServiceId = ClusterIds.ServiceId;
            });
        });
        return builder.Build();
    }

    /// <summary>Ctrl-C belongs to System.CommandLine, which turns it into the command's cancellation token.</summary>
    private sealed class CommandLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>
    /// A refused connection will not succeed a second later in a way worth making the user wait
    /// for; a couple of short retries cover a gateway that is just starting.
    /// </summary>
    private sealed class ConnectRetryFilter
    {
        private const int MaxRetries = 2;
        private static readonly TimeSpan Delay = TimeSpan.FromMilliseconds(500);
        private int _retries;

        public async Task<bool> ShouldRetryAsync(Exception error, CancellationToken ct)
        {
            if (++_retries > MaxRetries)
            {
                return false;
            }

            await Task.Delay(Delay, ct).ConfigureAwait(false);
            return true;
        }
    }

    /// <summary>
    /// Armed only once connected: failed attempts during start-up (which the retry filter may
    /// follow with a successful one) must not count as losing a connection we never had.
    /// </summary>
    private sealed class ConnectionLossSignal : IDisposable
    {
        private readonly CancellationTokenSource _cts = new();
        private volatile bool _armed;

        public CancellationToken Token => _cts.Token;

        public void Arm() => _armed = true;

        public void Signal()
        {
            if (!_armed)
            {
                return;
            }

            try
            {
                _cts.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // The command already finished and the connection is being torn down.
            }
        }

        public void Dispose() => _cts.Dispose();
    }

    private static async Task<IPEndPoint?> TryResolveAdvertisedAsync(string gateway, CancellationToken ct)
    {
        try
        {
            return await Gateways.ResolveAsync(Gateways.Parse(gateway), ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is UsageException or ClusterUnreachableException)
        {
            // One peer advertising garbage must not stop the others from matching.
            return null;
        }
    }

    private static async Task StopQuietlyAsync(IHost host)
    {
        try
        {
            using var stop = new CancellationTokenSource(StopTimeout);
            await host.StopAsync(stop.Token).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Shutting down a client that never connected, or whose cluster vanished, may throw;
            // the command's own result is what the user needs to see.
        }
        finally
        {
            host.Dispose();
        }
    }
}
