using System.Collections.Immutable;
using System.Runtime.InteropServices;
using System.Text;

namespace P2PShare.Memory;

/// <summary>
/// A peer's shared key-value memory. Thread-safe; quota is checked and charged atomically with
/// the write, so concurrent writers can never push it past the quota, and a refused write evicts
/// nothing. Expired keys vanish on access and are swept periodically to return their bytes.
/// </summary>
/// <remarks>
/// Two faces over the same entries: the string methods (<see cref="Set"/>, <see cref="Get"/>, ...)
/// throw the typed errors the grain and the CLI show; the span methods (<see cref="TrySet"/>,
/// <see cref="TryGet"/>, ...) report outcomes without exceptions or key allocations, for protocol
/// endpoints that serve every request from the silo's own threads.
/// </remarks>
public sealed class MemoryStore : IDisposable
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Entry>.AlternateLookup<ReadOnlySpan<char>> _bySpan;
    private readonly MemoryOptions _options;
    private readonly TimeProvider _time;
    private readonly ITimer _sweeper;
    private long _usedBytes;
    private int _expiringCount;

    // SCAN order: keys sorted by a stable hash, rebuilt only when keys were added since the last build.
    private long _addedKeys;
    private ScanOrder? _scanOrder;

    public MemoryStore(IOptions<MemoryOptions> options, TimeProvider time)
    {
        _options = options.Value;
        _time = time;
        _bySpan = _entries.GetAlternateLookup<ReadOnlySpan<char>>();
        _sweeper = time.CreateTimer(_ => SweepExpired(), null, _options.ExpirySweepInterval, _options.ExpirySweepInterval);
    }

    /// <summary>Raised after any change of the stored bytes (used by the load reporter).</summary>
    public event Action? Changed;

    public long QuotaBytes => _options.QuotaBytes;
    public long MaxValueBytes => _options.MaxValueBytes;
    public int MaxKeyBytes => _options.MaxKeyBytes;

    public (long UsedBytes, long Keys) Usage
    {
        get
        {
            lock (_gate) return (_usedBytes, _entries.Count);
        }
    }

    /// <summary>Keys that have an expiry (some may have expired and not been swept yet).</summary>
    public int ExpiringKeys
    {
        get
        {
            lock (_gate) return _expiringCount;
        }
    }

    // ---- throwing API (grain, CLI) ----

    public void Set(string key, byte[] value, TimeSpan? ttl)
    {
        Names.ValidateKey(key, _options.MaxKeyBytes);
        ArgumentNullException.ThrowIfNull(value);
        var result = TrySet(key, value, ttl);
        if (result.Status != WriteStatus.Stored) throw result.ToException(key);
    }

    /// <summary>Stores every item or none: over quota, nothing already stored is touched. A key given twice keeps its last value.</summary>
    public void SetMany(IReadOnlyList<MemoryItem> items, TimeSpan? ttl)
    {
        ArgumentNullException.ThrowIfNull(items);
        if (items.Count == 0) throw new InvalidArgumentException("no keys given");
        var pairs = new KeyValuePair<string, byte[]>[items.Count];
        for (var i = 0; i < items.Count; i++)
        {
            var item = items[i] ?? throw new InvalidArgumentException("an item is missing");
            Names.ValidateKey(item.Key, _options.MaxKeyBytes);
            pairs[i] = new(item.Key, item.Value ?? throw new InvalidArgumentException($"no value for '{item.Key}'"));
        }

        var result = TrySetMany(pairs, ttl);
        if (result.Status != WriteStatus.Stored) throw result.ToException(result.FailedKey ?? "");
    }

    public byte[] Get(string key)
    {
        Names.ValidateKey(key, _options.MaxKeyBytes);
        return TryGet(key, out var value) ? value : throw new NotFoundException("key", key);
    }

    /// <summary>The values of <paramref name="keys"/> in one consistent look; null where a key is missing or expired.</summary>
    public ImmutableArray<byte[]?> GetMany(IReadOnlyList<string> keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        foreach (var key in keys) Names.ValidateKey(key, _options.MaxKeyBytes);
        var values = new byte[]?[keys.Count];
        var now = Now;
        lock (_gate)
        {
            for (var i = 0; i < keys.Count; i++)
                values[i] = _entries.TryGetValue(keys[i], out var entry) && !entry.IsExpired(now) ? entry.Value : null;
        }

        return ImmutableCollectionsMarshal.AsImmutableArray(values);
    }

    public void Delete(string key)
    {
        Names.ValidateKey(key, _options.MaxKeyBytes);
        if (!Remove(key)) throw new NotFoundException("key", key);
    }

    public MemoryListing List(string? prefix, int limit)
    {
        if (limit <= 0) throw new InvalidArgumentException("limit must be positive");
        prefix ??= "";
        var now = Now;
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

    // ---- outcome API (protocol endpoints) ----

    /// <summary>
    /// Stores <paramref name="value"/> under <paramref name="key"/> when <paramref name="condition"/>
    /// holds. <paramref name="keepTtl"/> keeps the old value's expiry (Redis' KEEPTTL) instead of
    /// <paramref name="ttl"/>. The value array is kept, not copied: the caller must not change it.
    /// </summary>
    public WriteResult TrySet(ReadOnlySpan<char> key, byte[] value, TimeSpan? ttl,
        SetCondition condition = SetCondition.Always, bool keepTtl = false)
    {
        var keyBytes = Encoding.UTF8.GetByteCount(key);
        if (Names.KeyProblem(key, keyBytes, _options.MaxKeyBytes) is not null) return new(WriteStatus.InvalidKey);
        if (value.LongLength > _options.MaxValueBytes) return new(WriteStatus.ValueTooLarge, value.LongLength, 0, _options.MaxValueBytes);
        var now = Now;
        if (ttl is { } t && (t <= TimeSpan.Zero || t > DateTime.MaxValue - now)) return new(WriteStatus.InvalidTtl);

        var cost = keyBytes + value.LongLength;
        lock (_gate)
        {
            var exists = _bySpan.TryGetValue(key, out var storedKey, out var old);
            if (exists && old!.IsExpired(now))
            {
                RemoveLocked(storedKey!, old);
                exists = false;
                old = null;
            }

            if (condition == SetCondition.IfAbsent && exists) return new(WriteStatus.ConditionNotMet);
            if (condition == SetCondition.IfExists && !exists) return new(WriteStatus.ConditionNotMet);

            var freed = old?.Cost ?? 0;
            if (_usedBytes - freed + cost > _options.QuotaBytes)
            {
                // Expired keys do not count against the quota; reclaim them before refusing.
                SweepExpiredLocked(now);
                if (_usedBytes - freed + cost > _options.QuotaBytes)
                    return new(WriteStatus.OverQuota, cost, _usedBytes, _options.QuotaBytes);
            }

            var expires = keepTtl && old is not null ? old.ExpiresUtc : ttl is { } life ? now + life : (DateTime?)null;
            var entry = new Entry(value, cost, now, expires);
            if (old is not null)
            {
                _usedBytes -= old.Cost;
                if (old.ExpiresUtc is not null) _expiringCount--;
                _entries[storedKey!] = entry; // the stored key string is reused: no allocation on overwrite
            }
            else
            {
                _entries.Add(key.ToString(), entry);
                _addedKeys++;
            }

            _usedBytes += cost;
            if (expires is not null) _expiringCount++;
        }

        Changed?.Invoke();
        return new(WriteStatus.Stored);
    }

    /// <summary>
    /// Stores every pair or none (Redis' MSET). The quota is checked for the whole batch; keys given
    /// more than once keep their last value and are charged once. Keys must be valid (see
    /// <see cref="Names.KeyProblem"/>); an invalid one fails the batch with <see cref="WriteStatus.InvalidKey"/>.
    /// </summary>
    public WriteResult TrySetMany(ReadOnlySpan<KeyValuePair<string, byte[]>> items, TimeSpan? ttl)
    {
        var now = Now;
        if (ttl is { } t && (t <= TimeSpan.Zero || t > DateTime.MaxValue - now)) return new(WriteStatus.InvalidTtl);
        var superseded = Superseded(items);
        long added = 0;
        for (var i = 0; i < items.Length; i++)
        {
            var (key, value) = items[i];
            if (Names.KeyProblem(key, Encoding.UTF8.GetByteCount(key), _options.MaxKeyBytes) is not null)
                return new(WriteStatus.InvalidKey) { FailedKey = key };
            if (value.LongLength > _options.MaxValueBytes)
                return new(WriteStatus.ValueTooLarge, value.LongLength, 0, _options.MaxValueBytes) { FailedKey = key };
            if (!IsSuperseded(items, i, superseded)) added += Encoding.UTF8.GetByteCount(key) + value.LongLength;
        }

        var expires = ttl is { } life ? now + life : (DateTime?)null;
        lock (_gate)
        {
            if (_usedBytes + added - FreedLocked(items, superseded) > _options.QuotaBytes)
            {
                // Expired keys do not count against the quota; reclaim them before refusing.
                SweepExpiredLocked(now);
                if (_usedBytes + added - FreedLocked(items, superseded) > _options.QuotaBytes)
                    return new(WriteStatus.OverQuota, added, _usedBytes, _options.QuotaBytes);
            }

            for (var i = 0; i < items.Length; i++)
            {
                if (IsSuperseded(items, i, superseded)) continue;
                var (key, value) = items[i];
                if (_entries.Remove(key, out var old))
                {
                    _usedBytes -= old.Cost;
                    if (old.ExpiresUtc is not null) _expiringCount--;
                }
                else
                {
                    _addedKeys++;
                }

                var cost = Encoding.UTF8.GetByteCount(key) + value.LongLength;
                _entries[key] = new Entry(value, cost, now, expires);
                _usedBytes += cost;
                if (expires is not null) _expiringCount++;
            }
        }

        Changed?.Invoke();
        return new(WriteStatus.Stored);
    }

    /// <summary>The live value under <paramref name="key"/>; false when there is none (an invalid key has none).</summary>
    public bool TryGet(ReadOnlySpan<char> key, out byte[] value)
    {
        var now = Now;
        lock (_gate)
        {
            if (!_bySpan.TryGetValue(key, out var storedKey, out var entry))
            {
                value = [];
                return false;
            }

            if (!entry.IsExpired(now))
            {
                value = entry.Value;
                return true;
            }

            RemoveLocked(storedKey, entry);
        }

        Changed?.Invoke();
        value = [];
        return false;
    }

    /// <summary>True when <paramref name="key"/> has a live value.</summary>
    public bool Contains(ReadOnlySpan<char> key) => TryGet(key, out _);

    /// <summary>Removes <paramref name="key"/>; true when it had a live value.</summary>
    public bool Remove(ReadOnlySpan<char> key)
    {
        bool wasLive;
        lock (_gate)
        {
            if (!_bySpan.TryGetValue(key, out var storedKey, out var entry)) return false;
            wasLive = !entry.IsExpired(Now);
            RemoveLocked(storedKey, entry);
        }

        Changed?.Invoke();
        return wasLive;
    }

    /// <summary>
    /// Gives a live key a new expiry (<paramref name="ttl"/> from now), or removes its expiry when
    /// <paramref name="ttl"/> is null. Returns false when the key has no live value, or, with a null
    /// <paramref name="ttl"/>, when it had no expiry to remove (Redis' PERSIST). A non-positive
    /// <paramref name="ttl"/> deletes the key, as Redis' EXPIRE does.
    /// </summary>
    public bool TrySetExpiry(ReadOnlySpan<char> key, TimeSpan? ttl)
    {
        var now = Now;
        if (ttl is { } t && t > DateTime.MaxValue - now) ttl = DateTime.MaxValue - now;
        lock (_gate)
        {
            if (!_bySpan.TryGetValue(key, out var storedKey, out var entry)) return false;
            if (entry.IsExpired(now))
            {
                RemoveLocked(storedKey, entry);
                return false;
            }

            if (ttl is null)
            {
                if (entry.ExpiresUtc is null) return false;
                _entries[storedKey] = entry with { ExpiresUtc = null };
                _expiringCount--;
                return true;
            }

            if (ttl <= TimeSpan.Zero)
            {
                RemoveLocked(storedKey, entry);
            }
            else
            {
                if (entry.ExpiresUtc is null) _expiringCount++;
                _entries[storedKey] = entry with { ExpiresUtc = now + ttl.Value };
            }
        }

        Changed?.Invoke();
        return true;
    }

    /// <summary>False when <paramref name="key"/> has no live value; else its remaining life, null when it never expires.</summary>
    public bool TryGetTimeToLive(ReadOnlySpan<char> key, out TimeSpan? ttl)
    {
        var now = Now;
        ttl = null;
        lock (_gate)
        {
            if (!_bySpan.TryGetValue(key, out _, out var entry) || entry.IsExpired(now)) return false;
            if (entry.ExpiresUtc is { } at) ttl = at - now;
            return true;
        }
    }

    /// <summary>Every live key that <paramref name="match"/> accepts (all when null), in no particular order.</summary>
    public List<string> Keys(Func<string, bool>? match)
    {
        var now = Now;
        var keys = new List<string>();
        lock (_gate)
        {
            foreach (var (key, entry) in _entries)
                if (!entry.IsExpired(now) && (match is null || match(key))) keys.Add(key);
        }

        return keys;
    }

    /// <summary>
    /// One step of a cursor walk over the keys (Redis' SCAN): adds to <paramref name="into"/> up to
    /// about <paramref name="count"/> keys from <paramref name="cursor"/> on (0 starts), and returns the
    /// next cursor, 0 when the walk is done. Keys are walked in order of a stable hash, so a key that
    /// lives through a whole walk is returned at least once however others come and go.
    /// </summary>
    public ulong Scan(ulong cursor, int count, Func<string, bool>? match, List<string> into)
    {
        if (count <= 0) count = 1;
        var now = Now;
        lock (_gate)
        {
            var order = _scanOrder;
            if (order is null || order.AddedKeys != _addedKeys)
            {
                var all = new (ulong Hash, string Key)[_entries.Count];
                var i = 0;
                foreach (var key in _entries.Keys) all[i++] = (ScanHash(key), key);
                Array.Sort(all, static (a, b) => a.Hash != b.Hash ? a.Hash.CompareTo(b.Hash) : string.CompareOrdinal(a.Key, b.Key));
                _scanOrder = order = new ScanOrder(_addedKeys, all);
            }

            var keys = order.Keys;
            var lo = 0;
            var hi = keys.Length;
            while (lo < hi)
            {
                var mid = (lo + hi) >>> 1;
                if (keys[mid].Hash < cursor) lo = mid + 1;
                else hi = mid;
            }

            var visited = 0;
            var at = lo;
            // Keys that share a hash stay on one page, so the cursor (a hash) never splits them.
            while (at < keys.Length && (visited < count || keys[at].Hash == keys[at - 1].Hash))
            {
                var (_, key) = keys[at++];
                visited++;
                if (_entries.TryGetValue(key, out var entry) && !entry.IsExpired(now) && (match is null || match(key))) into.Add(key);
            }

            return at < keys.Length ? keys[at].Hash : 0;
        }
    }

    /// <summary>Removes every expired key now. Returns how many were removed.</summary>
    public int SweepExpired()
    {
        int removed;
        lock (_gate)
        {
            if (_expiringCount == 0) return 0;
            removed = SweepExpiredLocked(Now);
        }

        if (removed > 0) Changed?.Invoke();
        return removed;
    }

    public void Dispose() => _sweeper.Dispose();

    private DateTime Now => _time.GetUtcNow().UtcDateTime;

    private long FreedLocked(ReadOnlySpan<KeyValuePair<string, byte[]>> items, bool[]? superseded)
    {
        var freed = 0L;
        for (var i = 0; i < items.Length; i++)
            if (!IsSuperseded(items, i, superseded) && _entries.TryGetValue(items[i].Key, out var old)) freed += old.Cost;
        return freed;
    }

    /// <summary>For large batches, which items a later item with the same key replaces; null for small ones (compared directly).</summary>
    private static bool[]? Superseded(ReadOnlySpan<KeyValuePair<string, byte[]>> items)
    {
        if (items.Length <= 16) return null;
        var flags = new bool[items.Length];
        var later = new HashSet<string>(StringComparer.Ordinal);
        for (var i = items.Length - 1; i >= 0; i--) flags[i] = !later.Add(items[i].Key);
        return flags;
    }

    private static bool IsSuperseded(ReadOnlySpan<KeyValuePair<string, byte[]>> items, int i, bool[]? superseded)
    {
        if (superseded is not null) return superseded[i];
        for (var j = i + 1; j < items.Length; j++)
            if (string.Equals(items[j].Key, items[i].Key, StringComparison.Ordinal)) return true;
        return false;
    }

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

    /// <summary>FNV-1a over the key's characters: stable for the life of the process, unlike string hashes.</summary>
    private static ulong ScanHash(string key)
    {
        var hash = 14695981039346656037UL;
        foreach (var c in key)
        {
            hash = (hash ^ c) * 1099511628211UL;
        }

        // 0 means "start" and "done" to a cursor, so no key may hash to it.
        return hash == 0 ? 1 : hash;
    }

    private sealed record Entry(byte[] Value, long Cost, DateTime UpdatedUtc, DateTime? ExpiresUtc)
    {
        public bool IsExpired(DateTime now) => ExpiresUtc is { } at && at <= now;
    }

    private sealed record ScanOrder(long AddedKeys, (ulong Hash, string Key)[] Keys);
}
