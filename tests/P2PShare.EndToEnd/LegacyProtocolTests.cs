using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using P2PShare.EndToEnd.Infrastructure;
using Xunit;

namespace P2PShare.EndToEnd;

/// <summary>
/// The seed protocol on a real cluster started by cluster.sh, driven by our own stdlib-only Python
/// client (tests/legacy-client/p2pshare_legacy.py) as a separate process, beside the real CLI.
/// </summary>
[Collection(LocalClusterCollection.Name)]
public sealed class LegacyProtocolTests(LocalCluster cluster) : IClassFixture<LocalCluster>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    private Task<ProcessResult> PythonClientAsync(int port, params string[] arguments) =>
        ProcessRunner.RunAsync("python3", [RepoPaths.LegacyClient, "--port", port.ToString(), .. arguments], Timeout);

    [Fact]
    public async Task The_python_client_self_test_passes_against_every_message_type()
    {
        for (var i = 0; i < LocalCluster.Size; i++)
        {
            var result = await ProcessRunner.RunAsync("python3",
                [RepoPaths.LegacyClient, "selftest", "--peer", $"127.0.0.1:{cluster.LegacyPortBase + i}", "--tracker", $"127.0.0.1:{cluster.TrackerLegacyPort}"],
                Timeout);
            Assert.True(result.ExitCode == 0, result.ToString());
            Assert.Contains("0 failed", result.Stdout);
            Assert.DoesNotContain("FAIL", result.Stdout);
        }
    }

    [Fact]
    public async Task Files_put_through_the_port_are_the_files_the_cli_gets_and_back()
    {
        using var dir = new TempFolder();
        var original = Path.Combine(dir.Path, "original.bin");
        var data = RandomNumberGenerator.GetBytes(2_000_000);
        await File.WriteAllBytesAsync(original, data);

        var put = await PythonClientAsync(cluster.LegacyPortBase + 1, "put-file", "from-python.bin", original);
        Assert.True(put.ExitCode == 0, put.ToString());
        var viaCli = Path.Combine(dir.Path, "via-cli.bin");
        var get = await cluster.CliAsync("file", "get", "from-python.bin", "-o", viaCli, "--peer", "peer-2");
        Assert.True(get.ExitCode == 0, get.ToString());
        Assert.Equal(data, await File.ReadAllBytesAsync(viaCli));

        var cliPut = await cluster.CliAsync("file", "put", original, "--name", "from-cli.bin", "--peer", "peer-3");
        Assert.True(cliPut.ExitCode == 0, cliPut.ToString());
        var viaPython = Path.Combine(dir.Path, "via-python.bin");
        var pyGet = await PythonClientAsync(cluster.LegacyPortBase + 2, "get-file", "from-cli.bin", viaPython);
        Assert.True(pyGet.ExitCode == 0, pyGet.ToString());
        Assert.Equal(data, await File.ReadAllBytesAsync(viaPython));
    }

    [Fact]
    public async Task Memory_set_through_the_port_reads_back_with_the_cli_as_its_json()
    {
        var set = await PythonClientAsync(cluster.LegacyPortBase, "set-mem", "from-python", """{"n": [1, 2, 3], "s": "text"}""");
        Assert.True(set.ExitCode == 0, set.ToString());
        var get = await cluster.CliAsync("mem", "get", "from-python", "--peer", "peer-1");
        Assert.True(get.ExitCode == 0, get.ToString());
        using var json = JsonDocument.Parse(get.StdoutBytes);
        Assert.Equal(3, json.RootElement.GetProperty("n").GetArrayLength());
        Assert.Equal("text", json.RootElement.GetProperty("s").GetString());

        var cliSet = await cluster.CliAsync("mem", "set", "from-cli", "[true, null]", "--peer", "peer-1");
        Assert.True(cliSet.ExitCode == 0, cliSet.ToString());
        var pyGet = await PythonClientAsync(cluster.LegacyPortBase, "get-mem", "from-cli");
        Assert.True(pyGet.ExitCode == 0, pyGet.ToString());
        using var reply = JsonDocument.Parse(pyGet.Stdout);
        var value = reply.RootElement.GetProperty("value");
        Assert.Equal(JsonValueKind.Array, value.ValueKind);
        Assert.Equal([JsonValueKind.True, JsonValueKind.Null], value.EnumerateArray().Select(v => v.ValueKind));
    }

    [Fact]
    public async Task Python_task_submitted_on_the_port_is_a_job_the_cli_can_read()
    {
        var run = await PythonClientAsync(cluster.LegacyPortBase + 2, "cpu", "--program", "def main(n):\n    return sum(range(1, n + 1))", "--args", "[100]");
        Assert.True(run.ExitCode == 0, run.ToString());
        using var reply = JsonDocument.Parse(run.Stdout);
        Assert.Equal(5050, reply.RootElement.GetProperty("result").GetInt32());
        var jobId = reply.RootElement.GetProperty("job_id").GetString()!;
        Assert.StartsWith("peer-3:", jobId);

        var job = await cluster.CliAsync("job", "get", jobId, "--json");
        Assert.True(job.ExitCode == 0, job.ToString());
        Assert.Contains("Succeeded", job.Stdout);

        // A program error is a failed task (exit 1 from our client), not a broken connection.
        var bad = await PythonClientAsync(cluster.LegacyPortBase, "cpu", "--program", "def main(x): return x.nope", "--args", "[1]");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("AttributeError", bad.Stdout);
    }

    [Fact]
    public async Task Cluster_status_shows_the_seed_protocol_ports()
    {
        var status = await cluster.ClusterScriptAsync(TimeSpan.FromSeconds(30), "status");
        Assert.True(status.ExitCode == 0, status.ToString());
        Assert.Contains("LEGACY", status.Stdout);
        Assert.Contains(cluster.LegacyPortBase.ToString(), status.Stdout);
        Assert.Contains($"seed-protocol tracker port: {cluster.TrackerLegacyPort}", status.Stdout);
    }

    private sealed class TempFolder : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("p2pshare-legacy-e2e-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
