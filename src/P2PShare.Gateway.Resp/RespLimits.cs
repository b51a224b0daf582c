using P2PShare.Memory;

namespace P2PShare.Resp;

/// <summary>The endpoint's limits with defaults resolved against the memory store's own.</summary>
internal sealed record RespLimits(
    int MaxConnections,
    int MaxArguments,
    long MaxBulkBytes,
    long MaxRequestBytes,
    int MaxInlineBytes,
    long MaxBufferedBytes,
    int OutputBufferBytes,
    TimeSpan IdleTimeout,
    TimeSpan RequestTimeout,
    TimeSpan WriteTimeout)
{
    public static RespLimits From(RespOptions o, MemoryStore store)
    {
        var bulk = o.MaxBulkBytes ?? Math.Max(store.MaxValueBytes, store.MaxKeyBytes);
        // A request must hold at least one largest argument with its framing; it also must fit one array.
        var request = Math.Min(Math.Max(o.MaxRequestBytes, bulk + 64 * 1024), Array.MaxLength);
        return new RespLimits(o.MaxConnections, o.MaxArguments, bulk, request, o.MaxInlineBytes, o.MaxBufferedBytes,
            o.OutputBufferBytes, o.IdleTimeout, o.RequestTimeout, o.WriteTimeout);
    }
}

/// <summary>
/// Bytes of large request buffers held over all connections (see <see cref="RespOptions.MaxBufferedBytes"/>).
/// Lock-free: a reservation either fits now or is refused, so no connection waits on another.
/// </summary>
internal sealed class RequestBudget(long capacity)
{
    private long _used;

    public long Used => Volatile.Read(ref _used);

    public bool TryReserve(long bytes)
    {
        if (Interlocked.Add(ref _used, bytes) <= capacity) return true;
        Interlocked.Add(ref _used, -bytes);
        return false;
    }

    public void Release(long bytes) => Interlocked.Add(ref _used, -bytes);
}
