using System.Text;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using P2PShare.Memory;

namespace P2PShare.Tests.Memory;

public sealed class MemoryStoreTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly MemoryStore _store;

    public MemoryStoreTests() => _store = Create(quota: 1000);

    public void Dispose() => _store.Dispose();

    private MemoryStore Create(long quota, int maxKey = 64, long maxValue = 500, TimeSpan? sweep = null) =>
        new(Options.Create(new MemoryOptions
        {
            QuotaBytes = quota,
            MaxKeyBytes = maxKey,
            MaxValueBytes = maxValue,
            ExpirySweepInterval = sweep ?? TimeSpan.FromSeconds(1),
        }), _time);

    [Fact]
    public void Set_then_get_returns_the_same_bytes()
    {
        _store.Set("a", [1, 2, 3], null);
        Assert.Equal([1, 2, 3], _store.Get("a"));
        Assert.Equal((1 + 3L, 1L), _store.Usage);
    }

    [Fact]
    public void Overwrite_charges_only_the_new_size()
    {
        _store.Set("k", new byte[100], null);
        _store.Set("k", new byte[10], null);
        Assert.Equal(11, _store.Usage.UsedBytes);
    }

    [Fact]
    public void Get_of_missing_key_is_NotFound()
    {
        var ex = Assert.Throws<NotFoundException>(() => _store.Get("nope"));
        Assert.Equal(ErrorKind.NotFound, ex.Kind);
        Assert.Contains("nope", ex.Message);
    }

    [Fact]
    public void Write_past_quota_fails_and_evicts_nothing()
    {
        _store.Set("a", new byte[400], null);
        _store.Set("b", new byte[400], null);
        var ex = Assert.Throws<QuotaExceededException>(() => _store.Set("c", new byte[400], null));
        Assert.Equal("memory", ex.Resource);
        Assert.Equal(400, _store.Get("a").Length);
        Assert.Equal(400, _store.Get("b").Length);
        Assert.Throws<NotFoundException>(() => _store.Get("c"));
        Assert.Equal(802, _store.Usage.UsedBytes);
    }

    [Fact]
    public void Replacing_a_value_within_quota_is_allowed_even_when_nearly_full()
    {
        _store.Set("a", new byte[499], null);
        _store.Set("b", new byte[499], null);
        _store.Set("a", new byte[499], null); // same size: fits because the old value is freed
        Assert.Equal(1000, _store.Usage.UsedBytes);
    }

    [Fact]
    public void Expired_key_is_gone_and_its_bytes_return_to_the_quota()
    {
        _store.Set("t", new byte[400], TimeSpan.FromSeconds(5));
        _store.Set("u", new byte[400], null);
        _time.Advance(TimeSpan.FromSeconds(4));
        Assert.Equal(400, _store.Get("t").Length);
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.Throws<NotFoundException>(() => _store.Get("t"));
        Assert.Equal(401, _store.Usage.UsedBytes);
    }

    [Fact]
    public void Expired_keys_do_not_block_a_write()
    {
        using var store = Create(quota: 1000, sweep: TimeSpan.FromHours(1)); // no background sweep
        store.Set("t", new byte[400], TimeSpan.FromSeconds(1));
        store.Set("u", new byte[400], null);
        _time.Advance(TimeSpan.FromSeconds(2));
        store.Set("n", new byte[400], null); // would exceed the quota if the expired key still counted
        Assert.Equal(802, store.Usage.UsedBytes);
        Assert.Throws<NotFoundException>(() => store.Get("t"));
    }

    [Fact]
    public void Sweep_removes_expired_keys_without_access()
    {
        _store.Set("t1", new byte[10], TimeSpan.FromSeconds(1));
        _store.Set("t2", new byte[10], TimeSpan.FromSeconds(1));
        _store.Set("keep", new byte[10], null);
        _time.Advance(TimeSpan.FromSeconds(1)); // fires the sweep timer too
        Assert.Equal(1, _store.Usage.Keys);
        Assert.Equal(0, _store.SweepExpired());
    }

    [Theory]
    [InlineData("")]
    [InlineData("bad\nkey")]
    [InlineData("tab\tkey")]
    public void Bad_keys_are_InvalidName(string key)
    {
        var ex = Assert.Throws<InvalidNameException>(() => _store.Set(key, [1], null));
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Fact]
    public void Key_longer_than_the_limit_is_InvalidName()
    {
        Assert.Throws<InvalidNameException>(() => _store.Set(new string('k', 65), [1], null));
        _store.Set(new string('k', 64), [1], null);
    }

    [Fact]
    public void Value_larger_than_the_limit_is_InvalidArgument()
    {
        var ex = Assert.Throws<InvalidArgumentException>(() => _store.Set("big", new byte[501], null));
        Assert.Contains("larger than the limit", ex.Message);
    }

    [Fact]
    public void Non_positive_ttl_is_rejected()
    {
        Assert.Throws<InvalidArgumentException>(() => _store.Set("k", [1], TimeSpan.Zero));
    }

    [Fact]
    public void Delete_removes_and_a_second_delete_is_NotFound()
    {
        _store.Set("d", [1], null);
        _store.Delete("d");
        Assert.Throws<NotFoundException>(() => _store.Get("d"));
        Assert.Throws<NotFoundException>(() => _store.Delete("d"));
        Assert.Equal(0, _store.Usage.UsedBytes);
    }

    [Fact]
    public void List_filters_by_prefix_sorts_and_truncates()
    {
        foreach (var k in new[] { "user:3", "user:1", "user:2", "other" }) _store.Set(k, Encoding.UTF8.GetBytes(k), null);
        var all = _store.List("user:", 10);
        Assert.Equal(["user:1", "user:2", "user:3"], all.Entries.Select(e => e.Key));
        Assert.False(all.Truncated);
        var page = _store.List("user:", 2);
        Assert.Equal(2, page.Entries.Length);
        Assert.True(page.Truncated);
    }

    [Fact]
    public async Task Concurrent_writers_never_exceed_the_quota()
    {
        using var store = Create(quota: 10_000, maxValue: 100);
        var accepted = 0;
        await Task.WhenAll(Enumerable.Range(0, 8).Select(w => Task.Run(() =>
        {
            for (var i = 0; i < 500; i++)
            {
                try
                {
                    store.Set($"w{w}-{i}", new byte[96], null); // 100 bytes with the key (w0-0..)
                    Interlocked.Increment(ref accepted);
                }
                catch (QuotaExceededException)
                {
                }
            }
        })));

        var (used, keys) = store.Usage;
        Assert.True(used <= 10_000, $"used {used} exceeds quota");
        Assert.Equal(accepted, keys);
        Assert.Equal(store.List("", 100_000).Entries.Sum(e => e.ValueBytes + Encoding.UTF8.GetByteCount(e.Key)), used);
    }
    // ---- outcome API: what the Redis endpoint and MSET/MGET rely on ----

    [Fact]
    public void If_absent_writes_only_a_missing_or_expired_key()
    {
        Assert.Equal(WriteStatus.Stored, _store.TrySet("nx", [1], null, SetCondition.IfAbsent).Status);
        Assert.Equal(WriteStatus.ConditionNotMet, _store.TrySet("nx", [2, 2], null, SetCondition.IfAbsent).Status);
        Assert.Equal([1], _store.Get("nx"));
        Assert.Equal(3, _store.Usage.UsedBytes);

        _store.Set("gone", [1], TimeSpan.FromSeconds(1));
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(WriteStatus.Stored, _store.TrySet("gone", [3], null, SetCondition.IfAbsent).Status);
        Assert.Equal([3], _store.Get("gone"));
    }

    [Fact]
    public void If_exists_writes_only_a_live_key()
    {
        Assert.Equal(WriteStatus.ConditionNotMet, _store.TrySet("xx", [1], null, SetCondition.IfExists).Status);
        Assert.False(_store.Contains("xx"));
        Assert.Equal((0L, 0L), _store.Usage);

        _store.Set("xx", [1], null);
        Assert.Equal(WriteStatus.Stored, _store.TrySet("xx", [2, 2], null, SetCondition.IfExists).Status);
        Assert.Equal([2, 2], _store.Get("xx"));

        _store.Set("stale", [1], TimeSpan.FromSeconds(1));
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(WriteStatus.ConditionNotMet, _store.TrySet("stale", [1], null, SetCondition.IfExists).Status);
        Assert.False(_store.Contains("stale"));
    }

    [Fact]
    public void Keep_ttl_keeps_the_old_expiry_and_a_plain_overwrite_drops_it()
    {
        _store.Set("k", [1], TimeSpan.FromSeconds(10));
        _time.Advance(TimeSpan.FromSeconds(4));
        Assert.Equal(WriteStatus.Stored, _store.TrySet("k", [2], TimeSpan.FromHours(1), keepTtl: true).Status);
        Assert.True(_store.TryGetTimeToLive("k", out var kept));
        Assert.Equal(TimeSpan.FromSeconds(6), kept);

        Assert.Equal(WriteStatus.Stored, _store.TrySet("k", [3], null).Status);
        Assert.True(_store.TryGetTimeToLive("k", out var none));
        Assert.Null(none);
        Assert.Equal(0, _store.ExpiringKeys);

        // KEEPTTL on a new key: nothing to keep, so no expiry.
        Assert.Equal(WriteStatus.Stored, _store.TrySet("fresh", [1], null, keepTtl: true).Status);
        Assert.True(_store.TryGetTimeToLive("fresh", out var fresh));
        Assert.Null(fresh);
    }

    [Fact]
    public void Time_to_live_tells_missing_from_never_expiring_from_expiring()
    {
        // Redis' TTL answers -2, -1 and the seconds left from exactly these three outcomes.
        Assert.False(_store.TryGetTimeToLive("missing", out _));

        _store.Set("forever", [1], null);
        Assert.True(_store.TryGetTimeToLive("forever", out var forever));
        Assert.Null(forever);

        _store.Set("brief", [1], TimeSpan.FromMilliseconds(1500));
        _time.Advance(TimeSpan.FromMilliseconds(400));
        Assert.True(_store.TryGetTimeToLive("brief", out var left));
        Assert.Equal(TimeSpan.FromMilliseconds(1100), left);

        _time.Advance(TimeSpan.FromMilliseconds(1100));
        Assert.False(_store.TryGetTimeToLive("brief", out _));
    }

    [Fact]
    public void Set_expiry_persist_and_a_non_positive_expiry_deletes()
    {
        _store.Set("e", [1], null);
        Assert.False(_store.TrySetExpiry("e", null)); // nothing to persist
        Assert.True(_store.TrySetExpiry("e", TimeSpan.FromSeconds(5)));
        Assert.Equal(1, _store.ExpiringKeys);
        Assert.True(_store.TrySetExpiry("e", null));
        Assert.Equal(0, _store.ExpiringKeys);
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.True(_store.Contains("e"));

        Assert.True(_store.TrySetExpiry("e", TimeSpan.Zero));
        Assert.False(_store.Contains("e"));
        Assert.Equal((0L, 0L), _store.Usage);
        Assert.False(_store.TrySetExpiry("never-there", TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public void An_expiry_too_far_away_to_represent_is_refused_and_stores_nothing()
    {
        Assert.Equal(WriteStatus.InvalidTtl, _store.TrySet("far", [1], TimeSpan.MaxValue).Status);
        Assert.Equal(WriteStatus.InvalidTtl, _store.TrySet("far", [1], DateTime.MaxValue - _time.GetUtcNow().UtcDateTime + TimeSpan.FromSeconds(1)).Status);
        Assert.Equal(WriteStatus.InvalidTtl, _store.TrySet("neg", [1], TimeSpan.FromSeconds(-1)).Status);
        Assert.Equal(WriteStatus.InvalidTtl, _store.TrySetMany([new("far", [1])], TimeSpan.MaxValue).Status);
        Assert.Throws<InvalidArgumentException>(() => _store.Set("far", [1], TimeSpan.MaxValue));
        Assert.Throws<InvalidArgumentException>(() => _store.SetMany([new MemoryItem("far", [1])], TimeSpan.MaxValue));
        Assert.Equal((0L, 0L), _store.Usage);

        // The furthest representable expiry is fine.
        var furthest = DateTime.MaxValue - _time.GetUtcNow().UtcDateTime;
        Assert.Equal(WriteStatus.Stored, _store.TrySet("far", [1], furthest).Status);
    }

    [Fact]
    public void Set_many_over_quota_stores_nothing_and_touches_nothing_stored()
    {
        _store.Set("old", new byte[400], TimeSpan.FromMinutes(5));
        _store.Set("other", new byte[300], null);
        var before = _store.Usage;

        // 292 bytes are free, 695 once "old" is replaced; the batch needs 721.
        var ex = Assert.Throws<QuotaExceededException>(() => _store.SetMany(
            [new MemoryItem("old", new byte[10]), new MemoryItem("new1", new byte[400]), new MemoryItem("new2", new byte[300])], null));
        Assert.Equal("memory", ex.Resource);

        Assert.Equal(before, _store.Usage);
        Assert.Equal(400, _store.Get("old").Length);
        Assert.True(_store.TryGetTimeToLive("old", out var ttl) && ttl == TimeSpan.FromMinutes(5));
        Assert.All(_store.GetMany(["new1", "new2"]), Assert.Null);

        var outcome = _store.TrySetMany([new("new1", new byte[400]), new("new2", new byte[300])], null);
        Assert.Equal(WriteStatus.OverQuota, outcome.Status);
        Assert.Equal(before.UsedBytes, outcome.Used);
        Assert.Equal(1000, outcome.Limit);
    }

    [Fact]
    public void Set_many_charges_a_repeated_key_once_and_keeps_its_last_value()
    {
        // 3 x 400 bytes would not fit in 1000; one key given three times does.
        _store.SetMany([new MemoryItem("r", new byte[400]), new MemoryItem("r", new byte[400]), new MemoryItem("r", [7])], null);
        Assert.Equal([7], _store.Get("r"));
        Assert.Equal((2L, 1L), _store.Usage);
    }

    [Fact]
    public void Set_many_refuses_a_bad_key_or_value_before_storing_any()
    {
        Assert.Throws<InvalidNameException>(() => _store.SetMany([new MemoryItem("fine", [1]), new MemoryItem("bad\nkey", [1])], null));
        var tooLarge = _store.TrySetMany([new("fine", [1]), new("big", new byte[501])], null);
        Assert.Equal(WriteStatus.ValueTooLarge, tooLarge.Status);
        Assert.Equal("big", tooLarge.FailedKey);
        Assert.Throws<InvalidArgumentException>(() => _store.SetMany([], null));
        Assert.False(_store.Contains("fine"));
    }

    [Fact]
    public void Get_many_gives_null_for_missing_and_expired_keys_in_the_order_asked()
    {
        _store.Set("a", [1], null);
        _store.Set("b", [2], TimeSpan.FromSeconds(1));
        _store.Set("c", [3], null);
        _time.Advance(TimeSpan.FromSeconds(1));

        var values = _store.GetMany(["c", "missing", "b", "a", "c"]);
        Assert.Equal(5, values.Length);
        Assert.Equal([3], values[0]);
        Assert.Null(values[1]);
        Assert.Null(values[2]);
        Assert.Equal([1], values[3]);
        Assert.Equal([3], values[4]);
        Assert.Throws<InvalidNameException>(() => _store.GetMany(["ok", ""]));
    }

    [Fact]
    public void Scan_returns_every_key_that_lives_through_the_walk_despite_churn()
    {
        using var store = Create(quota: 1_000_000);
        var stay = Enumerable.Range(0, 300).Select(i => $"stay:{i}").ToList();
        foreach (var key in stay) store.Set(key, [1], null);
        for (var i = 0; i < 200; i++) store.Set($"churn:{i}", [1], null);

        var seen = new List<string>();
        var cursor = 0UL;
        var steps = 0;
        var added = 0;
        do
        {
            cursor = store.Scan(cursor, 7, null, seen);
            // Between steps: keys come (changing the walk's order table) and go.
            for (var j = 0; j < 5; j++) store.Set($"new:{added++}", [1], null);
            store.Remove($"churn:{steps % 200}");
            steps++;
            Assert.True(steps < 10_000, "the walk never ended");
        }
        while (cursor != 0);

        Assert.Empty(stay.Except(seen));
        // Only keys that were stored at some point of the walk.
        Assert.All(seen, k => Assert.Matches("^(stay|churn|new):[0-9]+$", k));
    }

    [Fact]
    public void Scan_with_a_match_filters_and_skips_expired_keys()
    {
        _store.Set("user:1", [1], null);
        _store.Set("user:2", [1], TimeSpan.FromSeconds(1));
        _store.Set("other", [1], null);
        _time.Advance(TimeSpan.FromSeconds(1));
        var seen = new List<string>();
        var cursor = 0UL;
        do cursor = _store.Scan(cursor, 1, k => k.StartsWith("user:", StringComparison.Ordinal), seen);
        while (cursor != 0);
        Assert.Equal(["user:1"], seen);
    }
}
