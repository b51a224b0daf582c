using System.Buffers;
using System.Buffers.Text;
using System.Net.Sockets;
using System.Text;

namespace P2PShare.Resp;

/// <summary>
/// One connection's unsent replies, written in RESP2. Small replies are copied into pooled chunks;
/// a large value is referenced, not copied (stored values are never changed in place), and sent
/// straight from the store's array. <see cref="FlushAsync"/> sends everything in order and waits
/// until the client has taken it: the connection reads no more requests meanwhile.
/// </summary>
internal sealed class ReplyBuffer : IDisposable
{
    private const int ChunkBytes = 16 * 1024;
    /// <summary>Values at least this large are sent from their own array instead of copied.</summary>
    private const int ReferenceThreshold = 8 * 1024;
    /// <summary>A send is at most this large, so the write deadline measures progress, not the size of one value.</summary>
    private const int SendPieceBytes = 1024 * 1024;

    private readonly List<ReadOnlyMemory<byte>> _sealed = [];
    private readonly List<byte[]> _rented = [];
    private byte[] _chunk = ArrayPool<byte>.Shared.Rent(ChunkBytes);
    private int _written;
    private long _sealedBytes;

    public long PendingBytes => _sealedBytes + _written;

    public void WriteRaw(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length <= _chunk.Length - _written)
        {
            bytes.CopyTo(_chunk.AsSpan(_written));
            _written += bytes.Length;
            return;
        }

        while (!bytes.IsEmpty)
        {
            if (_written == _chunk.Length) NewChunk(bytes.Length);
            var n = Math.Min(bytes.Length, _chunk.Length - _written);
            bytes[..n].CopyTo(_chunk.AsSpan(_written));
            _written += n;
            bytes = bytes[n..];
        }
    }

    public void WriteOk() => WriteRaw("+OK\r\n"u8);

    public void WriteNull() => WriteRaw("$-1\r\n"u8);

    public void WriteSimple(string text)
    {
        WriteRaw("+"u8);
        WriteText(text);
        WriteRaw("\r\n"u8);
    }

    /// <summary>An error line; <paramref name="message"/> starts with its code (<c>ERR</c>, <c>OOM</c>, ...) and is made one line.</summary>
    public void WriteError(string message)
    {
        WriteRaw("-"u8);
        WriteText(OneLine(message));
        WriteRaw("\r\n"u8);
    }

    public void WriteInteger(long value)
    {
        var span = Reserve(24);
        span[0] = (byte)':';
        Utf8Formatter.TryFormat(value, span[1..], out var n);
        span[1 + n] = (byte)'\r';
        span[2 + n] = (byte)'\n';
        _written += n + 3;
    }

    public void WriteArrayHeader(long count) => WriteHeader((byte)'*', count);

    public void WriteBulk(ReadOnlySpan<byte> value)
    {
        WriteHeader((byte)'$', value.Length);
        WriteRaw(value);
        WriteRaw("\r\n"u8);
    }

    /// <summary>A stored value: large ones are sent from <paramref name="value"/> itself.</summary>
    public void WriteBulk(byte[] value)
    {
        if (value.Length < ReferenceThreshold)
        {
            WriteBulk(value.AsSpan());
            return;
        }

        WriteHeader((byte)'$', value.Length);
        Seal();
        _sealed.Add(value);
        _sealedBytes += value.Length;
        WriteRaw("\r\n"u8);
    }

    public void WriteBulk(string text)
    {
        WriteHeader((byte)'$', Encoding.UTF8.GetByteCount(text));
        WriteText(text);
        WriteRaw("\r\n"u8);
    }

    /// <summary>Sends every pending reply; <paramref name="beforeSend"/> runs before each piece (it arms the write deadline).</summary>
    public async ValueTask FlushAsync(Socket socket, Action beforeSend)
    {
        if (_sealed.Count == 0)
        {
            // The common case: all replies of a batch in one chunk, one send.
            if (_written > 0) await SendAsync(socket, _chunk.AsMemory(0, _written), beforeSend).ConfigureAwait(false);
            _written = 0;
            return;
        }

        Seal();
        foreach (var piece in _sealed) await SendAsync(socket, piece, beforeSend).ConfigureAwait(false);
        _sealed.Clear();
        _sealedBytes = 0;
        foreach (var chunk in _rented) ArrayPool<byte>.Shared.Return(chunk);
        _rented.Clear();
    }

    public void Dispose()
    {
        foreach (var chunk in _rented) ArrayPool<byte>.Shared.Return(chunk);
        _rented.Clear();
        _sealed.Clear();
        ArrayPool<byte>.Shared.Return(_chunk);
        _chunk = [];
    }

    /// <summary>Error text on one line of printable ASCII-safe text, so it cannot break the reply stream.</summary>
    internal static string OneLine(string message)
    {
        if (message.Length > 1000) message = message[..1000] + "...";
        foreach (var c in message)
        {
            if (c is '\r' or '\n') return message.Replace('\r', ' ').Replace('\n', ' ');
        }

        return message;
    }

    private static async ValueTask SendAsync(Socket socket, ReadOnlyMemory<byte> bytes, Action beforeSend)
    {
        while (!bytes.IsEmpty)
        {
            beforeSend();
            var piece = bytes.Length > SendPieceBytes ? bytes[..SendPieceBytes] : bytes;
            var sent = await socket.SendAsync(piece, SocketFlags.None).ConfigureAwait(false);
            if (sent <= 0) throw new SocketException((int)SocketError.ConnectionReset);
            bytes = bytes[sent..];
        }
    }

    private void WriteHeader(byte kind, long length)
    {
        var span = Reserve(24);
        span[0] = kind;
        Utf8Formatter.TryFormat(length, span[1..], out var n);
        span[1 + n] = (byte)'\r';
        span[2 + n] = (byte)'\n';
        _written += n + 3;
    }

    private void WriteText(string text)
    {
        var max = Encoding.UTF8.GetMaxByteCount(text.Length);
        if (max <= 4096)
        {
            var span = Reserve(max);
            _written += Encoding.UTF8.GetBytes(text, span);
        }
        else
        {
            WriteRaw(Encoding.UTF8.GetBytes(text));
        }
    }

    /// <summary>Room for <paramref name="bytes"/> contiguous bytes in the current chunk.</summary>
    private Span<byte> Reserve(int bytes)
    {
        if (_chunk.Length - _written < bytes) NewChunk(bytes);
        return _chunk.AsSpan(_written);
    }

    /// <summary>Moves the current chunk's bytes to the send list and starts a chunk of at least <paramref name="atLeast"/> bytes.</summary>
    private void NewChunk(int atLeast)
    {
        if (_written > 0)
        {
            _sealed.Add(_chunk.AsMemory(0, _written));
            _rented.Add(_chunk);
            _sealedBytes += _written;
        }
        else
        {
            ArrayPool<byte>.Shared.Return(_chunk);
        }

        _chunk = ArrayPool<byte>.Shared.Rent(Math.Max(ChunkBytes, atLeast));
        _written = 0;
    }

    /// <summary>Ends the current chunk, so what follows (a referenced value) is sent after it.</summary>
    private void Seal()
    {
        if (_written > 0) NewChunk(ChunkBytes);
    }
}
