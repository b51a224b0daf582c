using System.Collections.Immutable;
using System.Text;

namespace P2PShare.Memory;

/// <summary>
/// A peer's shared key-value memory. Thread-safe; quota is checked and charged atomically with
/// the write, so concurrent writers can never push it past the quota, and a refused write evicts
/// nothing. Expired keys vanish on access and are swept periodically to return their bytes.
/// </summary>
public sealed class MemoryStore : IDisposable
{
    private readonly object _gate = new();
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly MemoryOptions _options;
    private readonly TimeProvider _time;
    private readonly ITimer _sweeper;
    private long _usedBytes;
    private int _expiringCount;

    public MemoryStore(IOptions<MemoryOptions> options, TimeProvider time)
    {
        _options = options.Value;
        _time = time;
        _sweeper = time.CreateTimer(_ => SweepExpired(), null, _options.ExpirySweepInterval, _options.ExpirySweepInterval);
    }

    /// <summary>Raised after any change of the stored bytes (used by the load reporter).</summary>
    public event Action? Changed;

    public long QuotaBytes => _options.QuotaBytes;
    public long MaxValueBytes => _options.MaxValueBytes;

    public (long UsedBytes, long Keys) Usage
    {
        get
        {
            lock (_gate) return (_usedBytes, _entries.Count);
        }
    }

    public void Set(string key, byte[] value, TimeSpan? ttl)
    {
        Names.ValidateKey(key, _options.MaxKeyBytes);
        ArgumentNullException.ThrowIfNull(value);
        if (value.LongLength > _options.MaxValueBytes)
        {
            throw new InvalidArgumentException(
                $"value of {Bytes.Format(value.LongLength)} is larger than the limit of {Bytes.Format(_options.MaxValueBytes)}");
        }

        if (ttl is { } t && t <= TimeSpan.Zero)
            throw new InvalidArgumentException("ttl must be positive");

        var now = _time.GetUtcNow().UtcDateTime;
        var cost = Cost(key, value.LongLength);
        lock (_gate)
        {
            var freed = _entries.TryGetValue(key, out var old) ? old.Cost : 0;
            if (_usedBytes - freed + cost > _options.QuotaBytes)
            {
                // Expired keys do not count against the quota; reclaim them before refusing.
                SweepExpiredLocked(now);
                freed = _entries.TryGetValue(key, out old) ? old.Cost : 0;
                if (_usedBytes - freed + cost > _options.QuotaBytes)
                    throw new QuotaExceededException("memory", cost, _usedBytes, _options.QuotaBytes);
            }

            if (old is not null) RemoveLocked(key, old);
            var entry = new Entry(value, cost, now, ttl is { } life ? now + life : null);
            _entries[key] = entry;
            _usedBytes += cost;
            if (entry.ExpiresUtc is not null) _expiringCount++;
        }

        Changed?.Invoke();
    }

    public byte[] Get(string key)
    {
        Names.ValidateKey(key, _options.MaxKeyBytes);
        var now = _time.GetUtcNow().UtcDateTime;
        bool expired;
        lock (_gate)
        {
            if (!_entries.TryGetValue(key, out var entry)) throw new NotFoundException("key", key);
            expired = entry.IsExpired(now);
            if (!expired) return entry.Value;
            RemoveLocked(key, entry);
        }

        Changed?.Invoke();
        throw new NotFoundException("key", key);
    }

    public void Delete(string key)
    {
        Names.ValidateKey(key, _options.MaxKeyBytes);
        var now = _time.GetUtcNow().UtcDateTime;
        bool wasLive;
        lock (_gate)
        {
            if (!_entries.TryGetValue(key, out var entry)) throw new NotFoundException("key", key);
            wasLive = !entry.IsExpired(now);
            RemoveLocked(key, entry);
        }

        Changed?.Invoke();
        if (!wasLive) throw new NotFoundException("key", key);
    }

    public MemoryListing List(string? prefix, int limit)
    {
        if (limit <= 0) throw new InvalidArgumentException("limit must be positive");
        prefix ??= "";
        var now = _time.GetUtcNow().UtcDateTime;
        List<MemoryEntryInfo> matches;
        lock (_gate)
        {
            matches = _entries
                .Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal) && !kv.Value.IsExpired(now))
                .Select(kv => new MemoryEntryInfo(kv.Key, kv.Value.Value.LongLength, kv.Value.UpdatedUtc, kv.Value.ExpiresUtc))
                .ToList();
        }

        matches.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        return new MemoryListing([.. matches.Take(limit)], matches.Count > limit);
    }

    /// <summary>Removes every expired key now. Returns how many were removed.</summary>
    public int SweepExpired()
    {
        int removed;
        lock (_gate)
        {
            if (_expiringCount == 0) return 0;
            removed = SweepExpiredLocked(_time.GetUtcNow().UtcDateTime);
        }

        if (removed > 0) Changed?.Invoke();
        return removed;
    }

    public void Dispose() => _sweeper.Dispose();

    private int SweepExpiredLocked(DateTime now)
    {
        if (_expiringCount == 0) return 0;
        var expired = _entries.Where(kv => kv.Value.IsExpired(now)).ToList();
        foreach (var (key, entry) in expired) RemoveLocked(key, entry);
        return expired.Count;
    }

    private void RemoveLocked(string key, Entry entry)
    {
        _entries.Remove(key);
        _usedBytes -= entry.Cost;
        if (entry.ExpiresUtc is not null) _expiringCount--;
    }

    private static long Cost(string key, long valueBytes) => Encoding.UTF8.GetByteCount(key) + valueBytes;

    private sealed record Entry(byte[] Value, long Cost, DateTime UpdatedUtc, DateTime? ExpiresUtc)
    {
        public bool IsExpired(DateTime now) => ExpiresUtc is { } at && at <= now;
    }
}
