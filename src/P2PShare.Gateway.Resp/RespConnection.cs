using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics;
using System.Net.Sockets;

namespace P2PShare.Resp;

/// <summary>
/// One client: reads requests into one buffer, parses every complete request in it, executes each
/// against the memory store and collects the replies, then sends them in one write before reading
/// again (pipelined clients get one send per batch). While replies are unsent nothing more is read,
/// so a client that sends without reading is held back by TCP instead of buffered by the peer.
/// </summary>
/// <remarks>
/// The parser is resumable: a request that arrives in pieces is not parsed again from its start,
/// and its buffer grows only as its bytes arrive (declared lengths are checked against the limits
/// first). A protocol error gets an <c>-ERR Protocol error: ...</c> line, then the connection closes.
/// </remarks>
internal sealed partial class RespConnection
{
    private const int InitialBufferBytes = 16 * 1024;
    /// <summary>Request buffers up to this size are every connection's due; larger ones draw on the shared budget.</summary>
    private const int FreeBufferBytes = 64 * 1024;
    private const int PooledBufferLimit = 1024 * 1024;
    /// <summary>Longest header line (<c>*N</c> or <c>$N</c>) a valid request can have.</summary>
    private const int MaxHeaderLine = 24;

    private readonly Socket _socket;
    private readonly RespServer _server;
    private readonly RespLimits _limits;
    private readonly ReplyBuffer _out = new();
    private readonly char[] _keyChars;

    private byte[] _in = ArrayPool<byte>.Shared.Rent(InitialBufferBytes);
    private int _start;
    private int _end;
    private long _reserved;

    // Parse state of the request at _start (offsets are from _start).
    private int _expected = -1;
    private int _argc;
    private int _scan;
    private long _bulkLength = -1;
    private bool _inline;
    private ArgRange[] _args = new ArgRange[16];
    private string? _protocolError;

    private long _deadline = long.MaxValue;
    private string _deadlineReason = "";
    private long _requestStarted;
    private long _lastReceive;
    private long _commands;
    private bool _quit;

    public RespConnection(long id, Socket socket, RespServer server)
    {
        Id = id;
        _socket = socket;
        _server = server;
        _limits = server.Limits;
        _keyChars = new char[server.Store.MaxKeyBytes];
        Remote = socket.RemoteEndPoint?.ToString() ?? "?";
    }

    public long Id { get; }

    public string Remote { get; }

    public long Commands => Volatile.Read(ref _commands);

    /// <summary>When (Stopwatch timestamp) the connection is closed unless it makes progress.</summary>
    public long Deadline => Volatile.Read(ref _deadline);

    public string DeadlineReason => Volatile.Read(ref _deadlineReason);

