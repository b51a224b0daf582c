using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace P2PShare.Legacy;

/// <summary>
/// A TCP listener speaking the original system's framing: a 4-byte big-endian length, then that
/// many bytes of UTF-8 JSON, one reply per request, any number of requests per connection.
/// Hostile input costs the sender, not the peer: a length over <see cref="LegacyOptions.MaxFrameBytes"/>
/// is refused before anything is allocated, a body's buffer grows only as its bytes actually arrive,
/// the bodies above 64 KiB together stay within <see cref="LegacyOptions.MaxBufferedBytes"/>, a silent or trickling
/// client is dropped (<see cref="LegacyOptions.IdleTimeout"/>, <see cref="LegacyOptions.StallTimeout"/>,
/// and a minimum average rate), and when <see cref="LegacyOptions.MaxConnections"/> are open the
/// connection idle the longest makes room for the new one. Malformed messages get an ERROR reply
/// and the connection stays usable; a broken frame (truncated, oversized, too slow) gets an ERROR
/// when the socket still takes it, then the connection is closed.
/// </summary>
internal sealed partial class LegacyServer : IAsyncDisposable
{
    /// <summary>A body must arrive at least this fast on average (after <see cref="LegacyOptions.IdleTimeout"/> of grace).</summary>
    internal const int MinBytesPerSecond = 64 * 1024;
    private const int InitialBodyBuffer = 64 * 1024;
    private const int MaxJsonDepth = 64;

    private readonly string _name;
    private readonly ILegacyHandler _handler;
    private readonly LegacyOptions _options;
    private readonly ByteBudget _budget;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<long, Connection> _connections = new();
    private readonly CancellationTokenSource _stopping = new();
    private Socket? _listener;
    private Task _acceptLoop = Task.CompletedTask;
    private long _nextId;

    public LegacyServer(string name, ILegacyHandler handler, LegacyOptions options, ByteBudget budget, ILogger logger)
    {
        _name = name;
        _handler = handler;
        _options = options;
        _budget = budget;
        _logger = logger;
    }

    public IPEndPoint LocalEndpoint => (IPEndPoint)(_listener?.LocalEndPoint ?? throw new InvalidOperationException("not started"));

