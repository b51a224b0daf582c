using System.Buffers;
using System.Buffers.Text;
using Orleans.Serialization.Buffers;
using P2PShare.Files;
using P2PShare.Peers;

namespace P2PShare.Legacy;

/// <summary>
/// A stored file as the base64 <c>data</c> of a GET_FILE reply, read from the peer's file store one
/// piece at a time (the next piece is read while the current one is sent) and encoded into one
/// reused buffer. It holds at most two pieces and their base64, which its caller has taken from
/// the gateway's <see cref="ByteBudget"/>; disposing it closes the download and gives that back.
/// </summary>
internal sealed class Base64FileField : ILegacyStreamedField
{
    private readonly IPeerGrain _peer;
    private readonly DownloadTicket _ticket;
    private readonly ByteBudget _budget;
    private readonly long _reserved;
    private readonly int _piece;
    private int _disposed;

    private Base64FileField(IPeerGrain peer, DownloadTicket ticket, ByteBudget budget, long reserved, int piece)
    {
        _peer = peer;
        _ticket = ticket;
        _budget = budget;
        _reserved = reserved;
        _piece = piece;
    }

    public string Name => "data";

    public long Length => Base64Length(_ticket.File.Size);

    /// <summary>Bytes a field for a file of <paramref name="size"/> holds at most, with pieces of at most <paramref name="maxChunk"/>.</summary>
    public static long Footprint(long size, int maxChunk)
    {
        var piece = PieceSize(maxChunk);
        var held = Math.Min(size, piece);
        return 2 * held + Base64Length(held);
    }

    /// <summary>Wraps an open download; <paramref name="reserved"/> bytes of <paramref name="budget"/> are released on dispose.</summary>
    public static Base64FileField Create(IPeerGrain peer, DownloadTicket ticket, ByteBudget budget, long reserved) =>
        new(peer, ticket, budget, reserved, PieceSize(ticket.MaxChunkBytes));

    public async Task WriteToAsync(Stream stream, CancellationToken cancellationToken)
    {
        var size = _ticket.File.Size;
        var encoded = ArrayPool<byte>.Shared.Rent((int)Base64Length(Math.Min(size, _piece)));
        // Blocks of pooled memory need not end on 3-byte boundaries; this carries the remainder.
        var pending = new byte[3];
        Task<PooledBuffer>? next = size > 0 ? ReadAsync(0) : null;
        long offset = 0;
        try
        {
            while (next is not null)
            {
                var data = await next.ConfigureAwait(false);
                next = null;
                try
                {
                    var length = data.Length;
                    // Anything else would leave the frame shorter than its prefix said: the connection must close.
                    if (length != Math.Min(_piece, size - offset))
                        throw new IOException($"'{_ticket.File.Name}' gave {length} bytes at {offset} of {size}");
                    offset += length;
                    if (offset < size) next = ReadAsync(offset);

                    // Pieces are multiples of 3 bytes, so each encodes without padding except the last.
                    var written = 0;
                    var carry = 0;
                    foreach (var block in data.MemorySegments)
                    {
                        var input = block.Span;
                        if (carry > 0)
                        {
                            var take = Math.Min(3 - carry, input.Length);
                            input[..take].CopyTo(pending.AsSpan(carry));
                            carry += take;
                            input = input[take..];
                            if (carry < 3) continue;
                            Base64.EncodeToUtf8(pending.AsSpan(0, 3), encoded.AsSpan(written), out _, out var w);
                            written += w;
                            carry = 0;
                        }

                        var whole = input.Length - (input.Length % 3);
                        Base64.EncodeToUtf8(input[..whole], encoded.AsSpan(written), out _, out var n);
                        written += n;
                        input[whole..].CopyTo(pending.AsSpan());
                        carry = input.Length - whole;
                    }

                    if (carry > 0)
                    {
                        Base64.EncodeToUtf8(pending.AsSpan(0, carry), encoded.AsSpan(written), out _, out var w);
                        written += w;
                    }

                    await stream.WriteAsync(encoded.AsMemory(0, written), cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    data.Dispose();
                }
            }
        }
        finally
        {
            if (next is not null)
            {
                try
                {
                    (await next.ConfigureAwait(false)).Dispose();
                }
                catch (Exception)
                {
                    // The reply is already failing; this read's outcome no longer matters.
                }
            }

            ArrayPool<byte>.Shared.Return(encoded);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        try
        {
            await _peer.CloseDownloadAsync(_ticket.DownloadId).ConfigureAwait(false);
        }
        catch (P2PShareException)
        {
            // Already gone; idle downloads are closed by the peer anyway.
        }
        finally
        {
            _budget.Release(_reserved);
        }
    }

    private Task<PooledBuffer> ReadAsync(long offset) =>
        _peer.ReadPooledChunkAsync(_ticket.DownloadId, offset, (int)Math.Min(_piece, _ticket.File.Size - offset));

    private static int PieceSize(int maxChunk) => Math.Max(3, maxChunk - (maxChunk % 3));

    private static long Base64Length(long bytes) => (bytes + 2) / 3 * 4;
}
