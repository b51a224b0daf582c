using System.Buffers;
using System.Buffers.Text;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using Orleans.Serialization.Buffers;
using P2PShare.Files;
using P2PShare.Peers;

namespace P2PShare.Legacy;

/// <summary>
/// The base64 <c>data</c> of a PUT_FILE, sent to the peer's file store as pooled chunks decoded
/// straight from the request's JSON, <see cref="Window"/> of them in flight. Besides the request
/// itself it holds at most those chunks, which its caller takes from the gateway's
/// <see cref="ByteBudget"/> (<see cref="Footprint"/>). The value is read where the request's
/// document keeps it, so the document must stay alive while the upload runs.
/// </summary>
internal sealed class Base64FileUpload
{
    /// <summary>Chunks on their way to the file store at once: the peer writes and hashes one while the next is decoded.</summary>
    public const int Window = 4;

    private readonly JsonElement _data;

    // Set only for a value with escapes or spaces in its JSON text, which cannot be cut into
    // pieces at fixed offsets: it is decoded whole, as before, and counted in the footprint.
    private readonly byte[]? _decoded;

    private Base64FileUpload(JsonElement data, byte[]? decoded, long size)
    {
        _data = data;
        _decoded = decoded;
        Size = size;
    }

    /// <summary>The file's size in bytes.</summary>
    public long Size { get; }

    /// <summary>
    /// Reads the value's size from its length and padding. Characters that are not base64 are
    /// found while decoding (the upload is then aborted); a length that cannot be base64 is found here.
    /// </summary>
    /// <returns>null when <paramref name="data"/> cannot be base64.</returns>
    public static Base64FileUpload? Of(JsonElement data)
    {
        var text = Text(data);
        if (text.IndexOfAny((byte)'\\', (byte)' ') >= 0)
            return data.TryGetBytesFromBase64(out var bytes) ? new Base64FileUpload(data, bytes, bytes.LongLength) : null;
        if (text.Length % 4 != 0) return null;
        var padding = text.Length == 0 ? 0 : text[^1] != '=' ? 0 : text[^2] == '=' ? 2 : 1;
        return new Base64FileUpload(data, null, text.Length / 4 * 3L - padding);
    }

    /// <summary>Bytes the upload holds at most besides the request, for chunks of at most <paramref name="maxChunk"/>.</summary>
    public long Footprint(int maxChunk) =>
        (long)Math.Min(Window, Chunks(maxChunk)) * Math.Min(Size, PieceSize(maxChunk)) + (_decoded?.LongLength ?? 0);

    /// <summary>Sends every chunk and returns the file's SHA-256 (lowercase hex).</summary>
    /// <exception cref="LegacyProtocolException">The value is not base64; chunks before the bad one may have been written.</exception>
    public async Task<string> SendAsync(IPeerGrain peer, UploadTicket ticket)
    {
        var piece = PieceSize(ticket.MaxChunkBytes);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var inFlight = new Queue<Task>(Window);
        try
        {
            for (long offset = 0; offset < Size;)
            {
                if (inFlight.Count == Window) await inFlight.Dequeue().ConfigureAwait(false);
                var count = (int)Math.Min(piece, Size - offset);
                var chunk = new PooledBuffer();
                try
                {
                    Decode(offset, count, ref chunk, hash);
                }
                catch
                {
                    chunk.Dispose();
                    throw;
                }

                // The call owns the chunk from here: the file store disposes it once written.
                inFlight.Enqueue(peer.WritePooledChunkAsync(ticket.UploadId, offset, chunk));
                offset += count;
            }

            while (inFlight.Count > 0) await inFlight.Dequeue().ConfigureAwait(false);
        }
        catch
        {
            // Let sent chunks land so the abort that follows is not overtaken by a late write.
            try
            {
                await Task.WhenAll(inFlight).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // The upload is failing already; the first error is the one to report.
            }

            throw;
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private void Decode(long offset, int count, ref PooledBuffer chunk, IncrementalHash hash)
    {
        var into = chunk.GetSpan(count)[..count];
        if (_decoded is not null)
        {
            _decoded.AsSpan((int)offset, count).CopyTo(into);
        }
        else
        {
            // Offsets are multiples of 3 bytes, so each piece is whole groups of 4 characters; only
            // the last may end in padding.
            var text = Text(_data);
            var start = offset / 3 * 4;
            var piece = offset + count == Size ? text[(int)start..] : text.Slice((int)start, count / 3 * 4);
            var status = Base64.DecodeFromUtf8(piece, into, out var consumed, out var written);
            if (status != OperationStatus.Done || written != count || consumed != piece.Length)
                throw new LegacyProtocolException("'data' of PUT_FILE is not valid base64");
        }

        hash.AppendData(into);
        chunk.Advance(count);
    }

    /// <summary>The value's JSON text between its quotes, where the request's buffer holds it.</summary>
    private static ReadOnlySpan<byte> Text(JsonElement data) => JsonMarshal.GetRawUtf8Value(data)[1..^1];

    private long Chunks(int maxChunk) => Math.Max(1, (Size + PieceSize(maxChunk) - 1) / PieceSize(maxChunk));

    private static int PieceSize(int maxChunk) => Math.Max(3, maxChunk - (maxChunk % 3));
}
