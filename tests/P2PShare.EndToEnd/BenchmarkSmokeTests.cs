using System.Text.Json;
using P2PShare.EndToEnd.Infrastructure;
using Xunit;

namespace P2PShare.EndToEnd;

/// <summary>
/// Benchmarks are not timed tests: this only checks that the benchmark tool runs every scenario at
/// a tiny size against a real cluster and prints the promised JSON fields.
/// </summary>
[Collection(LocalClusterCollection.Name)]
public sealed class BenchmarkSmokeTests(LocalCluster cluster) : IClassFixture<LocalCluster>
{
    private static string BenchDll => Path.Combine(RepoPaths.Root, "tests", "P2PShare.Benchmarks", "bin", "Release", "net10.0", "p2pshare-bench.dll");

    [Fact]
    public async Task Every_scenario_prints_its_json_line()
    {
        Assert.True(File.Exists(BenchDll), $"build tests/P2PShare.Benchmarks in Release first ({BenchDll})");
        var gateways = Enumerable.Range(0, LocalCluster.Size).SelectMany(k => new[] { "--gateway", $"127.0.0.1:{cluster.GatewayPortBase + k}" });
        var run = await cluster.RunWithClusterEnvironmentAsync("dotnet",
            [BenchDll, .. gateways, "--quick", "--tasks", "30", "--mem-seconds", "0.5", "--file-mib", "4",
             "--pid-dir", Path.Combine(cluster.ClusterDir, "run")],
            TimeSpan.FromMinutes(4));
        Assert.True(run.ExitCode == 0, run.ToString());

        var lines = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        string[] Fields(string scenario) => scenario switch
        {
            "tasks" => ["language", "tasksPerSec", "p50Ms", "p99Ms", "confidential", "cpuMsPerTask", "idleCpuMsPerSec", "sequentialP50Ms", "sequentialCpuMsPerTask"],
            "compile" => ["firstMs", "newMs", "cachedMs"],
            "balance" => ["perPeer", "makespanRatio"],
            "fairness" => ["shortTaskMs", "timeSlicing"],
            "mem" => ["concurrency", "opsPerSec", "p99Ms"],
            "file" => ["putMBps", "getMBps", "peakRssMB", "ddMBps"],
            "legacy" => ["tasksPerSec", "p50Ms", "memOpsPerSec"],
            _ => throw new InvalidOperationException(scenario),
        };
        var scenarios = lines.Select(l => l.GetProperty("scenario").GetString()!).ToList();
        Assert.Equal(["compile", "file", "tasks", "tasks", "tasks", "balance", "fairness", "mem", "mem", "legacy"], scenarios);
        foreach (var line in lines)
        {
            foreach (var field in Fields(line.GetProperty("scenario").GetString()!))
                Assert.True(line.TryGetProperty(field, out _), $"{field} missing in {line}");
        }

        // --pid-dir is given, so every tasks line has measured the CPU of both runtimes.
        var tasks = lines.Where(l => l.GetProperty("scenario").GetString() == "tasks").ToList();
        Assert.Equal(["csharp", "csharp", "python"], tasks.Select(l => l.GetProperty("language").GetString()));
        // Net of the peers' idle CPU, so a tiny run on a busy machine can come out near zero: only its presence is checked.
        Assert.All(tasks, l => Assert.Equal(JsonValueKind.Number, l.GetProperty("cpuMsPerTask").ValueKind));
        Assert.All(tasks, l => Assert.True(l.GetProperty("idleCpuMsPerSec").GetDouble() > 0, $"no CPU measured in {l}"));

        var balance = lines.Single(l => l.GetProperty("scenario").GetString() == "balance");
        Assert.Equal(300, balance.GetProperty("perPeer").EnumerateObject().Sum(p => p.Value.GetInt32()));
        Assert.True(lines.Single(l => l.GetProperty("scenario").GetString() == "file").GetProperty("putMBps").GetDouble() > 0);
    }
}
