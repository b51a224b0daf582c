using System.Net;
using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;
using P2PShare.Compute;
using P2PShare.Status;
using P2PShare.Tests.Support;
using P2PShare.Tracker;

namespace P2PShare.Tests.Http;

/// <summary>The peer's HTTP host on two real peer hosts: status API, page, probes, metrics, dashboard.</summary>
public sealed class PeerHttpTests(WebPeerCluster cluster) : IClassFixture<WebPeerCluster>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Status_api_shows_the_trackers_peers_with_the_fields_of_peers_json()
    {
        foreach (var peer in cluster.Peers)
        {
            var tracked = (await peer.Grains.GetTracker().GetPeersAsync()).ToDictionary(p => p.Name);
            using var status = await peer.GetJsonAsync("api/status");
            var root = status.RootElement;

            Assert.Equal(peer.Name, root.GetProperty("servedBy").GetString());
            Assert.True(root.GetProperty("dashboard").GetBoolean());
            var peers = root.GetProperty("peers").EnumerateArray().ToList();
            Assert.Equal(["peer-1", "peer-2"], peers.Select(p => p.GetProperty("name").GetString()));
            // Same names and meanings as `p2pshare peers --json`, which prints PeerView too.
            var expectedFields = typeof(PeerView).GetProperties(BindingFlags.Public | BindingFlags.Instance)
                .Select(p => JsonNamingPolicy.CamelCase.ConvertName(p.Name)).Order();
            foreach (var row in peers)
            {
                Assert.Equal(expectedFields, row.EnumerateObject().Select(p => p.Name).Order());
                var t = tracked[row.GetProperty("name").GetString()!].Report;
                Assert.Equal(t.Gateway, row.GetProperty("gateway").GetString());
                Assert.Equal(t.Silo.ToString(), row.GetProperty("silo").GetString());
                Assert.Equal(t.Slots, row.GetProperty("slots").GetInt32());
                Assert.Equal(t.MemoryQuota, row.GetProperty("memoryQuota").GetInt64());
                Assert.Equal(t.DiskQuota, row.GetProperty("diskQuota").GetInt64());
                Assert.Equal(t.StartedUtc, row.GetProperty("startedUtc").GetDateTime());
                Assert.Contains("csharp", row.GetProperty("runtimes").EnumerateArray().Select(r => r.GetString()));
            }

            var summary = root.GetProperty("cluster");
            Assert.Equal(2, summary.GetProperty("peers").GetInt32());
            Assert.Equal(peers.Sum(p => p.GetProperty("slots").GetInt32()), summary.GetProperty("slots").GetInt32());
            Assert.Equal(peers.Sum(p => p.GetProperty("diskQuota").GetInt64()), summary.GetProperty("diskQuota").GetInt64());
        }
    }

    [Fact]
    public async Task Status_api_lists_a_finished_job_with_its_peer_and_timings_on_every_peer()
    {
        var job = await cluster.Peer2.RunAsync(new TaskSpec("int main(int x) => x * x;", null, "[12]", true, null, "http-test", null));
        Assert.Equal(JobStatus.Succeeded, job.Status);

        foreach (var peer in cluster.Peers)
        {
            JsonElement row = default;
            await Eventually.TrueAsync(async () =>
            {
                using var status = await peer.GetJsonAsync("api/status");
                var match = status.RootElement.GetProperty("jobs").EnumerateArray()
                    .Where(j => j.GetProperty("jobId").GetString() == job.JobId).ToList();
                if (match.Count == 0) return false;
                row = match[0].Clone();
                return true;
            }, Patience, $"{peer.Name}'s /api/status lists job {job.JobId}");

            Assert.Equal("Succeeded", row.GetProperty("status").GetString());
            Assert.Equal("peer-2", row.GetProperty("executedBy").GetString());
            Assert.Equal("peer-2", row.GetProperty("origin").GetString());
            Assert.Equal("http-test", row.GetProperty("submitter").GetString());
            Assert.True(row.GetProperty("runMs").GetDouble() > 0, row.ToString());
            Assert.False(row.TryGetProperty("result", out _), "the status never carries results");
        }
    }

    [Fact]
    public async Task Disk_usage_in_the_status_follows_an_upload()
    {
        var before = await DiskUsedAsync(cluster.Peer1, "peer-2");
        var bytes = new byte[200_000];
        Random.Shared.NextBytes(bytes);

        await cluster.Peer1.UploadAsync("peer-2", $"status/{Guid.NewGuid():N}.bin", bytes);

        await Eventually.TrueAsync(async () => await DiskUsedAsync(cluster.Peer1, "peer-2") == before + bytes.Length,
            Patience, "peer-2's disk use grows by the upload in peer-1's /api/status");
    }

    [Fact]
    public async Task Metrics_count_tasks_files_and_worker_restarts_of_their_own_peer_only()
    {
        var bytes = new byte[123_457];
        Random.Shared.NextBytes(bytes);
        await cluster.Peer2.UploadAsync("peer-2", $"metrics/{Guid.NewGuid():N}.bin", bytes);
        var ok = await cluster.Peer2.RunAsync(new TaskSpec("int main() => 7;", null, "[]", true, null, "metrics", null));
        var hang = await cluster.Peer2.RunAsync(new TaskSpec("int main() { while (true) { } }", null, "[]", true, TimeSpan.FromMilliseconds(300), "metrics", null));
        Assert.Equal(JobStatus.Succeeded, ok.Status);
        Assert.Equal(JobStatus.TimedOut, hang.Status);

        string scrape = "";
        await Eventually.TrueAsync(async () =>
        {
            scrape = await cluster.Peer2.MetricsAsync();
            return PrometheusText.Sum(scrape, "p2pshare_workers_restarts_total") >= 1
                && PrometheusText.Sum(scrape, "p2pshare_tasks_failed_total", "error_type=\"timed_out\"") >= 1;
        }, Patience, "peer-2's /metrics counts the timed-out task and its replaced worker");

        Assert.True(PrometheusText.Sum(scrape, "p2pshare_file_transferred_bytes_total", "direction=\"in\"") >= bytes.Length, scrape);
        Assert.True(PrometheusText.Sum(scrape, "p2pshare_disk_used_bytes") >= bytes.Length, scrape);
        Assert.True(PrometheusText.Sum(scrape, "p2pshare_tasks_submitted_total", "language=\"csharp\"") >= 2, scrape);
        Assert.True(PrometheusText.Sum(scrape, "p2pshare_tasks_completed_total", "status=\"succeeded\"") >= 1, scrape);
        Assert.True(PrometheusText.Sum(scrape, "p2pshare_tasks_completed_total", "status=\"timed_out\"") >= 1, scrape);
        Assert.True(PrometheusText.Sum(scrape, "p2pshare_routing_decisions_total", "outcome=\"origin\"") >= 2, scrape);
        Assert.True(PrometheusText.Sum(scrape, "p2pshare_task_run_duration_seconds_count") >= 2, scrape);
        Assert.True(PrometheusText.Sum(scrape, "p2pshare_task_queue_duration_seconds_bucket", "le=\"+Inf\"") >= 2, scrape);
        Assert.NotNull(PrometheusText.Sum(scrape, "p2pshare_scheduler_queue_length"));
        Assert.NotNull(PrometheusText.Sum(scrape, "p2pshare_memory_keys"));

        // peer-1 received no file and ran none of these: a scrape shows only its own silo.
        var other = await cluster.Peer1.MetricsAsync();
        Assert.Null(PrometheusText.Sum(other, "p2pshare_file_transferred_bytes_total", "direction=\"in\""));
        Assert.Equal(0, PrometheusText.Sum(other, "p2pshare_disk_used_bytes"));
        Assert.Null(PrometheusText.Sum(other, "p2pshare_workers_restarts_total"));
    }

    [Fact]
    public async Task Health_and_readiness_answer_on_every_peer()
    {
        foreach (var peer in cluster.Peers)
        {
            using var health = await peer.GetJsonAsync("healthz");
            Assert.Equal("alive", health.RootElement.GetProperty("status").GetString());
            Assert.Equal(peer.Name, health.RootElement.GetProperty("peer").GetString());

            using var ready = await peer.GetJsonAsync("readyz");
            var r = ready.RootElement;
            Assert.True(r.GetProperty("ready").GetBoolean(), r.ToString());
            Assert.Equal("active", r.GetProperty("siloStatus").GetString());
            Assert.True(r.GetProperty("registered").GetBoolean());
            Assert.Contains(r.GetProperty("trackerHost").GetString(), new[] { "peer-1", "peer-2" });
            Assert.True(r.GetProperty("workersHealthy").GetBoolean());
            Assert.Equal(JsonValueKind.Null, r.GetProperty("reason").ValueKind);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("index.html")]
    public async Task Status_page_is_one_file_that_loads_nothing_from_elsewhere(string path)
    {
        using var response = await cluster.Peer1.Http.GetAsync(path);
        var html = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        var policy = string.Join(' ', response.Headers.GetValues("Content-Security-Policy"));
        Assert.Contains("default-src 'none'", policy);
        Assert.Contains("connect-src 'self'", policy);
        Assert.Contains("fetch(\"api/status\"", html);
        Assert.DoesNotMatch(new Regex(@"<(script|link|img|iframe)[^>]+(src|href)\s*=\s*""?(https?:)?//", RegexOptions.IgnoreCase), html);
        Assert.DoesNotContain("@import", html);
    }

    [Fact]
    public async Task Orleans_dashboard_is_served_under_dashboard_when_enabled()
    {
        using var page = await cluster.Peer1.Http.GetAsync("dashboard/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("Orleans Dashboard", await page.Content.ReadAsStringAsync());

        await Eventually.TrueAsync(async () =>
        {
            using var counters = await cluster.Peer1.Http.GetAsync("dashboard/DashboardCounters");
            if (!counters.IsSuccessStatusCode) return false;
            using var json = JsonDocument.Parse(await counters.Content.ReadAsStringAsync());
            return json.RootElement.GetProperty("totalActiveHostCount").GetInt32() == 2;
        }, Patience, "the dashboard counts both silos");
    }

    private static async Task<long> DiskUsedAsync(WebPeer via, string peer)
    {
        using var status = await via.GetJsonAsync("api/status");
        return status.RootElement.GetProperty("peers").EnumerateArray()
            .Single(p => p.GetProperty("name").GetString() == peer).GetProperty("diskUsed").GetInt64();
    }
}
