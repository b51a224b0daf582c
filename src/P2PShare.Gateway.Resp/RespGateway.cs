using System.Net;
using System.Net.Sockets;
using P2PShare.Memory;
using P2PShare.Tracker;

namespace P2PShare.Resp;

/// <summary>The configured Redis-protocol port could not be opened.</summary>
public sealed class RespPortException(string message) : Exception(message);

/// <summary>
/// Opens this peer's Redis-protocol port once the silo is active, and closes it first thing when
/// the silo stops. Does nothing when no port is configured.
/// </summary>
public sealed partial class RespGateway(
    MemoryStore memory,
    RespEndpoint endpoint,
    LoadReporter reporter,
    IOptions<RespOptions> options,
    ILogger<RespGateway> logger) : ILifecycleParticipant<ISiloLifecycle>
{
    private RespServer? _server;

    /// <summary>The bound endpoint, once started (port 0 in options picks a free one).</summary>
    public IPEndPoint? Endpoint => _server?.LocalEndpoint;

    /// <summary>Connections open right now.</summary>
    public int Connections => _server?.ConnectionCount ?? 0;

    /// <summary>Bytes of large requests held right now (see <see cref="RespOptions.MaxBufferedBytes"/>).</summary>
    public long BufferedBytes => _server?.BufferedBytes ?? 0;

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(RespGateway), ServiceLifecycleStage.Active, OnStartAsync, OnStopAsync);

    private Task OnStartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (o.Port is not { } port) return Task.CompletedTask;
        if (!IPAddress.TryParse(o.Address, out var address))
            throw new RespPortException($"Resp:Address '{o.Address}' is not an IP address");

        var server = new RespServer(memory, RespLimits.From(o, memory), logger);
        try
        {
            server.Start(new IPEndPoint(address, port));
        }
        catch (SocketException e)
        {
            throw new RespPortException(e.SocketErrorCode == SocketError.AddressAlreadyInUse
                ? $"Redis-protocol port {port} is already in use (choose another --resp-port)"
                : $"cannot open Redis-protocol port {address}:{port}: {e.Message}");
        }

        _server = server;
        endpoint.Opened(server.LocalEndpoint);
        reporter.ReportSoon(); // the tracker learns the endpoint now, not at the next interval
        LogListening(server.LocalEndpoint.ToString());
        return Task.CompletedTask;
    }

    private async Task OnStopAsync(CancellationToken cancellationToken)
    {
        if (_server is { } server) await server.DisposeAsync().ConfigureAwait(false);
        _server = null;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis-protocol (RESP2) port listening on {Endpoint}")]
    private partial void LogListening(string endpoint);
}
