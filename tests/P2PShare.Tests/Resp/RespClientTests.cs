using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using P2PShare.Memory;
using P2PShare.Resp;
using P2PShare.Tests.Legacy;
using P2PShare.Tests.Support;
using StackExchange.Redis;

namespace P2PShare.Tests.Resp;

/// <summary>
/// StackExchange.Redis and redis-cli against a real in-process peer's Redis-protocol port: the same
/// keys, values, TTLs, quota and errors as the grain API (what <c>p2pshare mem</c> calls) and the
/// seed protocol.
/// </summary>
public sealed class RespClientTests(RespClusterFixture fixture) : IClassFixture<RespClusterFixture>
{
    private static readonly byte[] EveryByte = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();

    [Fact]
    public async Task StackExchange_Redis_connects_and_reads_and_writes_the_peers_memory()
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(fixture.Configuration("peer-1"));
        var db = redis.GetDatabase();
        Assert.True(await db.StringSetAsync("se:text", "hello"));
        Assert.Equal("hello", (string?)await db.StringGetAsync("se:text"));
        Assert.True((await db.StringGetAsync("se:missing")).IsNull);

        Assert.True(await db.StringSetAsync("se:nx", "1", when: When.NotExists));
        Assert.False(await db.StringSetAsync("se:nx", "2", when: When.NotExists));
        Assert.False(await db.StringSetAsync("se:xx-missing", "1", when: When.Exists));
        Assert.Equal("1", (string?)await db.StringGetAsync("se:nx"));

        Assert.True(await db.StringSetAsync([new("se:m1", "a"), new("se:m2", "b")]));
        var values = await db.StringGetAsync(["se:m1", "se:nothing", "se:m2"]);
        Assert.Equal(["a", null, "b"], values.Select(v => (string?)v));

        Assert.Equal(2, await db.KeyDeleteAsync(["se:m1", "se:m2", "se:nothing"]));
        Assert.False(await db.KeyExistsAsync("se:m1"));

