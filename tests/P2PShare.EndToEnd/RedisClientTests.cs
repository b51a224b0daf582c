using System.Text;
using System.Text.Json;
using P2PShare.EndToEnd.Infrastructure;
using Xunit;

namespace P2PShare.EndToEnd;

/// <summary>
/// A local cluster whose peers have a small memory quota, so a test can fill one through redis-cli.
/// </summary>
public sealed class SmallMemoryCluster : LocalCluster
{
    public const long QuotaBytes = 2 * 1024 * 1024;
    public const long MaxValueBytes = 1024 * 1024;

    protected override IReadOnlyDictionary<string, string> PeerSettings => new Dictionary<string, string>
    {
        ["P2PSHARE__MEMORY__QUOTABYTES"] = QuotaBytes.ToString(),
        ["P2PSHARE__MEMORY__MAXVALUEBYTES"] = MaxValueBytes.ToString(),
    };
}

/// <summary>
/// The Redis-protocol ports of real peer processes started by cluster.sh, driven by Debian's
/// <c>redis-cli</c> beside the <c>p2pshare</c> CLI and the seed-protocol client: the same bytes come
/// out of every door, whichever one they went in by.
/// </summary>
[Collection(LocalClusterCollection.Name)]
public sealed class RedisClientTests(SmallMemoryCluster cluster) : IClassFixture<SmallMemoryCluster>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <summary>NUL, 0xff, CR/LF (RESP's own delimiter), a broken UTF-8 sequence, then every byte value.</summary>
    private static readonly byte[] Binary =
    [
        0x00, 0xff, (byte)'\r', (byte)'\n', 0xc3, 0x28, (byte)'$', (byte)'3', (byte)'\r', (byte)'\n', 0x80, 0xfe,
        .. Enumerable.Range(0, 256).Select(b => (byte)b),
        (byte)'\r', (byte)'\n',
    ];

    private int RespPort(int peer) => cluster.RespPortBase + peer - 1;

    private Task<ProcessResult> RedisCliAsync(int peer, byte[]? stdin, params string[] arguments) =>
        ProcessRunner.RunAsync("redis-cli", ["-p", RespPort(peer).ToString(), .. arguments], Timeout, stdin: stdin);

    private Task<ProcessResult> SeedClientAsync(int peer, params string[] arguments) =>
        ProcessRunner.RunAsync("python3", [RepoPaths.LegacyClient, "--port", (cluster.LegacyPortBase + peer - 1).ToString(), .. arguments], Timeout);

    private static string UniqueName(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 13)];

    private async Task<string> WriteTempFileAsync(byte[] bytes)
    {
        var path = Path.Combine(cluster.ClusterDir, UniqueName("value") + ".bin");
        await File.WriteAllBytesAsync(path, bytes);
        return path;
    }

    private static void AssertOk(ProcessResult result) => Assert.True(result.ExitCode == 0, result.ToString());

    [Fact]
    public async Task Every_peer_has_a_redis_port_that_answers_and_is_listed_as_its_redis_endpoint()
    {
        var peers = await cluster.CliAsync("peers", "--json");
        AssertOk(peers);
        using var listed = JsonDocument.Parse(peers.StdoutBytes);
        var endpoints = listed.RootElement.EnumerateArray().ToDictionary(
            p => p.GetProperty("name").GetString()!,
            p => p.GetProperty("endpoints").GetProperty("redis").GetString());

        using var http = new HttpClient { Timeout = Timeout };
        using var status = JsonDocument.Parse(await http.GetStringAsync(new Uri(cluster.HttpBase(), "api/status")));
        var onStatusPage = status.RootElement.GetProperty("peers").EnumerateArray().ToDictionary(
            p => p.GetProperty("name").GetString()!,
            p => p.GetProperty("endpoints").GetProperty("redis").GetString());

        for (var i = 1; i <= LocalCluster.Size; i++)
        {
            Assert.Equal($"127.0.0.1:{RespPort(i)}", endpoints[$"peer-{i}"]);
            Assert.Equal($"127.0.0.1:{RespPort(i)}", onStatusPage[$"peer-{i}"]);
            var ping = await RedisCliAsync(i, null, "PING");
            AssertOk(ping);
            Assert.Equal("PONG\n", ping.Stdout);
        }

        var table = await cluster.ClusterScriptAsync(Timeout, "status");
        AssertOk(table);
        Assert.Contains("REDIS", table.Stdout);
        Assert.Contains(RespPort(3).ToString(), table.Stdout);
    }

    [Fact]
    public async Task A_binary_value_set_with_redis_cli_is_read_back_byte_identical_by_the_cli_and_the_seed_protocol()
    {
        var key = UniqueName("from-redis");
        // -x: the last argument is stdin, taken byte for byte.
        var set = await RedisCliAsync(1, Binary, "-x", "SET", key);
        AssertOk(set);
        Assert.Equal("OK\n", set.Stdout);

        var get = await cluster.CliAsync("mem", "get", key, "--peer", "peer-1");
        AssertOk(get);
        Assert.Equal(Binary, get.StdoutBytes);

        var json = await cluster.CliAsync("mem", "get", key, "--peer", "peer-1", "--json");
        AssertOk(json);
        using (var view = JsonDocument.Parse(json.StdoutBytes))
        {
            Assert.Equal(Binary.Length, view.RootElement.GetProperty("valueBytes").GetInt64());
            Assert.Equal(Binary, view.RootElement.GetProperty("valueBase64").GetBytesFromBase64());
            Assert.Equal(JsonValueKind.Null, view.RootElement.GetProperty("valueUtf8").ValueKind);
        }

        // The seed protocol's values are JSON: binary ones travel in base64.
        var seed = await SeedClientAsync(1, "get-mem", key);
        AssertOk(seed);
        using (var reply = JsonDocument.Parse(seed.Stdout))
        {
            Assert.True(reply.RootElement.GetProperty("found").GetBoolean());
            Assert.Equal(Binary, reply.RootElement.GetProperty("value").GetBytesFromBase64());
        }

        // Text that is not JSON is a JSON string there; JSON text is that JSON.
        var textKey = UniqueName("text");
        AssertOk(await RedisCliAsync(1, Encoding.UTF8.GetBytes("grüße\r\nzwei Zeilen"), "-x", "SET", textKey));
        using (var reply = JsonDocument.Parse((await SeedClientAsync(1, "get-mem", textKey)).Stdout))
        {
            Assert.Equal("grüße\r\nzwei Zeilen", reply.RootElement.GetProperty("value").GetString());
        }

        var jsonKey = UniqueName("json");
        AssertOk(await RedisCliAsync(1, """{"n":[1,2,3]}"""u8.ToArray(), "-x", "SET", jsonKey));
        using (var reply = JsonDocument.Parse((await SeedClientAsync(1, "get-mem", jsonKey)).Stdout))
        {
            Assert.Equal(3, reply.RootElement.GetProperty("value").GetProperty("n").GetArrayLength());
        }

        AssertOk(await RedisCliAsync(1, null, "DEL", key, textKey, jsonKey));
    }

    [Fact]
    public async Task A_binary_value_set_with_the_cli_is_read_back_byte_identical_by_redis_cli()
    {
        var key = UniqueName("from-cli");
        var file = await WriteTempFileAsync(Binary);
        AssertOk(await cluster.CliAsync("mem", "set", key, "@" + file, "--peer", "peer-2", "--ttl", "600"));

        // Without a terminal redis-cli prints the raw bytes and one newline after them.
        var get = await RedisCliAsync(2, null, "GET", key);
        AssertOk(get);
        Assert.Equal([.. Binary, (byte)'\n'], get.StdoutBytes);

        // The CLI's --ttl is the expiry Redis clients see.
        var ttl = await RedisCliAsync(2, null, "TTL", key);
        AssertOk(ttl);
        Assert.InRange(int.Parse(ttl.Stdout.Trim()), 1, 600);

        // A value set through the seed protocol is the JSON text its client sent (Python's json.dumps spacing).
        var seedKey = UniqueName("from-seed");
        AssertOk(await SeedClientAsync(2, "set-mem", seedKey, """{"b":true,"n":[1,2]}"""));
        var seedValue = await RedisCliAsync(2, null, "GET", seedKey);
        Assert.Equal("""{"b": true, "n": [1, 2]}""" + "\n", seedValue.Stdout);
        Assert.Equal("-1\n", (await RedisCliAsync(2, null, "TTL", seedKey)).Stdout);

        AssertOk(await RedisCliAsync(2, null, "DEL", key, seedKey));
    }

    [Fact]
    public async Task Mset_and_mget_through_the_cli_binary_agree_with_redis_cli()
    {
        var (a, b, c) = (UniqueName("m-a"), UniqueName("m-b"), UniqueName("m-c"));
        var file = await WriteTempFileAsync(Binary);
        var mset = await cluster.CliAsync("mem", "mset", a, "text a", b, "@" + file, "--peer", "peer-2");
        AssertOk(mset);
        Assert.Contains("stored 2 keys", mset.Stdout);

        var fromRedis = await RedisCliAsync(2, null, "MGET", a, b);
        Assert.Equal([.. "text a\n"u8.ToArray(), .. Binary, (byte)'\n'], fromRedis.StdoutBytes);

        // Every key is shown; the missing one makes it exit 3 with one line naming it, like `mem get`.
        var missing = UniqueName("m-missing");
        var json = await cluster.CliAsync("mem", "mget", a, missing, b, "--peer", "peer-2", "--json");
        Assert.True(json.ExitCode == 3, json.ToString());
        Assert.Equal([$"error: key '{missing}' not found on peer-2"], json.StderrLines);
        using (var values = JsonDocument.Parse(json.StdoutBytes))
        {
            var items = values.RootElement.EnumerateArray().ToList();
            Assert.Equal(3, items.Count);
            Assert.Equal("text a", items[0].GetProperty("valueUtf8").GetString());
            Assert.Equal(JsonValueKind.Null, items[1].ValueKind);
            Assert.Equal(Binary, items[2].GetProperty("valueBase64").GetBytesFromBase64());
        }

        var table = await cluster.CliAsync("mem", "mget", a, missing, b, "--peer", "peer-2");
        Assert.True(table.ExitCode == 3, table.ToString());
        Assert.Contains("(missing)", table.Stdout);
        Assert.Contains("text a", table.Stdout);
        Assert.Single(table.StderrLines);

        var all = await cluster.CliAsync("mem", "mget", a, b, "--peer", "peer-2", "--json");
        AssertOk(all);
        Assert.Empty(all.Stderr);

        // Keys without values: a usage error before anything is sent, and nothing stored.
        var odd = await cluster.CliAsync("mem", "mset", a, "new a", c, "--peer", "peer-2");
        Assert.True(odd.ExitCode == 2, odd.ToString());
        Assert.Single(odd.StderrLines);
        Assert.StartsWith("error: mset takes keys and values in pairs", odd.Stderr);
        Assert.Equal("text a\n", (await RedisCliAsync(2, null, "GET", a)).Stdout);
        Assert.Equal("0\n", (await RedisCliAsync(2, null, "EXISTS", c)).Stdout);

        AssertOk(await RedisCliAsync(2, null, "DEL", a, b));
    }

    [Fact]
    public async Task Over_quota_through_redis_cli_is_an_oom_error_and_earlier_values_stay()
    {
        // Peer 3 only: this test fills its quota.
        var chunk = Enumerable.Range(0, 700 * 1024).Select(i => (byte)(i * 31 + 7)).ToArray();
        var (first, second, third) = (UniqueName("full-1"), UniqueName("full-2"), UniqueName("full-3"));
        AssertOk(await RedisCliAsync(3, chunk, "-x", "SET", first));
        AssertOk(await RedisCliAsync(3, chunk, "-x", "SET", second));

        var refused = await RedisCliAsync(3, chunk, "--no-raw", "-x", "SET", third);
        Assert.StartsWith("(error) OOM memory quota exceeded: ", refused.Stdout);
        Assert.Single(refused.Stdout.TrimEnd('\n').Split('\n'));
        // MSET is all or nothing: the small key that would fit is not stored either.
        var small = UniqueName("full-small");
        var refusedBatch = await RedisCliAsync(3, chunk, "--no-raw", "-x", "MSET", small, "x", third);
        Assert.StartsWith("(error) OOM memory quota exceeded: ", refusedBatch.Stdout);

        Assert.Equal("0\n", (await RedisCliAsync(3, null, "EXISTS", third, small)).Stdout);
        var firstBack = await RedisCliAsync(3, null, "GET", first);
        Assert.Equal([.. chunk, (byte)'\n'], firstBack.StdoutBytes);
        var viaCli = await cluster.CliAsync("mem", "get", second, "--peer", "peer-3");
        AssertOk(viaCli);
        Assert.Equal(chunk, viaCli.StdoutBytes);

        // The CLI meets the same quota: exit 4 and one line.
        var file = await WriteTempFileAsync(chunk);
        var cliRefused = await cluster.CliAsync("mem", "set", third, "@" + file, "--peer", "peer-3");
        Assert.True(cliRefused.ExitCode == 4, cliRefused.ToString());
        Assert.Equal(["error: memory quota exceeded: " + refused.Stdout["(error) OOM memory quota exceeded: ".Length..].TrimEnd('\n')], cliRefused.StderrLines);

        AssertOk(await RedisCliAsync(3, null, "DEL", first, second));
        Assert.Equal("OK\n", (await RedisCliAsync(3, chunk, "-x", "SET", third)).Stdout);
        AssertOk(await RedisCliAsync(3, null, "DEL", third));
    }
}
