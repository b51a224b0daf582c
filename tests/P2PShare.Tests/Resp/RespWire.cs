using System.Net;
using System.Net.Sockets;
using System.Text;

namespace P2PShare.Tests.Resp;

/// <summary>
/// A raw TCP client of RESP2, for what no well-behaved client library sends: bytes are written as
/// given, replies are read as they come (simple parser for the reply kinds the endpoint sends).
/// </summary>
internal sealed class RespWire : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;

    private RespWire(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
    }

    public Socket Socket => _tcp.Client;

    public static async Task<RespWire> ConnectAsync(IPEndPoint endpoint)
    {
        var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(endpoint);
        return new RespWire(tcp);
    }

    public static byte[] Command(params object[] args)
    {
        var text = new MemoryStream();
        text.Write(Encoding.ASCII.GetBytes($"*{args.Length}\r\n"));
        foreach (var arg in args)
        {
            var bytes = arg as byte[] ?? Encoding.UTF8.GetBytes(Convert.ToString(arg, System.Globalization.CultureInfo.InvariantCulture)!);
            text.Write(Encoding.ASCII.GetBytes($"${bytes.Length}\r\n"));
            text.Write(bytes);
            text.Write("\r\n"u8);
        }

        return text.ToArray();
    }

    public Task SendAsync(string raw) => SendAsync(Encoding.UTF8.GetBytes(raw));

    public async Task SendAsync(byte[] raw) => await _stream.WriteAsync(raw);

    /// <summary>Sends one command and reads its reply.</summary>
    public async Task<object?> CallAsync(params object[] args)
    {
        await SendAsync(Command(args));
        return await ReadAsync();
    }

    /// <summary>
    /// One reply: a string for +simple, an <see cref="RespError"/> for -errors, a long for :integers,
    /// a byte[] (or null) for bulk strings, an object?[] (or null) for arrays. Throws
    /// <see cref="EndOfStreamException"/> when the server closed the connection.
    /// </summary>
    public async Task<object?> ReadAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(30));
        var line = await ReadLineAsync(cts.Token);
        var body = line[1..];
        switch (line[0])
        {
            case '+': return body;
            case '-': return new RespError(body);
            case ':': return long.Parse(body, System.Globalization.CultureInfo.InvariantCulture);
            case '$':
                {
                    var length = int.Parse(body, System.Globalization.CultureInfo.InvariantCulture);
                    if (length < 0) return null;
                    var bytes = await ReadExactAsync(length + 2, cts.Token);
                    return bytes[..length];
                }
            case '*':
                {
                    var count = int.Parse(body, System.Globalization.CultureInfo.InvariantCulture);
                    if (count < 0) return null;
                    var items = new object?[count];
                    for (var i = 0; i < count; i++) items[i] = await ReadAsync(timeout);
                    return items;
                }
            default: throw new InvalidDataException($"unexpected reply line '{line}'");
        }
    }

    /// <summary>True when the server closed the connection (after any replies still unread), within <paramref name="timeout"/>.</summary>
    public async Task<bool> ClosedByServerAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                _start = _end = 0;
                var n = await _stream.ReadAsync(_buffer, cts.Token);
                if (n == 0) return true;
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (IOException)
        {
            return true;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _tcp.Dispose();
    }

    private async Task<string> ReadLineAsync(CancellationToken token)
    {
        while (true)
        {
            var newline = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (newline > _start && _buffer[newline - 1] == '\r')
            {
                var line = Encoding.UTF8.GetString(_buffer, _start, newline - 1 - _start);
                _start = newline + 1;
                return line;
            }

            await FillAsync(token);
        }
    }

    private async Task<byte[]> ReadExactAsync(int count, CancellationToken token)
    {
        var result = new byte[count];
        var got = 0;
        while (got < count)
        {
            if (_start == _end) await FillAsync(token);
            var n = Math.Min(count - got, _end - _start);
            Array.Copy(_buffer, _start, result, got, n);
            _start += n;
            got += n;
        }

        return result;
    }

    private async Task FillAsync(CancellationToken token)
    {
        if (_start > 0)
        {
            Array.Copy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length) throw new InvalidDataException("reply line longer than the test buffer");
        var n = await _stream.ReadAsync(_buffer.AsMemory(_end), token);
        if (n == 0) throw new EndOfStreamException("the server closed the connection");
        _end += n;
    }
}

internal sealed record RespError(string Message);