        var pong = await db.PingAsync();
        Assert.True(pong < TimeSpan.FromSeconds(10));
        Assert.Equal("ok", (string?)await db.ExecuteAsync("ECHO", "ok"));
    }

    [Fact]
    public async Task Expiry_set_with_a_redis_client_is_the_stores_expiry()
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(fixture.Configuration("peer-1"));
        var db = redis.GetDatabase();
        await db.StringSetAsync("se:ttl", "v", TimeSpan.FromSeconds(100));
        var ttl = await db.KeyTimeToLiveAsync("se:ttl");
        Assert.InRange(ttl!.Value, TimeSpan.FromSeconds(98), TimeSpan.FromSeconds(100));
        var listed = (await fixture.Peers.Peer("peer-1").ListAsync("se:ttl", 10)).Entries.Single();
        Assert.NotNull(listed.ExpiresUtc);

        Assert.True(await db.KeyPersistAsync("se:ttl"));
        Assert.Null(await db.KeyTimeToLiveAsync("se:ttl"));
        Assert.Equal(-1L, (long)await db.ExecuteAsync("TTL", "se:ttl"));
        Assert.Equal(-2L, (long)await db.ExecuteAsync("PTTL", "se:never-there"));

        Assert.True(await db.KeyExpireAsync("se:ttl", TimeSpan.FromMilliseconds(150)));
        await Eventually.TrueAsync(async () => !await db.KeyExistsAsync("se:ttl"), TimeSpan.FromSeconds(10), "the key expires");
        await Assert.ThrowsAsync<NotFoundException>(() => fixture.Peers.Peer("peer-1").GetAsync("se:ttl"));

        // A non-positive expiry deletes at once, as in Redis.
        await db.StringSetAsync("se:gone", "v");
        Assert.Equal(1L, (long)await db.ExecuteAsync("EXPIRE", "se:gone", "0"));
        Assert.False(await db.KeyExistsAsync("se:gone"));
    }

    [Fact]
    public async Task Over_quota_is_an_OOM_error_and_nothing_stored_is_touched()
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(fixture.Configuration("peer-2"));
        var db = redis.GetDatabase();
        var value = new byte[RespClusterFixture.MaxValueBytes - 16];
        Random.Shared.NextBytes(value);
        var stored = new List<string>();
        RedisServerException? refusal = null;
        for (var i = 0; i < 10 && refusal is null; i++)
        {
            try
            {
                await db.StringSetAsync($"oom:{i}", value);
                stored.Add($"oom:{i}");
            }
            catch (RedisServerException e)
            {
                refusal = e;
            }
        }

        Assert.NotNull(refusal);
        Assert.StartsWith("OOM memory quota exceeded: needs", refusal.Message);
        var usage = fixture.Store("peer-2").Usage;
        // MSET is all or nothing, over quota too.
        var batch = await Assert.ThrowsAsync<RedisServerException>(() => db.StringSetAsync([new("oom:small", "x"), new("oom:big", value)]));
        Assert.StartsWith("OOM memory quota exceeded", batch.Message);
        Assert.False(await db.KeyExistsAsync("oom:small"));
        Assert.Equal(usage, fixture.Store("peer-2").Usage);
        foreach (var key in stored) Assert.Equal(value, (byte[]?)await db.StringGetAsync(key));

        // The same refusal the grain API (p2pshare mem set) gives.
        var grain = await Assert.ThrowsAsync<QuotaExceededException>(() => fixture.Peers.Peer("peer-2").SetAsync("oom:grain", value, null));
        Assert.StartsWith("memory quota exceeded: needs", grain.Message);
        Assert.Equal(stored.Count, (int)await db.KeyDeleteAsync([.. stored.Select(k => (RedisKey)k)]));
    }

    [Fact]
    public async Task Keys_the_store_refuses_get_the_same_error_line_as_the_grain_api()
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(fixture.Configuration("peer-1"));
        var db = redis.GetDatabase();
        var control = await Assert.ThrowsAsync<RedisServerException>(() => db.StringSetAsync("bad\u0001key", "v"));
        var grain = await Assert.ThrowsAsync<InvalidNameException>(() => fixture.Peers.Peer("peer-1").SetAsync("bad\u0001key", [1], null));
        Assert.Equal("ERR " + grain.Message, control.Message);

        var tooLong = new string('k', 600);
        var longError = await Assert.ThrowsAsync<RedisServerException>(() => db.StringGetAsync(tooLong));
        Assert.Contains("longer than 512 bytes", longError.Message);

        var notUtf8 = await Assert.ThrowsAsync<RedisServerException>(() => db.StringSetAsync((RedisKey)new byte[] { 0xff, 0xfe }, "v"));
        Assert.Contains("not valid UTF-8", notUtf8.Message);
        var empty = await Assert.ThrowsAsync<RedisServerException>(() => db.StringSetAsync("", "v"));
        Assert.Contains("a key cannot be empty", empty.Message);
    }

    [Fact]
    public async Task Keys_scan_dbsize_and_info_describe_the_same_store()
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(fixture.Configuration("peer-1"));
        var db = redis.GetDatabase();
        var names = Enumerable.Range(0, 150).Select(i => $"scan:{i:000}").ToArray();
        Assert.True(await db.StringSetAsync([.. names.Select(n => new KeyValuePair<RedisKey, RedisValue>(n, n))]));
        await db.StringSetAsync("other:1", "x");

        var server = redis.GetServer(redis.GetEndPoints().Single());
        // SCAN in pages of 7 (the library follows the cursor).
        var scanned = server.Keys(pattern: "scan:*", pageSize: 7).Select(k => (string)k!).ToList();
        Assert.Equal(names, scanned.Order(StringComparer.Ordinal));
        var keys = (RedisResult[])(await db.ExecuteAsync("KEYS", "scan:1[0-4]?"))!;
        Assert.Equal(names.Where(n => string.CompareOrdinal(n, "scan:100") >= 0 && string.CompareOrdinal(n, "scan:149") <= 0),
            keys.Select(k => (string)k!).Order(StringComparer.Ordinal));

        var (used, count) = fixture.Store("peer-1").Usage;
        Assert.Equal(count, (long)await db.ExecuteAsync("DBSIZE"));
        var info = (string)(await db.ExecuteAsync("INFO", "memory"))!;
        Assert.Contains($"used_memory:{used}\r\n", info);
        Assert.Contains($"maxmemory:{RespClusterFixture.QuotaBytes}\r\n", info);
        var keyspace = (string)(await db.ExecuteAsync("INFO", "keyspace"))!;
        Assert.Contains($"db0:keys={count},", keyspace);
        await db.KeyDeleteAsync([.. names.Select(n => (RedisKey)n), "other:1"]);
    }

    [Fact]
    public async Task A_value_set_with_a_redis_client_crosses_every_door_byte_identical()
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(fixture.Configuration("peer-1"));
        var db = redis.GetDatabase();
        var peer = fixture.Peers.Peer("peer-1");
        var seed = fixture.SeedPort("peer-1");

        // Binary: the grain API (p2pshare mem get) gives the same bytes; the seed protocol, whose
        // values are JSON, gives them in base64.
        await db.StringSetAsync("door:binary", EveryByte);
        Assert.Equal(EveryByte, await peer.GetAsync("door:binary"));
        var binary = await LegacyClient.CallAsync(seed, new { type = "GET_MEM", key = "door:binary" });
        Assert.Equal(Convert.ToBase64String(EveryByte), (string?)binary["value"]);

        // UTF-8 text: a JSON string on the seed protocol; JSON text: that JSON itself.
        await db.StringSetAsync("door:text", "grüße");
        Assert.Equal("grüße", (string?)(await LegacyClient.CallAsync(seed, new { type = "GET_MEM", key = "door:text" }))["value"]);
        await db.StringSetAsync("door:json", """{"a":[1,2]}""");
        var json = await LegacyClient.CallAsync(seed, new { type = "GET_MEM", key = "door:json" });
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"a":[1,2]}"""), json["value"]));

        // And the other way round.
        await peer.SetAsync("door:from-grain", EveryByte, null);
        Assert.Equal(EveryByte, (byte[]?)await db.StringGetAsync("door:from-grain"));
        await LegacyClient.CallAsync(seed, new Dictionary<string, object?> { ["type"] = "SET_MEM", ["key"] = "door:from-seed", ["value"] = new { b = true } });
        Assert.Equal("""{"b":true}""", (string?)await db.StringGetAsync("door:from-seed"));
    }

    [Fact]
    public async Task The_grain_api_has_mset_and_mget_over_the_same_store()
    {
        var peer = fixture.Peers.Peer("peer-1");
        await peer.MSetAsync([new MemoryItem("g:1", [1]), new MemoryItem("g:2", EveryByte), new MemoryItem("g:1", [9])], TimeSpan.FromMinutes(5));
        var values = await peer.MGetAsync(["g:1", "g:none", "g:2"]);
        Assert.Equal([9], values[0]);
        Assert.Null(values[1]);
        Assert.Equal(EveryByte, values[2]);

        await using var redis = await ConnectionMultiplexer.ConnectAsync(fixture.Configuration("peer-1"));
        var ttl = await redis.GetDatabase().KeyTimeToLiveAsync("g:2");
        Assert.InRange(ttl!.Value, TimeSpan.FromMinutes(4), TimeSpan.FromMinutes(5));
        await Assert.ThrowsAsync<InvalidNameException>(() => peer.MSetAsync([new MemoryItem("ok", [1]), new MemoryItem("", [1])], null));
        Assert.Null((await peer.MGetAsync(["ok"]))[0]);
    }

    [Fact]
    public async Task Redis_cli_reads_and_writes_the_same_bytes()
    {
        var port = fixture.Port("peer-1").Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllBytesAsync(file, EveryByte);
            // -x: the last argument is read from stdin, byte for byte.
            Assert.Equal("OK", (await RedisCliAsync(port, file, "-x", "set", "cli:binary")).Trim());
            Assert.Equal(EveryByte, await fixture.Peers.Peer("peer-1").GetAsync("cli:binary"));

            await fixture.Peers.Peer("peer-1").SetAsync("cli:text", Encoding.UTF8.GetBytes("from the grain"), null);
            Assert.Equal("from the grain", (await RedisCliAsync(port, null, "--raw", "get", "cli:text")).TrimEnd('\n'));
            Assert.Equal("PONG", (await RedisCliAsync(port, null, "ping")).Trim());
            Assert.Contains("ERR unknown command 'flushall'", await RedisCliAsync(port, null, "flushall"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static async Task<string> RedisCliAsync(string port, string? stdinFile, params string[] args)
    {
        var start = new ProcessStartInfo("redis-cli") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        start.ArgumentList.Add("-p");
        start.ArgumentList.Add(port);
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start) ?? throw new InvalidOperationException("redis-cli did not start (apt-get install redis-tools)");
        if (stdinFile is not null) await process.StandardInput.BaseStream.WriteAsync(await File.ReadAllBytesAsync(stdinFile));
        process.StandardInput.Close();
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        return output;
    }
}
