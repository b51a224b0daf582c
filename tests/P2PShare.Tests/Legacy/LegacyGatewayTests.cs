using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using P2PShare.Legacy;
using P2PShare.Peers;
using Xunit;

namespace P2PShare.Tests.Legacy;

/// <summary>Every seed-protocol message through a raw TCP client against real in-process peers.</summary>
public sealed class LegacyGatewayTests(LegacyClusterFixture fixture) : IClassFixture<LegacyClusterFixture>
{
    private const string Square = "int main(int x) => x * x;";

    private IPeerGrain Grain(string peer) => fixture.Peers.Peer(peer);

    [Fact]
    public async Task Ping_is_answered_with_pong_and_one_connection_carries_many_requests()
    {
        await using var client = await LegacyClient.ConnectAsync(fixture.PeerPort("peer-1"));
        for (var i = 0; i < 20; i++) Assert.Equal("PONG", (string?)(await client.RequestAsync(new { type = "PING" }))["type"]);
        var unknown = await client.RequestAsync(new { type = "FROBNICATE" });
        Assert.Equal("ERROR", (string?)unknown["type"]);
        Assert.Contains("FROBNICATE", (string?)unknown["error"]);
        Assert.Equal("PONG", (string?)(await client.RequestAsync(new { type = "ping" }))["type"]);
    }

    [Fact]
    public async Task Status_describes_this_peer_like_the_original()
    {
        var reply = await LegacyClient.CallAsync(fixture.PeerPort("peer-2"), new { type = "STATUS" });
        Assert.Equal("STATUS", (string?)reply["type"]);
        Assert.Equal("OK", (string?)reply["status"]);
        Assert.Equal("peer-2", (string?)reply["peer"]);
        Assert.Equal("127.0.0.1", (string?)reply["peer_ip"]);
        Assert.Equal(fixture.PeerPort("peer-2").Port, (int)reply["peer_port"]!);
        Assert.Equal("round_robin", (string?)reply["scheduler"]!["type"]);
        Assert.NotNull(reply["scheduler"]!["stats"]!["queue_size"]);
        Assert.NotNull(reply["scheduler"]!["stats"]!["current_load"]);
        Assert.True((long)reply["memory"]!["quota_bytes"]! > 0);
        Assert.True((long)reply["storage"]!["quota_bytes"]! > 0);
        Assert.Contains("csharp", reply["runtimes"]!.AsArray().Select(r => (string?)r));
        Assert.Null(reply["error"]);
    }

    [Theory]
    [InlineData("\"test_value\"")]
    [InlineData("42")]
    [InlineData("-1.5e-7")]
    [InlineData("true")]
    [InlineData("null")]
    [InlineData("[1,\"two\",[3,{\"four\":4}],null,false]")]
    [InlineData("{\"name\":\"h\\u00e9llo \\u2603\",\"nested\":{\"deep\":[{},[]]},\"n\":12345678901234567890}")]
    public async Task Memory_values_come_back_as_the_same_json(string json)
    {
        var key = "legacy-" + Guid.NewGuid().ToString("N")[..8];
        var value = JsonNode.Parse(json);
        var set = await LegacyClient.CallAsync(fixture.PeerPort("peer-1"), new Dictionary<string, object?> { ["type"] = "SET_MEM", ["key"] = key, ["value"] = value });
        Assert.Equal("OK", (string?)set["status"]);
        Assert.Equal("SET_MEM", (string?)set["operation"]);
        Assert.Equal(key, (string?)set["key"]);

        var get = await LegacyClient.CallAsync(fixture.PeerPort("peer-1"), new { type = "GET_MEM", key });
        Assert.Equal("MEM_RESPONSE", (string?)get["type"]);
        Assert.True((bool)get["found"]!);
        Assert.True(JsonNode.DeepEquals(value, get["value"]), $"sent {json}, got {get["value"]?.ToJsonString()}");

        // What the CLI reads: the JSON text itself, in the same peer's memory.
        var stored = await Grain("peer-1").GetAsync(key);
        Assert.True(JsonNode.DeepEquals(value, JsonNode.Parse(stored)));
    }

