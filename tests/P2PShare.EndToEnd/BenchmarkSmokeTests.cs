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
        // The second peer's seed-protocol port stands in for the original system: --legacy must run
        // the same client against it and print the ratio.
        var original = $"127.0.0.1:{cluster.LegacyPortBase + 1}";
        var run = await cluster.RunWithClusterEnvironmentAsync("dotnet",
            // Every scenario but redis, which needs a redis-server (run.sh starts one; its own tests cover the RESP port).
            [BenchDll, .. gateways, "--quick", "--scenarios", "compile,file,tasks,batch,open,balance,fairness,mem,legacy", "--tasks", "30", "--mem-seconds", "0.5", "--file-mib", "4",
             "--rate", "20", "--open-seconds", "1", "--legacy", original,
             "--pid-dir", Path.Combine(cluster.ClusterDir, "run")],
            TimeSpan.FromMinutes(5));
        Assert.True(run.ExitCode == 0, run.ToString());

        var lines = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        string[] Fields(JsonElement line) => line.GetProperty("scenario").GetString()! switch
        {
            "tasks" => ["language", "tasksPerSec", "p50Ms", "p99Ms", "confidential", "submitters", "cpuUsPerTask", "netCpuUsPerTask",
                "clientCpuUsPerTask", "idleCpuMsPerSec", "sequentialP50Ms", "sequentialCpuUsPerTask", "sequentialClientCpuUsPerTask"],
            "batch" => ["tasks", "batchSize", "tasksPerSec", "p50Ms", "p99Ms", "cpuUsPerTask", "clientCpuUsPerTask"],
            "open" => ["offeredRate", "achievedRate", "p50Ms", "p99Ms", "tasks", "sent", "late", "dropped", "finished", "failed", "abandoned",
                "cpuUsPerTask", "clientCpuUsPerTask"],
            "compile" => ["firstMs", "newMs", "cachedMs"],
            "balance" => ["perPeer", "makespanRatio", "idealMs", "cpuPerTaskMs", "slots", "cores", "parallel"],
            "fairness" => ["shortTaskMs", "timeSlicing"],
            "mem" => ["concurrency", "opsPerSec", "p99Ms"],
            "file" => ["putMBps", "getMBps", "peakRssMB", "ddMBps"],
            "legacy" => ["tasksPerSec", "p50Ms", "memOpsPerSec", "originalTasksPerSec", "originalMemOpsPerSec", "vsOriginal", "memVsOriginal"],
            var other => throw new InvalidOperationException(other),
        };
        var scenarios = lines.Select(l => l.GetProperty("scenario").GetString()!).ToList();
        Assert.Equal(["compile", "file", "tasks", "tasks", "tasks", "batch", "open", "balance", "fairness", "mem", "mem", "legacy"], scenarios);
        foreach (var line in lines)
        {
            foreach (var field in Fields(line))
                Assert.True(line.TryGetProperty(field, out _), $"{field} missing in {line}");
        }

        JsonElement Only(string scenario) => lines.Single(l => l.GetProperty("scenario").GetString() == scenario);
        static double Positive(JsonElement line, string field)
        {
            var value = line.GetProperty(field).GetDouble();
            Assert.True(double.IsFinite(value) && value > 0, $"{field} is {value} in {line}");
            return value;
        }

        // --pid-dir is given, so every tasks line has measured the cluster's CPU (peers and workers) and the client's.
        var tasks = lines.Where(l => l.GetProperty("scenario").GetString() == "tasks").ToList();
        Assert.Equal(["csharp", "csharp", "python"], tasks.Select(l => l.GetProperty("language").GetString()));
        Assert.All(tasks, l => Assert.Equal(4, l.GetProperty("submitters").GetInt32()));
        foreach (var line in tasks)
        {
            Positive(line, "tasksPerSec");
            Positive(line, "cpuUsPerTask");
            Positive(line, "sequentialCpuUsPerTask");
            Positive(line, "clientCpuUsPerTask");
            Positive(line, "idleCpuMsPerSec");
            // Net of the peers' idle CPU, so a tiny run on a busy machine can come out near zero or below: only that it is a number.
            Assert.Equal(JsonValueKind.Number, line.GetProperty("netCpuUsPerTask").ValueKind);
        }

        // The batch call ran every task (the tool fails the scenario on a missing or failed result):
        // ten times --tasks, all in one call at --quick's batch size.
        var batch = Only("batch");
        Assert.False(batch.TryGetProperty("skipped", out _), $"the batch scenario was skipped: {batch}");
        Assert.Equal(300, batch.GetProperty("tasks").GetInt32());
        Assert.Equal(300, batch.GetProperty("batchSize").GetInt32());
        Positive(batch, "tasksPerSec");
        Assert.True(Positive(batch, "p50Ms") <= Positive(batch, "p99Ms"), $"p50 above p99 in {batch}");
        Positive(batch, "cpuUsPerTask");
        Positive(batch, "clientCpuUsPerTask");

        var open = Only("open");
        Assert.Equal(20, open.GetProperty("tasks").GetInt32());
        Assert.Equal(open.GetProperty("tasks").GetInt32(), open.GetProperty("sent").GetInt32() + open.GetProperty("dropped").GetInt32());
        Assert.Equal(open.GetProperty("sent").GetInt32(),
            open.GetProperty("finished").GetInt32() + open.GetProperty("failed").GetInt32() + open.GetProperty("abandoned").GetInt32());
        Assert.True(open.GetProperty("finished").GetInt32() > 0, $"no open-loop task finished: {open}");
        Positive(open, "achievedRate");
        Positive(open, "p99Ms");
        Positive(open, "cpuUsPerTask");

        var balance = Only("balance");
        Assert.Equal(300, balance.GetProperty("perPeer").EnumerateObject().Sum(p => p.Value.GetInt32()));
        Assert.Equal(Environment.ProcessorCount, balance.GetProperty("cores").GetInt32());
        Assert.Equal(Math.Min(balance.GetProperty("slots").GetInt32(), Environment.ProcessorCount), balance.GetProperty("parallel").GetInt32());
        var ideal = balance.GetProperty("idealMs").GetDouble();
        // Both are rounded to 3 decimals in the JSON, hence the tolerance.
        Assert.Equal(300 * Positive(balance, "cpuPerTaskMs") / balance.GetProperty("parallel").GetInt32(), ideal, (ideal * 0.001) + 0.5);
        Positive(balance, "makespanRatio");

        var legacy = Only("legacy");
        Assert.Equal(original, legacy.GetProperty("originalEndpoint").GetString());
        Assert.Equal(Positive(legacy, "tasksPerSec") / Positive(legacy, "originalTasksPerSec"), Positive(legacy, "vsOriginal"), 0.01);
        Assert.True(Only("file").GetProperty("putMBps").GetDouble() > 0);
    }
}
