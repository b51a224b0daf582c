using System.Globalization;

namespace P2PShare.Benchmarks;

/// <summary>
/// redis-benchmark runs: the same client against redis-server and against a peer's RESP port, so
/// their ratio compares servers, not clients.
/// </summary>
internal static class Redis
{
    /// <summary>The shapes issue 15 asks for: (connections, commands pipelined per connection).</summary>
    public static readonly (int Clients, int Pipeline)[] Shapes = [(8, 1), (50, 1), (50, 16)];

    /// <summary>redis-benchmark's test names; MSET sets 10 keys per command.</summary>
    public static readonly string[] Tests = ["set", "get", "mset"];

    public const int ValueBytes = 64;

    public sealed record Result(string Test, double OpsPerSec, double P99Ms);

    /// <summary>redis-benchmark with the mem scenario's shape: SET and GET of 64-byte values at the same concurrency.</summary>
    public static async Task<(double OpsPerSec, double P99Ms)> BenchmarkAsync(int port, int clients, int requests)
    {
        var rows = await RunAsync(port, "set,get", clients, pipeline: 1, requests);
        // SET and GET ran one after the other with equal counts: the mixed rate is their harmonic mean.
        var rate = rows.Count / rows.Sum(r => 1 / r.OpsPerSec);
        return (Math.Round(rate, 1), rows.Max(r => r.P99Ms));
    }

    /// <summary>One redis-benchmark run; a row per test it printed.</summary>
    public static async Task<List<Result>> RunAsync(int port, string tests, int clients, int pipeline, int requests)
    {
        var run = await Processes.RunAsync("redis-benchmark",
            ["-p", Text(port), "-t", tests, "-d", Text(ValueBytes), "-c", Text(clients), "-P", Text(pipeline), "-n", Text(requests), "--csv"]);
        if (run.ExitCode != 0) throw new InvalidOperationException($"redis-benchmark failed: {run.Stderr.Trim()}");
        // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
        var rows = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => l.Split(',').Select(f => f.Trim('"')).ToArray())
            .Where(f => f.Length >= 7 && f[0] != "test")
            .Select(f => new Result(Sortable(f[0]), Field(f, 1), Field(f, 6)))
            .ToList();
        if (rows.Count == 0) throw new InvalidOperationException($"redis-benchmark printed no result rows: {run.Stdout.Trim()} {run.Stderr.Trim()}");
        return rows;
    }

    // redis-benchmark names the MSET test "MSET (10 keys)".
    private static string Sortable(string test) => test.Split(' ')[0];

    private static double Field(string[] fields, int index) => double.Parse(fields[index], CultureInfo.InvariantCulture);

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);
}
