using System.Globalization;

namespace P2PShare.Benchmarks;

/// <summary>redis-benchmark with the mem scenario's shape: SET and GET of 64-byte values at the same concurrency.</summary>
internal static class Redis
{
    public static async Task<(double OpsPerSec, double P99Ms)> BenchmarkAsync(int port, int clients, int requests)
    {
        var run = await Processes.RunAsync("redis-benchmark",
            ["-p", port.ToString(CultureInfo.InvariantCulture), "-t", "set,get", "-d", "64", "-c", clients.ToString(CultureInfo.InvariantCulture),
             "-n", requests.ToString(CultureInfo.InvariantCulture), "--csv"]);
        if (run.ExitCode != 0) throw new InvalidOperationException($"redis-benchmark failed: {run.Stderr.Trim()}");
        // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
        var rows = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => l.Split(',').Select(f => f.Trim('"')).ToArray())
            .Where(f => f.Length >= 7 && (f[0] == "SET" || f[0] == "GET"))
            .ToList();
        if (rows.Count == 0) throw new InvalidOperationException($"redis-benchmark printed no SET/GET rows: {run.Stdout}");
        double Field(string[] f, int i) => double.Parse(f[i], CultureInfo.InvariantCulture);
        // SET and GET ran one after the other with equal counts: the mixed rate is their harmonic mean.
        var rate = rows.Count / rows.Sum(f => 1 / Field(f, 1));
        return (Math.Round(rate, 1), rows.Max(f => Field(f, 6)));
    }
}
