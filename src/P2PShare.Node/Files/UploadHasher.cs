using System.Buffers;
using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace P2PShare.Files;

/// <summary>
/// The SHA-256 of an upload whose chunks are written concurrently and land in any order. The hash
/// must see the bytes in file order, so it advances over the written prefix only: the write that
/// completes the prefix hashes its own bytes from memory, then the chunks that had landed after it
/// from the file (they were written moments ago, so the page cache serves them). One writer at a
/// time holds the hashing role; the others return at once, so hashing overlaps later writes.
/// </summary>
/// <remarks>
/// Bytes written twice (a retried or overlapping chunk) or more gaps than <see cref="MaxPendingRanges"/>
/// make the running hash unusable; the upload then hashes the whole temp file at completion, as
/// before, so integrity never depends on the client sending each byte once and in order.
/// </remarks>
internal sealed class UploadHasher : IDisposable
{
    /// <summary>Written ranges waiting for the prefix to reach them; beyond this the hash falls back to a full re-read.</summary>
    internal const int MaxPendingRanges = 1024;
    private const int ReadBackBytes = 64 * 1024;

    private readonly Lock _gate = new();
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    // Start → (end, written). Ranges never overlap each other nor the hashed prefix while tracked.
    private readonly SortedList<long, PendingRange> _pending = [];
    private long _hashedUpTo;
    private bool _hashing;
    private bool _untracked;

    /// <summary>Bytes hashed in file order so far (the prefix the fsync-behind may start writing back).</summary>
    public long HashedUpTo
    {
        get { lock (_gate) return _hashedUpTo; }
    }

    /// <summary>Called before a chunk is written, so a concurrent rewrite of the same bytes is noticed.</summary>
    public void Starting(long offset, int length)
    {
        if (length == 0) return;
        lock (_gate)
        {
            if (_untracked) return;
            var end = offset + length;
            if (offset < _hashedUpTo || Overlaps(offset, end) || _pending.Count >= MaxPendingRanges)
            {
                Untrack();
                return;
            }

            _pending.Add(offset, new PendingRange(end));
        }
    }

    /// <summary>
    /// Called after the chunk is on file. True: the caller now holds the hashing role and must
    /// <see cref="Append"/> its bytes, then call <see cref="CatchUpAsync"/>.
    /// </summary>
    public bool Landed(long offset, int length)
    {
        if (length == 0) return false;
        lock (_gate)
        {
            if (_untracked || !_pending.TryGetValue(offset, out var range)) return false;
            range.Written = true;
            if (_hashing || offset != _hashedUpTo) return false;
            _pending.Remove(offset);
            _hashing = true;
            return true;
        }
    }

    /// <summary>Hashes bytes at the prefix; only the holder of the hashing role calls this.</summary>
    public void Append(ReadOnlySpan<byte> data) => _hash.AppendData(data);

    /// <summary>
    /// Moves the prefix past the caller's chunk, then hashes the chunks already written after it by
    /// reading them back, and gives up the hashing role when the next chunk has not landed yet.
    /// </summary>
    public async Task CatchUpAsync(int appended, SafeFileHandle handle)
    {
        byte[]? buffer = null;
        try
        {
            long next = 0;
            long end = 0;
            lock (_gate)
            {
                _hashedUpTo += appended;
                if (!TakeNextLocked(out next, out end)) return;
            }

            buffer = ArrayPool<byte>.Shared.Rent(ReadBackBytes);
            while (true)
            {
                for (var at = next; at < end;)
                {
                    var read = await RandomAccess.ReadAsync(handle, buffer.AsMemory(0, (int)Math.Min(buffer.Length, end - at)), at).ConfigureAwait(false);
                    if (read == 0) throw new IOException("the upload's temp file is shorter than what was written to it");
                    _hash.AppendData(buffer, 0, read);
                    at += read;
                }

                lock (_gate)
                {
                    _hashedUpTo = end;
                    if (!TakeNextLocked(out next, out end)) return;
                }
            }
        }
        catch
        {
            lock (_gate)
            {
                Untrack();
                _hashing = false;
            }

            throw;
        }
        finally
        {
            if (buffer is not null) ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The hash of exactly <paramref name="size"/> bytes, or null when it must be computed from the file.</summary>
    public string? TryFinish(long size)
    {
        lock (_gate)
        {
            if (_untracked || _hashing || _hashedUpTo != size || _pending.Count > 0) return null;
            return Convert.ToHexStringLower(_hash.GetHashAndReset());
        }
    }

    /// <summary>Only after the upload's writes have drained: no hasher is running then.</summary>
    public void Dispose()
    {
        lock (_gate) Untrack();
        _hash.Dispose();
    }

    private bool TakeNextLocked(out long start, out long end)
    {
        start = end = 0;
        if (!_untracked && _pending.Count > 0 && _pending.Keys[0] == _hashedUpTo && _pending.Values[0].Written)
        {
            start = _hashedUpTo;
            end = _pending.Values[0].End;
            _pending.RemoveAt(0);
            return true;
        }

        _hashing = false;
        return false;
    }

    private bool Overlaps(long offset, long end)
    {
        // The last range starting before `end` is the only candidate: ranges are disjoint and sorted.
        var keys = _pending.Keys;
        int lo = 0, hi = keys.Count - 1, found = -1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            if (keys[mid] < end)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return found >= 0 && _pending.Values[found].End > offset;
    }

    private void Untrack()
    {
        _untracked = true;
        _pending.Clear();
    }

    private sealed class PendingRange(long end)
    {
        public long End { get; } = end;
        public bool Written { get; set; }
    }
}
