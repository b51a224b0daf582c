using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using P2PShare.EndToEnd.Infrastructure;
using Xunit;

namespace P2PShare.EndToEnd;

/// <summary>The user-facing commands against a real 3-peer cluster, through deploy/local/p2pshare.</summary>
[Collection(LocalClusterCollection.Name)]
public sealed class ClusterServiceTests(LocalCluster cluster) : IClassFixture<LocalCluster>
{
    [Fact]
    public async Task Peers_lists_every_started_peer_with_its_quotas()
    {
        var result = await cluster.CliAsync("peers", "--json");

        Assert.True(result.ExitCode == 0, result.ToString());
        using var json = JsonDocument.Parse(result.StdoutBytes);
        var peers = json.RootElement.EnumerateArray().ToDictionary(p => p.GetProperty("name").GetString()!);
        Assert.Equal(cluster.PeerNames.Order(), peers.Keys.Order());
        foreach (var (name, peer) in peers)
        {
            Assert.True(peer.GetProperty("memoryQuota").GetInt64() > 0, $"{name} memoryQuota: {peer}");
            Assert.True(peer.GetProperty("diskQuota").GetInt64() > 0, $"{name} diskQuota: {peer}");
            Assert.False(string.IsNullOrWhiteSpace(peer.GetProperty("gateway").GetString()), $"{name} gateway: {peer}");
        }
    }

    [Fact]
    public async Task Memory_value_set_on_each_peer_reads_back_from_that_peer()
    {
        foreach (var peer in cluster.PeerNames)
        {
            var key = UniqueName("mem");
            var value = $"value stored on {peer} {Guid.NewGuid()}";

            var set = await cluster.CliAsync("mem", "set", key, value, "--peer", peer);
            Assert.True(set.ExitCode == 0, set.ToString());
            var get = await cluster.CliAsync("mem", "get", key, "--peer", peer);

            Assert.True(get.ExitCode == 0, get.ToString());
            Assert.Equal(Encoding.UTF8.GetBytes(value), get.StdoutBytes);
        }
    }

    [Fact]
    public async Task Memory_value_from_a_file_comes_back_as_the_same_raw_bytes()
    {
        var bytes = RandomNumberGenerator.GetBytes(64 * 1024);
        var local = Path.Combine(cluster.ClusterDir, UniqueName("value") + ".bin");
        await File.WriteAllBytesAsync(local, bytes);
        var key = UniqueName("mem-binary");

        var set = await cluster.CliAsync("mem", "set", key, "@" + local, "--peer", "peer-2");
        Assert.True(set.ExitCode == 0, set.ToString());
        var get = await cluster.CliAsync("mem", "get", key, "--peer", "peer-2");

        Assert.True(get.ExitCode == 0, get.ToString());
        Assert.Equal(bytes, get.StdoutBytes);
    }

    [Fact]
    public async Task Getting_a_missing_key_exits_3_with_one_error_line()
    {
        var result = await cluster.CliAsync("mem", "get", UniqueName("missing"), "--peer", "peer-1");

        Assert.True(result.ExitCode == 3, result.ToString());
        Assert.Single(result.StderrLines);
        Assert.StartsWith("error:", result.Stderr);
        Assert.Empty(result.StdoutBytes);
    }

    [Theory]
    [InlineData("peer-1")]
    [InlineData("peer-3")]
    public async Task File_put_then_get_returns_identical_bytes(string peer)
    {
        var content = RandomNumberGenerator.GetBytes(5 * 1024 * 1024);
        var upload = Path.Combine(cluster.ClusterDir, UniqueName("upload") + ".bin");
        var download = Path.Combine(cluster.ClusterDir, UniqueName("download") + ".bin");
        await File.WriteAllBytesAsync(upload, content);
        var remote = UniqueName("file") + ".bin";

        var put = await cluster.CliAsync("file", "put", upload, "--name", remote, "--peer", peer);
        Assert.True(put.ExitCode == 0, put.ToString());
        var stat = await cluster.CliAsync("file", "stat", remote, "--peer", peer);
        Assert.True(stat.ExitCode == 0, stat.ToString());
        var get = await cluster.CliAsync("file", "get", remote, "-o", download, "--peer", peer);

        Assert.True(get.ExitCode == 0, get.ToString());
        Assert.Equal(
            Convert.ToHexString(SHA256.HashData(content)),
            Convert.ToHexString(SHA256.HashData(await File.ReadAllBytesAsync(download))));
    }

