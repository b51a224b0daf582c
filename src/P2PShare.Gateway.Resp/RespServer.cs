using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using P2PShare.Memory;

namespace P2PShare.Resp;

/// <summary>
/// The TCP listener of the Redis-protocol endpoint. Each connection runs its own read-execute-reply
/// loop against the memory store in this process (no grain call per command). One timer enforces
/// every connection's deadline (idle, request, write), so the request path arms a deadline with one
/// field write instead of a timer per read.
/// </summary>
internal sealed partial class RespServer : IAsyncDisposable
{
    private static readonly byte[] TooManyClients = "-ERR max number of clients reached\r\n"u8.ToArray();

    private readonly MemoryStore _store;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<long, RespConnection> _connections = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly ITimer _deadlines;
    private Socket? _listener;
    private Task _acceptLoop = Task.CompletedTask;
    private long _nextId;
    private long _connectionsReceived;
    private long _commandsOfClosed;

    public RespServer(MemoryStore store, RespLimits limits, ILogger logger)
    {
        _store = store;
        Limits = limits;
        _logger = logger;
        Budget = new RequestBudget(limits.MaxBufferedBytes);
        StartedTimestamp = Stopwatch.GetTimestamp();
        var shortest = new[] { limits.IdleTimeout, limits.RequestTimeout, limits.WriteTimeout }.Min();
        var period = TimeSpan.FromTicks(Math.Clamp(shortest.Ticks / 4, TimeSpan.FromMilliseconds(20).Ticks, TimeSpan.FromSeconds(1).Ticks));
        _deadlines = TimeProvider.System.CreateTimer(_ => AbortLate(), null, period, period);
    }

    public RespLimits Limits { get; }

    public RequestBudget Budget { get; }

    public MemoryStore Store => _store;

    public ILogger Logger => _logger;

    public long StartedTimestamp { get; }

    public IPEndPoint LocalEndpoint => (IPEndPoint)(_listener?.LocalEndPoint ?? throw new InvalidOperationException("not started"));

    public int ConnectionCount => _connections.Count;

    public long BufferedBytes => Budget.Used;

    public long ConnectionsReceived => Interlocked.Read(ref _connectionsReceived);

    public long CommandsProcessed
    {
        get
        {
            var total = Interlocked.Read(ref _commandsOfClosed);
            foreach (var c in _connections.Values) total += c.Commands;
            return total;
        }
    }

    /// <exception cref="SocketException">The address cannot be bound (e.g. the port is in use).</exception>
    public void Start(IPEndPoint endpoint)
    {
        var listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(endpoint);
            listener.Listen(512);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        _listener = listener;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _deadlines.DisposeAsync().ConfigureAwait(false);
        _listener?.Dispose();
        foreach (var connection in _connections.Values) connection.Abort();
        await _acceptLoop.ConfigureAwait(false);
        _stopping.Dispose();
    }

    internal void Closed(RespConnection connection)
    {
        Interlocked.Add(ref _commandsOfClosed, connection.Commands);
        _connections.TryRemove(connection.Id, out _);
    }

    private async Task AcceptLoopAsync()
    {
        var token = _stopping.Token;
        while (!token.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener!.AcceptAsync(token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e)
            {
                // Out of file descriptors and the like: say so, and don't spin.
                LogAcceptFailed(e.Message);
                await Task.Delay(100, CancellationToken.None).ConfigureAwait(false);
                continue;
            }

            Interlocked.Increment(ref _connectionsReceived);
            if (_connections.Count >= Limits.MaxConnections)
            {
                LogRefused(Limits.MaxConnections);
                _ = RefuseAsync(socket);
                continue;
            }

            socket.NoDelay = true;
            var connection = new RespConnection(Interlocked.Increment(ref _nextId), socket, this);
            _connections[connection.Id] = connection;
            _ = Task.Run(connection.RunAsync, CancellationToken.None);
        }
    }

    /// <summary>Tells the extra client why (as Redis does) and closes; never blocks the accept loop.</summary>
    private static async Task RefuseAsync(Socket socket)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await socket.SendAsync(TooManyClients, SocketFlags.None, timeout.Token).ConfigureAwait(false);
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // It went away first: nothing to tell.
        }
        finally
        {
            socket.Dispose();
        }
    }

    private void AbortLate()
    {
        var now = Stopwatch.GetTimestamp();
        foreach (var connection in _connections.Values)
        {
            if (connection.Deadline >= now) continue;
            LogTimedOut(connection.Remote, connection.DeadlineReason);
            connection.Abort();
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis-protocol port: accept failed: {Reason}")]
    private partial void LogAcceptFailed(string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis-protocol port: {Max} connections are open; refused one (Resp:MaxConnections)")]
    private partial void LogRefused(int max);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Redis-protocol port: closed {Remote}: {Reason}")]
    private partial void LogTimedOut(string remote, string reason);
}