    [Fact]
    public async Task A_missing_key_is_not_found_and_memory_is_per_peer()
    {
        var key = "legacy-" + Guid.NewGuid().ToString("N")[..8];
        await LegacyClient.CallAsync(fixture.PeerPort("peer-1"), new { type = "SET_MEM", key, value = 1 });
        var other = await LegacyClient.CallAsync(fixture.PeerPort("peer-3"), new { type = "GET_MEM", key });
        Assert.False((bool)other["found"]!);
        Assert.Null(other["value"]);
        Assert.Equal(key, (string?)other["key"]);
    }

    [Fact]
    public async Task Values_set_with_the_cli_read_back_as_json()
    {
        await Grain("peer-2").SetAsync("cli-json", Encoding.UTF8.GetBytes("{\"a\":1}"), null);
        await Grain("peer-2").SetAsync("cli-text", Encoding.UTF8.GetBytes("plain words"), null);
        await Grain("peer-2").SetAsync("cli-binary", [0xff, 0x00, 0xfe], null);
        var endpoint = fixture.PeerPort("peer-2");
        Assert.Equal(1, (int)(await LegacyClient.CallAsync(endpoint, new { type = "GET_MEM", key = "cli-json" }))["value"]!["a"]!);
        Assert.Equal("plain words", (string?)(await LegacyClient.CallAsync(endpoint, new { type = "GET_MEM", key = "cli-text" }))["value"]);
        Assert.Equal(Convert.ToBase64String([0xff, 0x00, 0xfe]), (string?)(await LegacyClient.CallAsync(endpoint, new { type = "GET_MEM", key = "cli-binary" }))["value"]);
    }