    public int ConnectionCount => _connections.Count;

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
        _listener?.Dispose();
        foreach (var connection in _connections.Values) connection.Abort();
        await _acceptLoop.ConfigureAwait(false);
        _stopping.Dispose();
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
                LogAcceptFailed(_name, e.Message);
                await Task.Delay(100, CancellationToken.None).ConfigureAwait(false);
                continue;
            }

            if (_connections.Count >= _options.MaxConnections && !EvictIdlest())
            {
                LogRefused(_name, _options.MaxConnections);
                socket.Dispose();
                continue;
            }

            var connection = new Connection(Interlocked.Increment(ref _nextId), socket);
            _connections[connection.Id] = connection;
            _ = Task.Run(() => ServeAsync(connection, token), CancellationToken.None);
        }
    }

    /// <summary>Closes the connection that has waited longest without sending, unless all are being answered.</summary>
    private bool EvictIdlest()
    {
        Connection? idlest = null;
        foreach (var c in _connections.Values)
        {
            if (c.Busy) continue;
            if (idlest is null || c.LastActivity < idlest.LastActivity) idlest = c;
        }

        if (idlest is null) return false;
        LogEvicted(_name, idlest.Remote);
        idlest.Abort();
        _connections.TryRemove(idlest.Id, out _);
        return true;
    }

    private async Task ServeAsync(Connection connection, CancellationToken token)
    {
        try
        {
            connection.Socket.NoDelay = true;
            await using var stream = new NetworkStream(connection.Socket, ownsSocket: false);
            while (!token.IsCancellationRequested)
            {
                var frame = await ReadFrameAsync(connection, stream, token).ConfigureAwait(false);
                if (frame.Closed) return;
                if (frame.Body is null)
                {
                    await WriteAsync(stream, Serialize(LegacyReply.Error(frame.Error!)), token).ConfigureAwait(false);
                    if (frame.Fatal) return;
                    continue;
                }

                connection.Busy = true;
                ILegacyStreamedField? streamed = null;
                try
                {
                    var (reply, tail) = await AnswerAsync(connection, frame.Body, frame.Length, token).ConfigureAwait(false);
                    streamed = tail;
                    if (streamed is null)
                    {
                        await WriteAsync(stream, reply, token).ConfigureAwait(false);
                    }
                    else
                    {
                        // The request's body is no longer needed while a long reply is sent.
                        if (frame.Reserved > 0) _budget.Release(frame.Reserved);
                        frame = frame with { Reserved = 0 };
                        await WriteStreamedAsync(stream, reply, streamed, token).ConfigureAwait(false);
                    }
                }
                finally
                {
                    if (streamed is not null) await streamed.DisposeAsync().ConfigureAwait(false);
                    if (frame.Reserved > 0) _budget.Release(frame.Reserved);
                    connection.Busy = false;
                    connection.Touch();
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException or TimeoutException)
        {
            // The client went away, stalled, or we are stopping: nothing to answer.
        }
        catch (Exception e)
        {
            LogConnectionFailed(e, _name, connection.Remote);
        }
        finally
        {
            _connections.TryRemove(connection.Id, out _);
            connection.Close();
        }
    }

    private async Task<(ReadOnlyMemory<byte> Frame, ILegacyStreamedField? Streamed)> AnswerAsync(Connection connection, byte[] body, int length, CancellationToken token)
    {
        if (!System.Text.Unicode.Utf8.IsValid(body.AsSpan(0, length)))
            return (Serialize(LegacyReply.Error("malformed message: the message is not valid UTF-8")), null);

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body.AsMemory(0, length), new JsonDocumentOptions { MaxDepth = MaxJsonDepth });
        }
        catch (JsonException e)
        {
            return (Serialize(LegacyReply.Error($"malformed message: not a JSON document in UTF-8 ({FirstSentence(e.Message)})")), null);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                return (Serialize(LegacyReply.Error($"malformed message: expected a JSON object with a \"type\", got {LegacyRequest.Describe(root.ValueKind)}")), null);
            if (!root.TryGetProperty("type", out var typeElement) || typeElement.ValueKind != JsonValueKind.String || typeElement.GetString() is not { Length: > 0 } type)
                return (Serialize(LegacyReply.Error("malformed message: it needs a \"type\" (a string)")), null);

            var request = new LegacyRequest(root, type.ToUpperInvariant(), connection.Remote);
            LegacyReply reply;
            try
            {
                reply = await _handler.HandleAsync(request, token).ConfigureAwait(false);
            }
            catch (LegacyProtocolException e)
            {
                reply = LegacyReply.Error(e.Message);
            }
            catch (P2PShareException e)
            {
                reply = LegacyReply.Error(e.Message);
            }
            catch (Exception e) when (e is not OperationCanceledException || !token.IsCancellationRequested)
            {
                LogHandlerFailed(e, _name, request.Type);
                reply = LegacyReply.Error($"{request.Type} failed: {FirstSentence(e.Message)}");
            }

            // Written while the request is alive: a reply may echo parts of it (e.g. task_id).
            return (Serialize(reply), reply.Streamed);
        }
    }

    private async Task<Frame> ReadFrameAsync(Connection connection, NetworkStream stream, CancellationToken token)
    {
        var prefix = new byte[4];
        var got = 0;
        while (got < 4)
        {
            int n;
            try
            {
                n = await ReadSomeAsync(stream, prefix.AsMemory(got), got == 0 ? _options.IdleTimeout : _options.StallTimeout, token).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                return got == 0 ? Frame.End : Frame.Broken($"the length prefix stalled after {got} of 4 bytes");
            }

            if (n == 0) return got == 0 ? Frame.End : Frame.Broken($"the connection closed inside a length prefix ({got} of 4 bytes)");
            got += n;
            connection.Touch();
        }

        var length = BinaryPrimitives.ReadUInt32BigEndian(prefix);
        if (length == 0) return Frame.Invalid("empty message: a message is a 4-byte big-endian length, then that many bytes of UTF-8 JSON");
        if (length > (uint)_options.MaxFrameBytes)
            return Frame.Broken($"a message of {length} bytes is larger than this gateway's limit of {_options.MaxFrameBytes} bytes (Legacy:MaxFrameBytes)");

        // Small messages are always read: connections are bounded, so their buffers are too. A larger
        // body takes room in the shared budget as its bytes arrive (not as declared), so the budget is
        // held only by bytes a client really sent.
        var reserved = 0L;
        var handedOver = false;
        try
        {
            var buffer = new byte[Math.Min((int)length, InitialBodyBuffer)];
            var filled = 0;
            var allowance = _options.IdleTimeout + TimeSpan.FromSeconds((double)length / MinBytesPerSecond);
            var started = Stopwatch.GetTimestamp();
            while (filled < length)
            {
                if (filled == buffer.Length)
                {
                    var grown = (int)Math.Min(length, (long)buffer.Length * 2);
                    if (!await _budget.TryAcquireAsync(grown - buffer.Length, _options.StallTimeout, token).ConfigureAwait(false))
                        return Frame.Broken($"the gateway is busy receiving other large messages ({Bytes.Format(_budget.Used)} held); try again");
                    reserved += grown - buffer.Length;
                    Array.Resize(ref buffer, grown);
                }

                var left = allowance - Stopwatch.GetElapsedTime(started);
                if (left <= TimeSpan.Zero)
                    return Frame.Broken($"too slow: {filled} of {length} bytes arrived in {allowance.TotalSeconds:0} s");
                int n;
                try
                {
                    n = await ReadSomeAsync(stream, buffer.AsMemory(filled), left < _options.StallTimeout ? left : _options.StallTimeout, token).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    return Frame.Broken($"the message stalled after {filled} of {length} bytes");
                }

                if (n == 0) return Frame.Broken($"truncated message: the connection closed after {filled} of {length} bytes");
                filled += n;
                connection.Touch();
            }

            handedOver = true;
            return new Frame(buffer, (int)length, reserved, null, false, false);
        }
        finally
        {
            if (!handedOver && reserved > 0) _budget.Release(reserved);
        }
    }

    private static async Task<int> ReadSomeAsync(NetworkStream stream, Memory<byte> into, TimeSpan timeout, CancellationToken token) =>
        await stream.ReadAsync(into, token).AsTask().WaitAsync(timeout, token).ConfigureAwait(false);

    private async Task WriteAsync(NetworkStream stream, ReadOnlyMemory<byte> frame, CancellationToken token)
    {
        // A client that does not read its reply is treated like one that does not send.
        var allowance = _options.IdleTimeout + TimeSpan.FromSeconds((double)frame.Length / MinBytesPerSecond);
        await stream.WriteAsync(frame, token).AsTask().WaitAsync(allowance, token).ConfigureAwait(false);
    }

    /// <summary>
    /// A reply whose last string field is produced while it is sent: the length prefix counts the
    /// value up front, the JSON before it goes first, then the value in pieces, then its closing.
    /// </summary>
    private async Task WriteStreamedAsync(NetworkStream stream, ReadOnlyMemory<byte> frame, ILegacyStreamedField streamed, CancellationToken token)
    {
        // The serialized frame ends with the placeholder's `"}`: the value goes between them.
        var head = frame[..^2];
        var jsonLength = frame.Length - 4 + streamed.Length;
        if (jsonLength > _options.MaxFrameBytes)
            throw new IOException($"a reply of {jsonLength} bytes would exceed Legacy:MaxFrameBytes");
        var headBytes = MemoryMarshal.AsMemory(head);
        BinaryPrimitives.WriteInt32BigEndian(headBytes.Span, (int)jsonLength);
        var allowance = _options.IdleTimeout + TimeSpan.FromSeconds((double)(jsonLength + 4) / MinBytesPerSecond);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(token);
        deadline.CancelAfter(allowance);
        try
        {
            await stream.WriteAsync(head, deadline.Token).ConfigureAwait(false);
            await streamed.WriteToAsync(stream, deadline.Token).ConfigureAwait(false);
            await stream.WriteAsync(ClosingQuoteAndBrace, deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!token.IsCancellationRequested)
        {
            throw new TimeoutException("the client did not read its reply in time");
        }
    }

    private static readonly ReadOnlyMemory<byte> ClosingQuoteAndBrace = "\"}"u8.ToArray();

    /// <summary>The reply as a whole frame: length prefix and JSON.</summary>
    internal static ReadOnlyMemory<byte> Serialize(LegacyReply reply)
    {
        var buffer = new ArrayBufferWriter<byte>(Math.Max(256, reply.SizeHint + 4));
        buffer.Advance(4);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            reply.Write(writer);
        }

        var frame = buffer.WrittenMemory;
        BinaryPrimitives.WriteInt32BigEndian(MemoryMarshal.AsMemory(frame).Span, frame.Length - 4);
        return frame;
    }

    private static string FirstSentence(string message)
    {
        var line = message.ReplaceLineEndings(" ");
        return line.Length > 200 ? line[..200] : line;
    }

    private readonly record struct Frame(byte[]? Body, int Length, long Reserved, string? Error, bool Fatal, bool Closed)
    {
        public static Frame End => new(null, 0, 0, null, true, true);

        /// <summary>A complete frame we cannot use: answer ERROR and go on reading.</summary>
        public static Frame Invalid(string error) => new(null, 0, 0, error, false, false);

        /// <summary>The stream is out of step or abusive: answer ERROR if we can, then close.</summary>
        public static Frame Broken(string error) => new(null, 0, 0, error, true, false);
    }

    private sealed class Connection(long id, Socket socket)
    {
        private long _lastActivity = Stopwatch.GetTimestamp();

        public long Id { get; } = id;
        public Socket Socket { get; } = socket;
        public string Remote { get; } = socket.RemoteEndPoint?.ToString() ?? "?";

        /// <summary>Being answered: never evicted for being quiet.</summary>
        public volatile bool Busy;

        public long LastActivity => Volatile.Read(ref _lastActivity);

        public void Touch() => Volatile.Write(ref _lastActivity, Stopwatch.GetTimestamp());

        /// <summary>Ends the connection at once (RST): for eviction and shutdown.</summary>
        public void Abort()
        {
            try
            {
                Socket.Close(0);
            }
            catch (ObjectDisposedException)
            {
            }
        }

        /// <summary>Ends the connection after what was sent (FIN), so a last ERROR reply gets through.</summary>
        public void Close()
        {
            try
            {
                Socket.Shutdown(SocketShutdown.Send);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }

            Socket.Dispose();
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Seed-protocol {Server} port: accept failed: {Reason}")]
    private partial void LogAcceptFailed(string server, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Seed-protocol {Server} port: {Max} connections are open and all are busy; refused one")]
    private partial void LogRefused(string server, int max);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Seed-protocol {Server} port: closed the idlest connection ({Remote}) to make room")]
    private partial void LogEvicted(string server, string remote);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Seed-protocol {Server} port: connection from {Remote} failed")]
    private partial void LogConnectionFailed(Exception e, string server, string remote);

    [LoggerMessage(Level = LogLevel.Error, Message = "Seed-protocol {Server} port: {Type} failed inside the peer")]
    private partial void LogHandlerFailed(Exception e, string server, string type);
}
