using System.Net;
using System.Net.Sockets;
using P2PShare.Compute;
using P2PShare.Peers;
using P2PShare.Tracker;

namespace P2PShare.Legacy;

/// <summary>The configured seed-protocol port could not be opened.</summary>
public sealed class LegacyPortException(string message) : Exception(message);

/// <summary>
/// Opens this peer's seed-protocol listeners once the silo is active (so grains answer), and closes
/// them first thing when it stops. Does nothing when neither port is configured.
/// </summary>
public sealed partial class LegacyGateway(
    IGrainFactory grains,
    PeerIdentity identity,
    SeedProtocolEndpoint endpoint,
    LoadReporter reporter,
    IOptions<LegacyOptions> options,
    IOptions<ComputeOptions> compute,
    TimeProvider time,
    ILogger<LegacyGateway> logger) : ILifecycleParticipant<ISiloLifecycle>
{
    private readonly List<LegacyServer> _servers = [];
    private ByteBudget? _budget;

    /// <summary>Bytes of large messages the seed-protocol ports hold right now (see <see cref="LegacyOptions.MaxBufferedBytes"/>).</summary>
    public long BufferedBytes => _budget?.Used ?? 0;

    /// <summary>The bound peer-protocol endpoint, once started (port 0 in options picks a free one).</summary>
    public IPEndPoint? PeerEndpoint { get; private set; }

    public IPEndPoint? TrackerEndpoint { get; private set; }

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(LegacyGateway), ServiceLifecycleStage.Active, OnStartAsync, OnStopAsync);

    private Task OnStartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (o.PeerPort is null && o.TrackerPort is null) return Task.CompletedTask;
        if (!IPAddress.TryParse(o.BindAddress, out var address))
            throw new LegacyPortException($"Legacy:BindAddress '{o.BindAddress}' is not an IP address");

        var budget = _budget = new ByteBudget(o.MaxBufferedBytes);
        var endpoints = new LegacyEndpoints(grains, time);
        if (o.PeerPort is { } peerPort)
        {
            PeerEndpoint = Open("peer", new LegacyPeerHandler(grains, identity, endpoint, reporter, endpoints, o, compute.Value, budget), address, peerPort, "--legacy-port");
            endpoint.Opened(PeerEndpoint.Port);
            reporter.ReportSoon(); // the tracker learns the endpoint now, not at the next interval
        }

        if (o.TrackerPort is { } trackerPort)
            TrackerEndpoint = Open("tracker", new LegacyTrackerHandler(grains, endpoints), address, trackerPort, "--tracker-legacy-port");
        return Task.CompletedTask;

        IPEndPoint Open(string name, ILegacyHandler handler, IPAddress bind, int port, string flag)
        {
            var server = new LegacyServer(name, handler, o, budget, logger);
            try
            {
                server.Start(new IPEndPoint(bind, port));
            }
            catch (SocketException e)
            {
                throw new LegacyPortException(e.SocketErrorCode == SocketError.AddressAlreadyInUse
                    ? $"seed-protocol {name} port {port} is already in use (choose another {flag})"
                    : $"cannot open seed-protocol {name} port {bind}:{port}: {e.Message}");
            }

            _servers.Add(server);
            LogListening(name, server.LocalEndpoint.ToString());
            return server.LocalEndpoint;
        }
    }

    private async Task OnStopAsync(CancellationToken cancellationToken)
    {
        foreach (var server in _servers) await server.DisposeAsync().ConfigureAwait(false);
        _servers.Clear();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Seed-protocol {Server} port listening on {Endpoint}")]
    private partial void LogListening(string server, string endpoint);
}