    /// <summary>Ends the connection at once: deadlines and shutdown.</summary>
    public void Abort()
    {
        try
        {
            _socket.Close(0);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public async Task RunAsync()
    {
        try
        {
            while (true)
            {
                while (true)
                {
                    var parsed = Parse();
                    if (parsed == ParseResult.Incomplete) break;
                    if (parsed == ParseResult.Error)
                    {
                        _out.WriteError(_protocolError!);
                        await FlushAsync().ConfigureAwait(false);
                        return;
                    }

                    if (_argc > 0)
                    {
                        Execute();
                        _commands++;
                    }

                    ConsumeRequest();
                    if (_quit)
                    {
                        await FlushAsync().ConfigureAwait(false);
                        return;
                    }

                    if (_out.PendingBytes >= _limits.OutputBufferBytes) await FlushAsync().ConfigureAwait(false);
                }

                if (_out.PendingBytes > 0) await FlushAsync().ConfigureAwait(false);
                if (!MakeRoom())
                {
                    _out.WriteError(_protocolError!);
                    await FlushAsync().ConfigureAwait(false);
                    return;
                }

                if (_end > _start) Arm(_requestStarted + Ticks(_limits.RequestTimeout), "a request took too long to arrive (Resp:RequestTimeout)");
                else Arm(Stopwatch.GetTimestamp() + Ticks(_limits.IdleTimeout), "idle (Resp:IdleTimeout)");

                var n = await _socket.ReceiveAsync(_in.AsMemory(_end), SocketFlags.None).ConfigureAwait(false);
                if (n == 0) return;
                _lastReceive = Stopwatch.GetTimestamp();
                if (_end == _start) _requestStarted = _lastReceive;
                _end += n;
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException)
        {
            // The client went away, or a deadline or shutdown closed the socket.
        }
        catch (Exception e)
        {
            LogConnectionFailed(_server.Logger, e, Remote);
        }
        finally
        {
            Close();
        }
    }

    private async ValueTask FlushAsync()
    {
        await _out.FlushAsync(_socket, ArmWrite).ConfigureAwait(false);
        Arm(long.MaxValue, "");
    }

    private void ArmWrite() => Arm(Stopwatch.GetTimestamp() + Ticks(_limits.WriteTimeout), "the client did not take its replies (Resp:WriteTimeout)");

    private void Arm(long deadline, string reason)
    {
        Volatile.Write(ref _deadlineReason, reason);
        Volatile.Write(ref _deadline, deadline);
    }

    private static long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    private void Close()
    {
        _server.Closed(this);
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }

        _socket.Dispose();
        ReleaseBuffer();
        _out.Dispose();
    }

    // ---- input buffer ----

    private void ConsumeRequest()
    {
        _start += _scan;
        _expected = -1;
        _argc = 0;
        _scan = 0;
        _bulkLength = -1;
        _inline = false;
        if (_start == _end) _start = _end = 0;
        // What is left arrived with the last read: the next request's clock starts then.
        else _requestStarted = _lastReceive;
    }

    /// <summary>Makes room to receive more; false (with <see cref="_protocolError"/>) when the request may not grow.</summary>
    private bool MakeRoom()
    {
        if (_start == _end)
        {
            _start = _end = 0;
            // A large request is done: give its buffer back.
            if (_in.Length > FreeBufferBytes) ReplaceBuffer(ArrayPool<byte>.Shared.Rent(InitialBufferBytes), 0);
            return true;
        }

        if (_end < _in.Length) return true;
        var pending = _end - _start;
        if (_start > 0 && pending < _in.Length / 2)
        {
            Buffer.BlockCopy(_in, _start, _in, 0, pending);
            _start = 0;
            _end = pending;
            return true;
        }

        // Grow as bytes arrive (doubling), never past what the request declared it still needs.
        var need = _bulkLength >= 0 ? (long)_scan + _bulkLength + 2 : (long)pending + 1;
        var size = Math.Max(Math.Min((long)_in.Length * 2, Math.Max(need, pending + 1L)), pending + 1L);
        if (size > _limits.MaxRequestBytes + MaxHeaderLine)
        {
            _protocolError = $"ERR Protocol error: request larger than this endpoint's limit of {_limits.MaxRequestBytes} bytes (Resp:MaxRequestBytes)";
            return false;
        }

        var reserve = Math.Max(0, size - FreeBufferBytes);
        if (reserve > _reserved && !_server.Budget.TryReserve(reserve - _reserved))
        {
            _protocolError = $"ERR server busy: {Bytes.Format(_server.Budget.Used)} of large requests are being received (Resp:MaxBufferedBytes); try again";
            return false;
        }

        var grown = size <= PooledBufferLimit ? ArrayPool<byte>.Shared.Rent((int)size) : GC.AllocateUninitializedArray<byte>((int)size);
        Buffer.BlockCopy(_in, _start, grown, 0, pending);
        ReplaceBuffer(grown, reserve);
        _start = 0;
        _end = pending;
        return true;
    }

    private void ReplaceBuffer(byte[] next, long reserved)
    {
        ReturnBuffer(_in);
        _in = next;
        if (reserved < _reserved) _server.Budget.Release(_reserved - reserved);
        _reserved = reserved;
    }

    private void ReleaseBuffer()
    {
        ReturnBuffer(_in);
        _in = [];
        _server.Budget.Release(_reserved);
        _reserved = 0;
    }

    private static void ReturnBuffer(byte[] buffer)
    {
        if (buffer.Length is > 0 and <= PooledBufferLimit) ArrayPool<byte>.Shared.Return(buffer);
    }

    // ---- parser ----

    private enum ParseResult
    {
        Incomplete,
        Complete,
        Error,
    }

    private readonly record struct ArgRange(int Offset, int Length);

    private ReadOnlySpan<byte> Arg(int i) => _in.AsSpan(_start + _args[i].Offset, _args[i].Length);

    private ParseResult Parse()
    {
        var span = _in.AsSpan(_start, _end - _start);
        if (_expected < 0)
        {
            if (span.IsEmpty) return ParseResult.Incomplete;
            if (span[0] != (byte)'*' || _inline) return ParseInline(span);
            var line = LineEnd(span);
            if (line == -1 && span.Length <= MaxHeaderLine) return ParseResult.Incomplete;
            if (line < 0) return Fail("ERR Protocol error: invalid multibulk length");
            if (!TryParseLength(span[1..(line - 1)], out var count)) return Fail("ERR Protocol error: invalid multibulk length");
            if (count > _limits.MaxArguments)
                return Fail($"ERR Protocol error: a request of {count} arguments is over this endpoint's limit of {_limits.MaxArguments} (Resp:MaxArguments)");
            _scan = line + 1;
            if (count <= 0)
            {
                // "*0" and "*-1" are empty requests: Redis skips them.
                _argc = 0;
                return ParseResult.Complete;
            }

            _expected = (int)count;
        }

        while (_argc < _expected)
        {
            if (_bulkLength < 0)
            {
                var rest = span[_scan..];
                if (rest.IsEmpty) return ParseResult.Incomplete;
                if (rest[0] != (byte)'$')
                {
                    return Fail(rest[0] == (byte)'*'
                        ? "ERR Protocol error: nested arrays are not allowed (a request is a flat array of bulk strings)"
                        : $"ERR Protocol error: expected '$', got '{Printable(rest[0])}'");
                }

                var line = LineEnd(rest);
                if (line == -1 && rest.Length <= MaxHeaderLine) return ParseResult.Incomplete;
                if (line < 0) return Fail("ERR Protocol error: invalid bulk length");
                if (!TryParseLength(rest[1..(line - 1)], out var length) || length < 0) return Fail("ERR Protocol error: invalid bulk length");
                if (length > _limits.MaxBulkBytes)
                    return Fail($"ERR Protocol error: a bulk string of {length} bytes is over this endpoint's limit of {_limits.MaxBulkBytes} (Resp:MaxBulkBytes)");
                if (_scan + line + 1 + length + 2 > _limits.MaxRequestBytes)
                    return Fail($"ERR Protocol error: request larger than this endpoint's limit of {_limits.MaxRequestBytes} bytes (Resp:MaxRequestBytes)");
                _scan += line + 1;
                _bulkLength = length;
            }

            if (span.Length - _scan < _bulkLength + 2) return ParseResult.Incomplete;
            var end = _scan + (int)_bulkLength;
            if (span[end] != (byte)'\r' || span[end + 1] != (byte)'\n') return Fail("ERR Protocol error: a bulk string must end with CRLF");
            AddArg(_scan, (int)_bulkLength);
            _scan = end + 2;
            _bulkLength = -1;
        }

        return ParseResult.Complete;
    }

    /// <summary>
    /// A plain-text command line, as telnet or <c>nc</c> send it: words split on spaces and tabs, no
    /// quoting. Bounded by <see cref="RespLimits.MaxInlineBytes"/>.
    /// </summary>
    private ParseResult ParseInline(ReadOnlySpan<byte> span)
    {
        _inline = true;
        var newline = span.IndexOf((byte)'\n');
        if (newline < 0)
        {
            return span.Length > _limits.MaxInlineBytes
                ? Fail($"ERR Protocol error: too big inline request (over {_limits.MaxInlineBytes} bytes, Resp:MaxInlineBytes)")
                : ParseResult.Incomplete;
        }

        if (newline > _limits.MaxInlineBytes)
            return Fail($"ERR Protocol error: too big inline request (over {_limits.MaxInlineBytes} bytes, Resp:MaxInlineBytes)");
        var lineEnd = newline > 0 && span[newline - 1] == (byte)'\r' ? newline - 1 : newline;
        _argc = 0;
        var i = 0;
        while (i < lineEnd)
        {
            while (i < lineEnd && span[i] is (byte)' ' or (byte)'\t') i++;
            if (i == lineEnd) break;
            var wordStart = i;
            while (i < lineEnd && span[i] is not ((byte)' ' or (byte)'\t')) i++;
            if (_argc >= _limits.MaxArguments)
                return Fail($"ERR Protocol error: a request of more than {_limits.MaxArguments} arguments is over this endpoint's limit (Resp:MaxArguments)");
            AddArg(wordStart, i - wordStart);
        }

        _scan = newline + 1;
        return ParseResult.Complete;
    }

    private void AddArg(int offset, int length)
    {
        if (_argc == _args.Length) Array.Resize(ref _args, (int)Math.Min((long)_args.Length * 2, Math.Max(_limits.MaxArguments, 16)));
        _args[_argc++] = new ArgRange(offset, length);
    }

    private ParseResult Fail(string message)
    {
        _protocolError = message;
        return ParseResult.Error;
    }

    /// <summary>
    /// Index of the '\n' ending the header line at the start of <paramref name="span"/>: -1 when it has
    /// not arrived yet, <see cref="BareLineFeed"/> when the line ends without '\r' (malformed).
    /// </summary>
    private static int LineEnd(ReadOnlySpan<byte> span)
    {
        var window = span.Length > MaxHeaderLine ? span[..MaxHeaderLine] : span;
        var n = window.IndexOf((byte)'\n');
        if (n < 0) return -1;
        return n >= 2 && window[n - 1] == (byte)'\r' ? n : BareLineFeed;
    }

    private const int BareLineFeed = -2;

    private static bool TryParseLength(ReadOnlySpan<byte> digits, out long value) =>
        Utf8Parser.TryParse(digits, out value, out var used) && used == digits.Length && digits.Length > 0;

    private static string Printable(byte b) => b is >= 0x20 and < 0x7f ? ((char)b).ToString() : $"\\x{b:x2}";

    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis-protocol port: connection from {Remote} failed")]
    private static partial void LogConnectionFailed(ILogger logger, Exception e, string remote);
}
