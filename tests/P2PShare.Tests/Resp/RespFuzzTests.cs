using System.Net.Sockets;
using System.Text;
using Xunit.Abstractions;

namespace P2PShare.Tests.Resp;

/// <summary>
/// Thousands of random and mutated RESP requests at a peer's Redis-protocol port from several
/// clients at once; then every stored value is intact and the peer answers correctly. The seed is
/// printed; set P2PSHARE_FUZZ_SEED to replay a run, P2PSHARE_FUZZ_FRAMES to change its size.
/// </summary>
public sealed class RespFuzzTests(RespClusterFixture fixture, ITestOutputHelper output) : IClassFixture<RespClusterFixture>
{
    private const int Clients = 6;
    private const string Peer = "peer-2";

    private static readonly object[][] Corpus =
    [
        ["SET", "fz:a", "1"], ["SET", "fz:b", "two", "EX", "100"], ["SET", "fz:c", "x", "PX", "5", "NX"], ["GET", "fz:a"],
        ["MSET", "fz:m1", "1", "fz:m2", "2"], ["MGET", "fz:m1", "fz:m2", "fz:none"], ["DEL", "fz:a", "fz:b"],
        ["EXISTS", "fz:m1"], ["EXPIRE", "fz:m1", "100"], ["PEXPIRE", "fz:m2", "50"], ["TTL", "fz:m1"], ["PTTL", "fz:m2"],
        ["PERSIST", "fz:m1"], ["KEYS", "fz:*"], ["SCAN", "0", "MATCH", "fz:[a-m]*", "COUNT", "3"], ["DBSIZE"],
        ["INFO"], ["SELECT", "0"], ["HELLO", "2"], ["CLIENT", "SETNAME", "fuzz"], ["CLIENT", "GETNAME"],
        ["COMMAND", "DOCS"], ["CONFIG", "GET", "*"], ["PING"], ["ECHO", "hi"], ["TYPE", "fz:m1"], ["SETEX", "fz:s", "10", "v"],
    ];

    [Fact]
    public async Task Thousands_of_random_and_mutated_requests_leave_the_peer_serving_with_its_data_intact()
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("P2PSHARE_FUZZ_SEED"), out var s) ? s : Environment.TickCount;
        var frames = int.TryParse(Environment.GetEnvironmentVariable("P2PSHARE_FUZZ_FRAMES"), out var f) ? f : 4000;
        output.WriteLine($"fuzz seed {seed}, {frames} requests from {Clients} clients (replay: P2PSHARE_FUZZ_SEED={seed})");

        var sentinels = Enumerable.Range(0, 20).ToDictionary(i => $"sentinel:{i}", i =>
        {
            var bytes = new byte[1 + (i * 977 % 5000)];
            new Random(i).NextBytes(bytes);
            return bytes;
        });
        foreach (var (key, value) in sentinels) await fixture.Peers.Peer(Peer).SetAsync(key, value, null);

        var started = DateTime.UtcNow;
        var results = await Task.WhenAll(Enumerable.Range(0, Clients).Select(i => Task.Run(() => FuzzAsync(new Random(seed + i), frames / Clients))));
        var total = new Dictionary<string, int>();
        foreach (var (kind, count) in results.SelectMany(r => r)) total[kind] = total.GetValueOrDefault(kind) + count;
        output.WriteLine($"{frames} requests in {(DateTime.UtcNow - started).TotalSeconds:0.0} s; outcomes: " +
                         string.Join(", ", total.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} {kv.Value}")));
        Assert.True(total.GetValueOrDefault("error") > 0, "some garbage should be answered with an error");
        Assert.True(total.GetValueOrDefault("reply") > 0, "some requests should be answered normally");

        // Every stored value intact, the peer correct and no large-request bytes left held.
        foreach (var (key, value) in sentinels) Assert.Equal(value, await fixture.Peers.Peer(Peer).GetAsync(key));
        await using var wire = await RespWire.ConnectAsync(fixture.Port(Peer));
        Assert.Equal("PONG", await wire.CallAsync("PING"));
        Assert.Equal(sentinels["sentinel:7"], await wire.CallAsync("GET", "sentinel:7"));
        Assert.Equal("OK", await wire.CallAsync("SET", "after-fuzz", "ok"));
        Assert.Equal("ok"u8.ToArray(), await wire.CallAsync("GET", "after-fuzz"));
        await Support.Eventually.TrueAsync(() => Task.FromResult(fixture.Gateway(Peer).BufferedBytes == 0), TimeSpan.FromSeconds(20), "buffers released");
    }

    private async Task<Dictionary<string, int>> FuzzAsync(Random random, int count)
    {
        var tally = new Dictionary<string, int>();
        RespWire? wire = null;
        try
        {
            for (var i = 0; i < count; i++)
            {
                wire ??= await RespWire.ConnectAsync(fixture.Port(Peer));
                var request = Mutate(random, RespWire.Command(Corpus[random.Next(Corpus.Length)]));
                string outcome;
                try
                {
                    await wire.SendAsync(request);
                    // A mutated request may be incomplete (the peer waits for more): don't wait long.
                    var reply = await wire.ReadAsync(TimeSpan.FromMilliseconds(random.Next(10) == 0 ? 1000 : 200));
                    outcome = reply is RespError ? "error" : "reply";
                }
                catch (Exception e) when (e is OperationCanceledException or IOException or EndOfStreamException or SocketException or InvalidDataException or FormatException)
                {
                    outcome = e is OperationCanceledException ? "no reply" : "closed";
                    await wire.DisposeAsync();
                    wire = null;
                }

                tally[outcome] = tally.GetValueOrDefault(outcome) + 1;
            }
        }
        finally
        {
            if (wire is not null) await wire.DisposeAsync();
        }

        return tally;
    }

    private static byte[] Mutate(Random random, byte[] request)
    {
        const string Structural = "*$\r\n:+-0123456789";
        var bytes = new List<byte>(request);
        switch (random.Next(8))
        {
            case 0:
                return request; // valid
            case 1:
                for (var n = random.Next(1, 4); n > 0 && bytes.Count > 0; n--) bytes[random.Next(bytes.Count)] = (byte)Structural[random.Next(Structural.Length)];
                break;
            case 2:
                for (var n = random.Next(1, 4); n > 0 && bytes.Count > 0; n--) bytes[random.Next(bytes.Count)] = (byte)random.Next(256);
                break;
            case 3:
                bytes.RemoveRange(random.Next(bytes.Count), 1);
                break;
            case 4:
                return bytes.Take(random.Next(bytes.Count)).ToArray(); // truncated
            case 5:
                return Encoding.ASCII.GetBytes($"*{random.Next(-2, 10_000_000)}\r\n${random.NextInt64(-2, long.MaxValue)}\r\n");
            case 6:
                var junk = new byte[random.Next(1, 300)];
                random.NextBytes(junk);
                return junk;
            default:
                // Another request glued on (a pipeline), sometimes nested.
                bytes.AddRange(random.Next(3) == 0 ? "*1\r\n*1\r\n"u8.ToArray() : RespWire.Command("PING"));
                break;
        }

        return [.. bytes];
    }
}