    [Theory]
    [InlineData("../x")]
    [InlineData("/etc/passwd")]
    public async Task File_name_that_escapes_the_store_is_rejected_with_exit_2(string badName)
    {
        var upload = Path.Combine(cluster.ClusterDir, UniqueName("small") + ".txt");
        await File.WriteAllTextAsync(upload, "hello");

        var result = await cluster.CliAsync("file", "put", upload, "--name", badName, "--peer", "peer-2");

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Single(result.StderrLines);
        Assert.StartsWith("error:", result.Stderr);
    }

    [Fact]
    public async Task Run_prints_the_result_and_json_names_the_executing_peer()
    {
        var plain = await cluster.CliAsync("run", "--code", "int main(int x) => x * x;", "--args", "[7]");
        Assert.True(plain.ExitCode == 0, plain.ToString());
        Assert.Equal("49", plain.Stdout.Trim());

        var json = await cluster.CliAsync("run", "--code", "int main(int x) => x + 1;", "--args", "[41]", "--json");
        Assert.True(json.ExitCode == 0, json.ToString());
        using var doc = JsonDocument.Parse(json.StdoutBytes);
        Assert.Equal("Succeeded", doc.RootElement.GetProperty("status").GetString());
        Assert.Equal(42, doc.RootElement.GetProperty("result").GetInt32());
        Assert.Contains(doc.RootElement.GetProperty("executedBy").GetString(), cluster.PeerNames);
        // Job ids name the origin (the peer behind the CLI's gateway); attempts name where it ran.
        Assert.StartsWith(doc.RootElement.GetProperty("origin").GetString() + ":", doc.RootElement.GetProperty("jobId").GetString());
        var attempt = Assert.Single(doc.RootElement.GetProperty("attempts").EnumerateArray());
        Assert.Equal(doc.RootElement.GetProperty("executedBy").GetString(), attempt.GetProperty("peer").GetString());
    }

    [Fact]
    public async Task Confidential_run_stays_on_the_origin_and_a_hostile_program_is_one_error_line()
    {
        var confidential = await cluster.CliAsync("run", "--confidential", "--origin", "peer-3", "--code", "int main() => 1;", "--json");
        Assert.True(confidential.ExitCode == 0, confidential.ToString());
        using (var doc = JsonDocument.Parse(confidential.StdoutBytes))
            Assert.Equal("peer-3", doc.RootElement.GetProperty("executedBy").GetString());

        var hostile = await cluster.CliAsync("run", "--code", "string main() => System.IO.File.ReadAllText(\"/etc/passwd\");");
        Assert.Equal(7, hostile.ExitCode);
        var line = Assert.Single(hostile.StderrLines);
        Assert.Contains("NotAllowed: System.IO.File.ReadAllText", line);
        Assert.DoesNotContain("root:", hostile.Stdout);
    }

    [Fact]
    public async Task Detached_job_can_be_waited_for_and_listed()
    {
        var detached = await cluster.CliAsync("run", "--detach", "--code", "int main() => 5;");
        Assert.True(detached.ExitCode == 0, detached.ToString());
        var jobId = detached.Stdout.Trim();
        Assert.Matches("^peer-[0-9]+:[0-9a-f]{12}$", jobId);

        var wait = await cluster.CliAsync("job", "wait", jobId, "--json");
        Assert.True(wait.ExitCode == 0, wait.ToString());
        using (var doc = JsonDocument.Parse(wait.StdoutBytes))
            Assert.Equal(5, doc.RootElement.GetProperty("result").GetInt32());

        var list = await cluster.CliAsync("job", "ls", "--json");
        Assert.True(list.ExitCode == 0, list.ToString());
        using var all = JsonDocument.Parse(list.StdoutBytes);
        Assert.Contains(all.RootElement.EnumerateArray(), j => j.GetProperty("jobId").GetString() == jobId);
    }

    private static string UniqueName(string prefix) => $"e2e-{prefix}-{Guid.NewGuid():N}";
}
