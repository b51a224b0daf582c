using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace P2PShare.Benchmarks;

/// <summary>One endpoint's figures in the legacy scenario.</summary>
internal sealed record LegacyFigures(string Endpoint, double TasksPerSec, double P50Ms, double P99Ms, double MemOpsPerSec, double MemP99Ms);

/// <summary>
/// The seed-protocol port driven the way the original system's client drives it: one TCP connection
/// per request, a 4-byte big-endian length and JSON. The same client can be pointed at the original
/// Python system's peer port for a side-by-side comparison (<c>--legacy HOST:PORT</c>).
/// </summary>
internal static class Legacy
{
    /// <summary>HOST:PORT with a port in range, or null.</summary>
    public static (string Host, int Port)? TryParseEndpoint(string endpoint)
    {
        var colon = endpoint.LastIndexOf(':');
        if (colon <= 0) return null;
        return int.TryParse(endpoint.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port)
            && port is > 0 and < 65536
            ? (endpoint[..colon], port)
            : null;
    }

    public static async Task<LegacyFigures> RunAsync(string endpoint, int clients, int count, bool quick)
    {
        var (host, port) = TryParseEndpoint(endpoint) ?? throw new InvalidOperationException($"not HOST:PORT: {endpoint}");
        // Warm-up: the Python workers are started and the program is cached.
        for (var i = 0; i < 3; i++) await CallAsync(host, port, Task(i));

        var taskSamples = new Samples();
        var taskClock = await ConcurrentlyAsync(clients, count, taskSamples, async n =>
        {
            var reply = await CallAsync(host, port, Task(n));
            if (reply["result"]?.GetValue<long>() != (long)n * n) throw new InvalidOperationException($"CPU_TASK answered {reply.ToJsonString()}");
        });

        var memCount = quick ? 200 : 4000;
        var memSamples = new Samples();
        var memClock = await ConcurrentlyAsync(clients, memCount, memSamples, async n =>
        {
            var key = $"legacy-bench-{n % 64}";
            var reply = n % 2 == 0
                ? await CallAsync(host, port, new JsonObject { ["type"] = "SET_MEM", ["key"] = key, ["value"] = new string('x', 64) })
                : await CallAsync(host, port, new JsonObject { ["type"] = "GET_MEM", ["key"] = key });
            if ((string?)reply["type"] == "ERROR") throw new InvalidOperationException(reply.ToJsonString());
        });

        return new LegacyFigures(endpoint, Samples.Round(count / taskClock.TotalSeconds), taskSamples.Percentile(50), taskSamples.Percentile(99),
            Samples.Round(memCount / memClock.TotalSeconds), memSamples.Percentile(99));
    }

    private static JsonObject Task(int n) => new()
    {
        ["type"] = "CPU_TASK",
        ["task_id"] = $"bench-{n}",
        ["program"] = "def main(x): return x * x",
        ["function"] = "main",
        ["args"] = new JsonArray(n),
        ["confidential"] = false,
    };

    private static async Task<TimeSpan> ConcurrentlyAsync(int clients, int count, Samples samples, Func<int, Task> one)
    {
        var next = -1;
        var clock = Stopwatch.StartNew();
        await System.Threading.Tasks.Task.WhenAll(Enumerable.Range(0, clients).Select(_ => System.Threading.Tasks.Task.Run(async () =>
        {
            int n;
            while ((n = Interlocked.Increment(ref next)) < count)
            {
                var start = Stopwatch.GetTimestamp();
                await one(n);
                samples.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
        })));
        return clock.Elapsed;
    }

    private static async Task<JsonObject> CallAsync(string host, int port, JsonObject message)
    {
        using var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(host, port);
        var stream = tcp.GetStream();
        var body = Encoding.UTF8.GetBytes(message.ToJsonString());
        var frame = new byte[4 + body.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)body.Length);
        body.CopyTo(frame, 4);
        await stream.WriteAsync(frame);
        var prefix = new byte[4];
        await stream.ReadExactlyAsync(prefix);
        var reply = new byte[BinaryPrimitives.ReadUInt32BigEndian(prefix)];
        await stream.ReadExactlyAsync(reply);
        return JsonNode.Parse(reply)!.AsObject();
    }
}