    [Fact]
    public async Task A_file_put_through_the_port_is_the_file_the_cli_gets_and_back()
    {
        var data = RandomNumberGenerator.GetBytes(1_500_000);
        var name = "legacy-" + Guid.NewGuid().ToString("N")[..8] + ".bin";
        var put = await LegacyClient.CallAsync(fixture.PeerPort("peer-3"), new { type = "PUT_FILE", filename = name, data = Convert.ToBase64String(data) });
        Assert.Equal("OK", (string?)put["status"]);
        Assert.Equal("PUT_FILE", (string?)put["operation"]);
        Assert.Equal(data.Length, (int)put["size"]!);

        // The CLI's path: the peer grain's chunked download, verified by SHA-256.
        Assert.Equal(data, await DownloadAsync(Grain("peer-3"), name));
        var info = await Grain("peer-3").StatAsync(name);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(data)), info.Sha256);

        // And the other way: uploaded by the CLI's path, fetched through the port.
        var other = RandomNumberGenerator.GetBytes(700_001);
        await UploadAsync(Grain("peer-3"), name + ".cli", other);
        var get = await LegacyClient.CallAsync(fixture.PeerPort("peer-3"), new { type = "GET_FILE", filename = name + ".cli" });
        Assert.Equal("FILE_RESPONSE", (string?)get["type"]);
        Assert.True((bool)get["found"]!);
        Assert.Equal(other.Length, (int)get["size"]!);
        Assert.Equal(other, Convert.FromBase64String((string)get["data"]!));
    }

    [Fact]
    public async Task Missing_too_large_and_badly_named_files_are_refused_and_nothing_is_stored()
    {
        var endpoint = fixture.PeerPort("peer-1");
        var missing = await LegacyClient.CallAsync(endpoint, new { type = "GET_FILE", filename = "no-such-file" });
        Assert.Equal("FILE_RESPONSE", (string?)missing["type"]);
        Assert.False((bool)missing["found"]!);
        Assert.Equal("no-such-file", (string?)missing["filename"]);

        var tooLarge = await LegacyClient.CallAsync(endpoint, new { type = "PUT_FILE", filename = "big.bin", data = Convert.ToBase64String(new byte[LegacyClusterFixture.MaxFileBytes + 1]) });
        Assert.Equal("ERROR", (string?)tooLarge["type"]);
        Assert.Contains("too large", (string?)tooLarge["error"]);
        await Assert.ThrowsAsync<NotFoundException>(() => Grain("peer-1").StatAsync("big.bin"));

        foreach (var bad in new[] { "../escape", "/etc/passwd", "" })
        {
            var reply = await LegacyClient.CallAsync(endpoint, new { type = "PUT_FILE", filename = bad, data = "aGk=" });
            Assert.Equal("ERROR", (string?)reply["type"]);
        }
    }

    [Fact]
    public async Task A_cpu_task_runs_on_a_peer_and_names_its_seed_protocol_endpoint()
    {
        var endpoints = new[] { "peer-1", "peer-2", "peer-3" }.Select(fixture.Endpoint).ToHashSet();
        var reply = await LegacyClient.CallAsync(fixture.PeerPort("peer-1"), new
        {
            type = "CPU_TASK",
            task_id = "T123",
            program = Square,
            function = "main",
            args = new[] { 7 },
            confidential = false,
            language = "csharp",
        });
        Assert.Equal("CPU_RESULT", (string?)reply["type"]);
        Assert.Equal("T123", (string?)reply["task_id"]);
        Assert.Equal(49, (int)reply["result"]!);
        Assert.Null(reply["error"]);
        Assert.Contains((string)reply["executed_by"]!, endpoints);

        // The job is an ordinary job with this peer as its origin.
        var job = await fixture.Peers.Job((string)reply["job_id"]!).GetAsync();
        Assert.Equal("peer-1", job.Origin);
        Assert.Equal("49", job.ResultJson);

        // task_id is echoed whatever its JSON type.
        var numbered = await LegacyClient.CallAsync(fixture.PeerPort("peer-1"), new { type = "CPU_TASK", task_id = 17, program = Square, args = new[] { 3 }, language = "csharp" });
        Assert.Equal(17, (int)numbered["task_id"]!);
        Assert.Equal(9, (int)numbered["result"]!);
    }

    [Fact]
    public async Task Python_is_the_default_language_on_the_port_results_exceptions_timeouts_and_confidential()
    {
        var endpoints = new[] { "peer-1", "peer-2", "peer-3" }.Select(fixture.Endpoint).ToHashSet();
        var result = await LegacyClient.CallAsync(fixture.PeerPort("peer-3"), new
        {
            type = "CPU_TASK",
            task_id = "py-1",
            program = "def main(x): return x * x",
            function = "main",
            args = new[] { 5 },
            confidential = false,
        });
        Assert.Equal(25, (int)result["result"]!);
        Assert.Null(result["error"]);
        Assert.Contains((string)result["executed_by"]!, endpoints);

        var failure = await LegacyClient.CallAsync(fixture.PeerPort("peer-3"), new { type = "CPU_TASK", task_id = "py-2", program = "def main(n):\n    return [1, 2][n]", args = new[] { 7 } });
        Assert.Null(failure["result"]);
        Assert.Contains("IndexError: list index out of range", (string?)failure["error"]);

        var slow = await LegacyClient.CallAsync(fixture.PeerPort("peer-3"), new { type = "CPU_TASK", task_id = "py-3", program = "def main():\n    while True:\n        pass", timeout = 1.5 });
        Assert.Null(slow["result"]);
        Assert.Contains("TimedOut", (string?)slow["error"]);

        for (var i = 0; i < 4; i++)
        {
            var local = await LegacyClient.CallAsync(fixture.PeerPort("peer-2"), new { type = "CPU_TASK", task_id = i, program = "def main(x): return x + 10", args = new[] { i }, confidential = true });
            Assert.Equal(i + 10, (int)local["result"]!);
            Assert.Equal(fixture.Endpoint("peer-2"), (string?)local["executed_by"]);
        }
    }

    [Fact]
    public async Task Confidential_tasks_run_where_they_arrive()
    {
        foreach (var peer in new[] { "peer-1", "peer-2", "peer-3" })
        {
            for (var i = 0; i < 3; i++)
            {
                var reply = await LegacyClient.CallAsync(fixture.PeerPort(peer), new { type = "CPU_TASK", task_id = $"c{i}", program = Square, args = new[] { i }, confidential = true, language = "csharp" });
                Assert.Equal(i * i, (int)reply["result"]!);
                Assert.Equal(fixture.Endpoint(peer), (string?)reply["executed_by"]);
            }
        }
    }

    [Fact]
    public async Task A_failing_task_is_a_result_with_an_error_not_a_protocol_error()
    {
        var reply = await LegacyClient.CallAsync(fixture.PeerPort("peer-2"), new
        {
            type = "CPU_TASK",
            task_id = "boom",
            program = "int main(int x) => 10 / x;",
            args = new[] { 0 },
            language = "csharp",
        });
        Assert.Equal("CPU_RESULT", (string?)reply["type"]);
        Assert.Null(reply["result"]);
        Assert.Contains("DivideByZeroException", (string?)reply["error"]);

        var compile = await LegacyClient.CallAsync(fixture.PeerPort("peer-2"), new { type = "CPU_TASK", program = "int main( =>", language = "csharp" });
        Assert.Equal("CPU_RESULT", (string?)compile["type"]);
        Assert.Contains("CompileError", (string?)compile["error"]);
    }

    [Theory]
    [InlineData("{\"type\":\"CPU_TASK\"}", "'program'")]
    [InlineData("{\"type\":\"CPU_TASK\",\"program\":5}", "'program'")]
    [InlineData("{\"type\":\"CPU_TASK\",\"program\":\"x\",\"args\":\"[1]\"}", "'args'")]
    [InlineData("{\"type\":\"CPU_TASK\",\"program\":\"x\",\"confidential\":\"yes\"}", "'confidential'")]
    [InlineData("{\"type\":\"CPU_TASK\",\"program\":\"x\",\"timeout\":-1}", "'timeout'")]
    [InlineData("{\"type\":\"CPU_TASK\",\"program\":\"x\",\"max_retries\":1.5}", "'max_retries'")]
    [InlineData("{\"type\":\"CPU_TASK\",\"program\":\"x\",\"priority\":[]}", "'priority'")]
    [InlineData("{\"type\":\"CPU_TASK\",\"program\":\"x\",\"language\":\"cobol\"}", "cobol")]
    [InlineData("{\"type\":\"SET_MEM\",\"value\":1}", "'key'")]
    [InlineData("{\"type\":\"SET_MEM\",\"key\":[\"k\"],\"value\":1}", "'key'")]
    [InlineData("{\"type\":\"GET_MEM\",\"key\":{}}", "'key'")]
    [InlineData("{\"type\":\"PUT_FILE\",\"filename\":\"f\"}", "'data'")]
    [InlineData("{\"type\":\"PUT_FILE\",\"filename\":\"f\",\"data\":12}", "'data'")]
    [InlineData("{\"type\":\"PUT_FILE\",\"filename\":\"f\",\"data\":\"not base64!\"}", "base64")]
    [InlineData("{\"type\":\"GET_FILE\",\"filename\":null}", "'filename'")]
    [InlineData("{\"type\":7}", "\"type\"")]
    [InlineData("{\"kind\":\"PING\"}", "\"type\"")]
    [InlineData("[\"PING\"]", "object")]
    [InlineData("\"PING\"", "object")]
    [InlineData("{\"type\":\"PING\"", "JSON")]
    [InlineData("{\"type\":\"PING\"} trailing", "JSON")]
    public async Task Malformed_messages_get_an_error_and_the_connection_stays_usable(string message, string mentioned)
    {
        await using var client = await LegacyClient.ConnectAsync(fixture.PeerPort("peer-1"));
        await client.SendAsync(Encoding.UTF8.GetBytes(message));
        var reply = await client.ReceiveAsync(TimeSpan.FromSeconds(30));
        Assert.NotNull(reply);
        Assert.Equal("ERROR", (string?)reply["type"]);
        Assert.Contains(mentioned, (string?)reply["error"]);
        Assert.Equal("PONG", (string?)(await client.RequestAsync(new { type = "PING" }))["type"]);
    }

    [Fact]
    public async Task Tracker_port_registers_original_peers_and_any_peer_can_host_it()
    {
        var tracker = fixture.TrackerPort("peer-1");
        var register = await LegacyClient.CallAsync(tracker, new { type = "REGISTER", ip = "192.0.2.10", port = 9100, cpu_load = 0.25, old_ip = (string?)null });
        Assert.Equal("STATUS", (string?)register["type"]);
        Assert.Equal("REGISTERED", (string?)register["status"]);

        var update = await LegacyClient.CallAsync(tracker, new { type = "UPDATE_LOAD", ip = "192.0.2.10", port = 9100, cpu_load = 0.5 });
        Assert.Equal("LOAD_UPDATED", (string?)update["status"]);

        // Another peer's tracker port sees the same registry.
        var status = await LegacyClient.CallAsync(fixture.TrackerPort("peer-3"), new { type = "STATUS" });
        Assert.Equal("OK", (string?)status["status"]);
        var peers = status["peers"]!.AsArray();
        Assert.Equal(peers.Count, (int)status["peer_count"]!);
        var original = Assert.Single(peers, p => (string?)p!["ip"] == "192.0.2.10");
        Assert.Equal(9100, (int)original!["port"]!);
        Assert.Equal(0.5, (double)original["cpu_load"]!);
        Assert.True((double)original["last_update"]! >= (double)original["registered_at"]!);

        var unregister = await LegacyClient.CallAsync(tracker, new { type = "UNREGISTER", ip = "192.0.2.10", port = 9100 });
        Assert.Equal("UNREGISTERED", (string?)unregister["status"]);
        status = await LegacyClient.CallAsync(tracker, new { type = "STATUS" });
        Assert.DoesNotContain(status["peers"]!.AsArray(), p => (string?)p!["ip"] == "192.0.2.10");
    }

    [Fact]
    public async Task Request_cpu_offers_the_least_loaded_seed_protocol_peer()
    {
        var tracker = fixture.TrackerPort("peer-2");
        var ours = new[] { "peer-1", "peer-2", "peer-3" }.Select(fixture.Endpoint).ToHashSet();
        var python = (await fixture.Peers.Tracker.GetPeersAsync()).Any(p => p.Report.CanRun("python"));

        // An idle original peer: as loaded as ours (0), so it is offered among them; a busy one never is.
        await LegacyClient.CallAsync(tracker, new { type = "REGISTER", ip = "192.0.2.20", port = 9000, cpu_load = 0.0 });
        await LegacyClient.CallAsync(tracker, new { type = "REGISTER", ip = "192.0.2.21", port = 9000, cpu_load = 50.0 });
        try
        {
            var offered = new HashSet<string>();
            for (var i = 0; i < 60; i++)
            {
                var reply = await LegacyClient.CallAsync(tracker, new { type = "REQUEST_CPU" });
                Assert.Equal("CPU_RESPONSE", (string?)reply["type"]);
                offered.Add($"{(string?)reply["ip"]}:{(int)reply["port"]!}");
            }

            Assert.Contains("192.0.2.20:9000", offered);
            Assert.DoesNotContain("192.0.2.21:9000", offered);
            // Our peers run Python only when python3 is installed; when they do, they are offered too.
            if (python) Assert.True(offered.Overlaps(ours), string.Join(", ", offered));
            else Assert.Equal(["192.0.2.20:9000"], offered);
        }
        finally
        {
            await LegacyClient.CallAsync(tracker, new { type = "UNREGISTER", ip = "192.0.2.20", port = 9000 });
            await LegacyClient.CallAsync(tracker, new { type = "UNREGISTER", ip = "192.0.2.21", port = 9000 });
        }
    }

    [Fact]
    public async Task Tracker_errors_are_one_line()
    {
        var tracker = fixture.TrackerPort("peer-1");
        Assert.Contains("'port'", (string?)(await LegacyClient.CallAsync(tracker, new { type = "REGISTER", ip = "10.0.0.1", port = 70000 }))["error"]);
        Assert.Contains("'ip'", (string?)(await LegacyClient.CallAsync(tracker, new { type = "REGISTER", port = 9000 }))["error"]);
        Assert.Contains("'cpu_load'", (string?)(await LegacyClient.CallAsync(tracker, new { type = "UPDATE_LOAD", ip = "10.0.0.1", port = 9000, cpu_load = "high" }))["error"]);
        Assert.Contains("CPU_TASK", (string?)(await LegacyClient.CallAsync(tracker, new { type = "CPU_TASK", program = "x" }))["error"]);
        Assert.Equal("PONG", (string?)(await LegacyClient.CallAsync(tracker, new { type = "PING" }))["type"]);
    }

    internal static async Task<byte[]> DownloadAsync(IPeerGrain peer, string name)
    {
        var ticket = await peer.OpenDownloadAsync(name);
        using var buffer = new MemoryStream();
        while (buffer.Length < ticket.File.Size)
            buffer.Write(await peer.ReadChunkAsync(ticket.DownloadId, buffer.Length, ticket.MaxChunkBytes));
        await peer.CloseDownloadAsync(ticket.DownloadId);
        return buffer.ToArray();
    }

    internal static async Task UploadAsync(IPeerGrain peer, string name, byte[] data)
    {
        var ticket = await peer.BeginUploadAsync(name, data.Length);
        for (var offset = 0; offset < data.Length; offset += ticket.MaxChunkBytes)
            await peer.WriteChunkAsync(ticket.UploadId, offset, data.AsSpan(offset, Math.Min(ticket.MaxChunkBytes, data.Length - offset)).ToArray());
        await peer.CompleteUploadAsync(ticket.UploadId, Convert.ToHexStringLower(SHA256.HashData(data)));
    }
}
