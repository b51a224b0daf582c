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
}
