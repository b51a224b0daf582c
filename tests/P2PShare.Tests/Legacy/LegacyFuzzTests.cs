using System.Buffers.Binary;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;
using Xunit.Abstractions;

namespace P2PShare.Tests.Legacy;

/// <summary>
/// Thousands of random and mutated frames at a peer's seed-protocol port, from several clients at
/// once; then the peer must still answer every message correctly with all its data intact.
/// The seed is printed; set P2PSHARE_FUZZ_SEED to replay a run, P2PSHARE_FUZZ_FRAMES to change its size.
/// </summary>
public sealed class LegacyFuzzTests(LegacyClusterFixture fixture, ITestOutputHelper output) : IClassFixture<LegacyClusterFixture>
{
    private const int Clients = 8;
    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(60);
    private const string Structural = "{}[]\",:0\\";

    private static readonly string[] Types =
        ["CPU_TASK", "SET_MEM", "GET_MEM", "PUT_FILE", "GET_FILE", "STATUS", "PING", "REGISTER", "UPDATE_LOAD", "REQUEST_CPU", "UNREGISTER", "ERROR", ""];

    private static readonly string[] Corpus =
    [
        """{"type":"CPU_TASK","task_id":"T1","program":"def main(x): return x * x","function":"main","args":[5],"confidential":false}""",
        """{"type":"CPU_TASK","task_id":"T2","program":"int main(int x) => x + 1;","args":[1],"confidential":true,"language":"csharp","timeout":5}""",
        """{"type":"CPU_TASK","task_id":3,"program":"def f(a, b): return [a, b]","function":"f","args":["x",{"y":null}],"priority":2,"max_retries":1}""",
        """{"type":"SET_MEM","key":"fuzz-k1","value":{"a":[1,2.5,"three",null,true]}}""",
        """{"type":"SET_MEM","key":"fuzz-k2","value":"text"}""",
        """{"type":"GET_MEM","key":"fuzz-k1"}""",
        """{"type":"PUT_FILE","filename":"fuzz-file.txt","data":"SGVsbG8sIFAyUCBGaWxlIFN0b3JhZ2Uh"}""",
        """{"type":"GET_FILE","filename":"fuzz-file.txt"}""",
        """{"type":"STATUS"}""",
        """{"type":"PING"}""",
        """{"type":"REGISTER","ip":"192.0.2.50","port":9000,"cpu_load":0.5}""",
        """{"type":"UPDATE_LOAD","ip":"192.0.2.50","port":9000,"cpu_load":1.5}""",
        """{"type":"REQUEST_CPU"}""",
        """{"type":"UNREGISTER","ip":"192.0.2.50","port":9000}""",
    ];

    [Fact]
    public async Task Thousands_of_random_and_mutated_frames_leave_the_peer_serving_with_its_data_intact()
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("P2PSHARE_FUZZ_SEED"), out var s) ? s : Environment.TickCount;
        var frames = int.TryParse(Environment.GetEnvironmentVariable("P2PSHARE_FUZZ_FRAMES"), out var f) ? f : 4000;
        output.WriteLine($"fuzz seed {seed}, {frames} frames from {Clients} clients (replay: P2PSHARE_FUZZ_SEED={seed})");
        var port = fixture.PeerPort("peer-2");

        // Data that must survive.
        var sentinelValue = JsonNode.Parse("""{"keep":[1,2,3],"name":"sentinel"}""");
        var sentinelFile = RandomNumberGenerator.GetBytes(100_000);
        await LegacyClient.CallAsync(port, new Dictionary<string, object?> { ["type"] = "SET_MEM", ["key"] = "fuzz-sentinel", ["value"] = sentinelValue });
        await LegacyClient.CallAsync(port, new { type = "PUT_FILE", filename = "fuzz-sentinel.bin", data = Convert.ToBase64String(sentinelFile) });

        var tally = new Dictionary<string, int>();
        var started = DateTime.UtcNow;
        // Most clients on a peer port, two on a tracker port (another peer's), all at once.
        var tracker = fixture.TrackerPort("peer-1");
        var results = await Task.WhenAll(Enumerable.Range(0, Clients).Select(i =>
            Task.Run(() => FuzzAsync(i < Clients - 2 ? port : tracker, new Random(seed + i), frames / Clients))));
        foreach (var (type, count) in results.SelectMany(r => r))
            tally[type] = tally.GetValueOrDefault(type) + count;
        output.WriteLine($"{frames} frames in {(DateTime.UtcNow - started).TotalSeconds:0.0} s; outcomes: " +
                         string.Join(", ", tally.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} {kv.Value}")));
        Assert.True(tally.GetValueOrDefault("ERROR") > frames / 10, "most garbage should be answered with ERROR");

        // Still a correct peer, with everything it stored.
        foreach (var peer in new[] { "peer-1", "peer-2", "peer-3" })
            Assert.Equal("PONG", (string?)(await LegacyClient.CallAsync(fixture.PeerPort(peer), new { type = "PING" }))["type"]);
        var mem = await LegacyClient.CallAsync(port, new { type = "GET_MEM", key = "fuzz-sentinel" });
        Assert.True(JsonNode.DeepEquals(sentinelValue, mem["value"]), mem.ToJsonString());
        var file = await LegacyClient.CallAsync(port, new { type = "GET_FILE", filename = "fuzz-sentinel.bin" });
        Assert.Equal(sentinelFile, Convert.FromBase64String((string)file["data"]!));
        var task = await LegacyClient.CallAsync(port, new { type = "CPU_TASK", task_id = "after", program = "int main(int x) => x * 3;", args = new[] { 14 }, language = "csharp" });
        Assert.Equal(42, (int)task["result"]!);
        Assert.Equal(3, (await fixture.Peers.Tracker.GetPeersAsync()).Length);
        Assert.Equal("OK", (string?)(await LegacyClient.CallAsync(fixture.TrackerPort("peer-1"), new { type = "STATUS" }))["status"]);
    }

    /// <summary>One client's share; returns how each frame ended (reply type, or "closed").</summary>
    private static async Task<Dictionary<string, int>> FuzzAsync(IPEndPoint port, Random random, int count)
    {
        var tally = new Dictionary<string, int>();
        LegacyClient? reused = null;
        try
        {
            for (var i = 0; i < count; i++)
            {
                var raw = random.Next(10) == 0;
                var fresh = raw || reused is null || random.Next(2) == 0;
                if (fresh)
                {
                    if (reused is not null) await reused.DisposeAsync();
                    reused = await LegacyClient.ConnectAsync(port);
                }

                var client = reused!;
                string outcome;
                try
                {
                    if (raw)
                    {
                        // Garbage framing: a random prefix and random bytes, then end of input.
                        await client.SendRawAsync(RandomBytes(random, random.Next(0, 64)));
                        client.ShutdownSend();
                        outcome = await DrainAsync(client);
                        reused = null;
                        await client.DisposeAsync();
                    }
                    else
                    {
                        await client.SendAsync(MakeBody(random));
                        var reply = await client.ReceiveAsync(ReplyTimeout);
                        if (reply is null)
                        {
                            outcome = "closed";
                            reused = null;
                            await client.DisposeAsync();
                        }
                        else
                        {
                            outcome = (string?)reply["type"] ?? throw new InvalidDataException($"a reply without a type: {reply.ToJsonString()}");
                        }
                    }
                }
                catch (IOException)
                {
                    outcome = "closed";
                    reused = null;
                    await client.DisposeAsync();
                }

                tally[outcome] = tally.GetValueOrDefault(outcome) + 1;
            }
        }
        finally
        {
            if (reused is not null) await reused.DisposeAsync();
        }

        return tally;
    }

    private static async Task<string> DrainAsync(LegacyClient client)
    {
        var reply = await client.ReceiveAsync(ReplyTimeout);
        if (reply is null) return "closed";
        Assert.True(await client.ClosedWithinAsync(ReplyTimeout), "a connection with broken framing stayed open");
        return (string?)reply["type"] ?? "?";
    }

    private static byte[] MakeBody(Random random) => random.Next(4) switch
    {
        0 => RandomBytes(random, random.Next(0, 400)),
        1 => RandomJson(random),
        _ => Mutate(random, Encoding.UTF8.GetBytes(Corpus[random.Next(Corpus.Length)])),
    };

    private static byte[] RandomBytes(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }

    /// <summary>A well-formed object with a known type and fields of random types.</summary>
    private static byte[] RandomJson(Random random)
    {
        var message = new JsonObject { ["type"] = Types[random.Next(Types.Length)] };
        string[] fields = ["task_id", "program", "function", "args", "confidential", "priority", "max_retries", "timeout", "language",
            "key", "value", "filename", "data", "ip", "port", "cpu_load"];
        foreach (var field in fields)
        {
            if (random.Next(3) == 0)
                message[field] = RandomValue(random, depth: 0);
        }

        return Encoding.UTF8.GetBytes(message.ToJsonString());
    }

    private static JsonNode? RandomValue(Random random, int depth) => random.Next(depth > 2 ? 6 : 8) switch
    {
        0 => null,
        1 => random.Next(2) == 0,
        2 => random.Next(-5, 70_000),
        3 => random.NextDouble() * Math.Pow(10, random.Next(-10, 20)) * (random.Next(2) == 0 ? -1 : 1),
        4 => Convert.ToBase64String(RandomBytes(random, random.Next(0, 40))),
        5 => new string((char)random.Next(32, 0x2FFF), random.Next(0, 20)),
        6 => new JsonArray(Enumerable.Range(0, random.Next(0, 4)).Select(_ => RandomValue(random, depth + 1)).ToArray()),
        _ => new JsonObject(Enumerable.Range(0, random.Next(0, 4)).Select(i => KeyValuePair.Create($"f{i}", RandomValue(random, depth + 1)))),
    };

    /// <summary>1-4 byte-level mutations of a valid message: flips, cuts, insertions, duplications, type swaps.</summary>
    private static byte[] Mutate(Random random, byte[] message)
    {
        var bytes = new List<byte>(message);
        for (var m = random.Next(1, 5); m > 0 && bytes.Count > 0; m--)
        {
            var at = random.Next(bytes.Count);
            switch (random.Next(6))
            {
                case 0:
                    bytes[at] ^= (byte)(1 << random.Next(8));
                    break;
                case 1:
                    bytes.RemoveRange(at, Math.Min(bytes.Count - at, random.Next(1, 12)));
                    break;
                case 2:
                    bytes.InsertRange(at, RandomBytes(random, random.Next(1, 8)));
                    break;
                case 3:
                    var length = Math.Min(bytes.Count - at, random.Next(1, 30));
                    bytes.InsertRange(random.Next(bytes.Count), bytes.GetRange(at, length));
                    break;
                case 4:
                    bytes[at] = (byte)Structural[random.Next(Structural.Length)];
                    break;
                default:
                    var text = Encoding.UTF8.GetString([.. bytes]);
                    var swapped = text.Replace(Types[random.Next(Types.Length - 1)], Types[random.Next(Types.Length)]);
                    bytes = [.. Encoding.UTF8.GetBytes(swapped)];
                    break;
            }
        }

        return [.. bytes];
    }
}
