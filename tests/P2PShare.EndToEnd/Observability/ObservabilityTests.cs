using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using P2PShare.EndToEnd.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace P2PShare.EndToEnd.Observability;

/// <summary>
/// Seeing the cluster on a real 3-peer cluster started by cluster.sh: the status page in headless
/// Chromium against <c>peers --json</c>, the Orleans Dashboard, the probes and metrics of every peer
/// process, and the CLI's <c>watch</c> and <c>status</c>.
/// </summary>
[Collection(LocalClusterCollection.Name)]
public sealed class ObservabilityTests(ObservedCluster cluster, ITestOutputHelper output) : IClassFixture<ObservedCluster>
{
    private const float PageTimeoutMs = 30_000;

    /// <summary>Burns CPU for the given seconds, so the page has running work to show.</summary>
    private const string Busy = "long main(double seconds) { var until = DateTime.UtcNow.AddSeconds(seconds); long n = 0; while (DateTime.UtcNow < until) n++; return n; }";

    [ChromiumFact]
    public async Task Status_page_shows_what_peers_json_says_and_follows_a_task_and_a_file_without_reloading()
    {
        Assert.True(Chromium.Path is not null, Chromium.Missing);
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium.Path,
            Headless = true,
            // As root Chromium needs --no-sandbox; /dev/shm is small in containers.
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        });
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1440, Height = 900 } });
        page.SetDefaultTimeout(PageTimeoutMs);
        var loads = 0;
        page.Load += (_, _) => loads++;
        var requestedElsewhere = new List<string>();
        page.Request += (_, request) =>
        {
            if (!request.Url.StartsWith(cluster.HttpBase(1).ToString(), StringComparison.Ordinal)) requestedElsewhere.Add(request.Url);
        };

        await page.GotoAsync(cluster.HttpBase(1).ToString());
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#peers tr[data-peer]').length === 3");

        // The same peers and limits as `peers --json`.
        var listed = await PeersJsonAsync();
        var shown = await PagePeersAsync(page);
        Assert.Equal(listed.Keys.Order(), shown.Keys.Order());
        foreach (var (name, peer) in listed)
        {
            Assert.Equal(peer.GetProperty("slots").GetInt32(), shown[name].Slots);
            Assert.Equal(peer.GetProperty("memoryQuota").GetInt64(), shown[name].MemoryQuota);
            Assert.Equal(peer.GetProperty("diskQuota").GetInt64(), shown[name].DiskQuota);
            Assert.Equal(string.Join(",", peer.GetProperty("runtimes").EnumerateArray().Select(r => r.GetString())), shown[name].Runtimes);
        }

        Assert.Equal("3", await page.Locator("#peer-count").GetAttributeAsync("data-value"));

        // A file: peer-3's disk use grows by its size on the page and in `peers --json` alike.
        var before = shown["peer-3"].DiskUsed;
        var bytes = RandomNumberGenerator.GetBytes(3 * 1024 * 1024 + 17);
        var file = Path.Combine(cluster.ClusterDir, $"page-{Guid.NewGuid():N}.bin");
        await File.WriteAllBytesAsync(file, bytes);
        var put = await cluster.CliAsync("file", "put", file, "--name", "status-page/sample.bin", "--peer", "peer-3");
        Assert.True(put.ExitCode == 0, put.ToString());
        await page.WaitForFunctionAsync(
            "expected => Number(document.querySelector('#peers tr[data-peer=\"peer-3\"] [data-field=diskUsed]').dataset.value) === expected",
            before + bytes.Length);
        Assert.Equal(before + bytes.Length, (await PeersJsonAsync())["peer-3"].GetProperty("diskUsed").GetInt64());

        // Memory: a value stored on peer-2 shows as its memory use and key count.
        var set = await cluster.CliAsync("mem", "set", "status-page/sample", "@" + file, "--peer", "peer-2");
        Assert.True(set.ExitCode == 0, set.ToString());
        await page.WaitForFunctionAsync(
            "() => Number(document.querySelector('#peers tr[data-peer=\"peer-2\"] [data-field=memoryUsed]').dataset.value) >= " + bytes.Length);

        // Load, then a task: the page shows running work, then the job with its status and peer.
        for (var i = 0; i < 3; i++)
        {
            var detached = await cluster.CliAsync("run", "--detach", "--code", Busy, "--args", "[4]");
            Assert.True(detached.ExitCode == 0, detached.ToString());
        }

        await page.WaitForFunctionAsync("() => [...document.querySelectorAll('#jobs tr[data-status=\"Running\"]')].length > 0");
        var run = await cluster.CliAsync("run", "--json", "--code", "int main(int x) => x * x;", "--args", "[21]");
        Assert.True(run.ExitCode == 0, run.ToString());
        using var job = JsonDocument.Parse(run.StdoutBytes);
        var jobId = job.RootElement.GetProperty("jobId").GetString()!;
        var executedBy = job.RootElement.GetProperty("executedBy").GetString()!;
        var row = page.Locator($"#jobs tr[data-job=\"{jobId}\"][data-status=\"Succeeded\"]");
        await row.WaitForAsync();
        Assert.Equal(executedBy, await row.Locator("[data-field=executedBy]").InnerTextAsync());
        await SaveAsync(page, "status-page.png", fullPage: true);

        // It kept itself current by polling, never by reloading, and fetched nothing from elsewhere.
        Assert.Equal(1, loads);
        Assert.True(int.Parse((await page.Locator("body").GetAttributeAsync("data-refreshes"))!) >= 3);
        Assert.Empty(requestedElsewhere);
        Assert.Equal("live", await page.Locator("body").GetAttributeAsync("data-state"));

        // The Orleans Dashboard on the same port sees the three silos.
        await page.GotoAsync(new Uri(cluster.HttpBase(1), "dashboard/").ToString());
        await page.WaitForFunctionAsync("() => /active silos\\s*3/i.test(document.body.innerText)");
        try
        {
            // Only for a telling picture: its charts fill once it has profiled a few calls.
            await page.WaitForFunctionAsync("() => /req\\/sec\\s*(?!0\\.00\\b)\\d/i.test(document.body.innerText)", null,
                new PageWaitForFunctionOptions { Timeout = 15_000 });
        }
        catch (TimeoutException)
        {
            output.WriteLine("the dashboard showed no calls yet; its screenshot is of an idle cluster");
        }

        await SaveAsync(page, "dashboard.png", fullPage: false);
    }

    [Fact]
    public async Task Every_peer_process_answers_probes_and_metrics_over_http()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        for (var k = 1; k <= LocalCluster.Size; k++)
        {
            var peer = $"peer-{k}";
            using var health = await http.GetAsync(new Uri(cluster.HttpBase(k), "healthz"));
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
            Assert.Contains($"\"peer\":\"{peer}\"", await health.Content.ReadAsStringAsync());

            using var ready = await http.GetAsync(new Uri(cluster.HttpBase(k), "readyz"));
            var readyBody = await ready.Content.ReadAsStringAsync();
            Assert.True(ready.StatusCode == HttpStatusCode.OK, readyBody);
            Assert.Contains("\"ready\":true", readyBody);

            var metrics = await http.GetStringAsync(new Uri(cluster.HttpBase(k), "metrics"));
            Assert.Contains("p2pshare_disk_quota_bytes", metrics);
            Assert.Contains("p2pshare_scheduler_slots", metrics);
        }

        var status = await cluster.ClusterScriptAsync(TimeSpan.FromSeconds(60), "status");
        Assert.True(status.ExitCode == 0, status.ToString());
        Assert.Contains("HTTP", status.Stdout);
        for (var k = 1; k <= LocalCluster.Size; k++)
            // NAME PID SILO GATEWAY LEGACY REDIS HTTP STATE; the Redis port is "-" when off.
            Assert.Matches($@"peer-{k}\s+\d+\s+\d+\s+\d+\s+\d+\s+(\d+|-)\s+{cluster.HttpPortBase + k - 1}\s+ready", status.Stdout);
    }

    [Fact]
    public async Task Watch_without_a_terminal_prints_one_snapshot_per_refresh_and_stops_after_count()
    {
        var watch = await cluster.CliAsync("watch", "--count", "2", "--interval", "0.3");

        Assert.True(watch.ExitCode == 0, watch.ToString());
        Assert.Equal(2, CountOf(watch.Stdout, "P2PShare cluster at "));
        Assert.Equal(2, CountOf(watch.Stdout, "3 peers alive;"));
        // A peers-table row: the name, then its gateway (jobs tables name peers too).
        foreach (var peer in cluster.PeerNames) Assert.Equal(2, Regex.Matches(watch.Stdout, $@"│ {peer}\s+│ 127\.0\.0\.1:").Count);

        var json = await cluster.CliAsync("watch", "--count", "2", "--interval", "0.3", "--json");
        Assert.True(json.ExitCode == 0, json.ToString());
        var lines = json.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        var listed = await PeersJsonAsync();
        foreach (var line in lines)
        {
            using var snapshot = JsonDocument.Parse(line);
            var peers = snapshot.RootElement.GetProperty("peers").EnumerateArray().ToList();
            Assert.Equal(listed.Keys.Order(), peers.Select(p => p.GetProperty("name").GetString()!).Order());
            Assert.Equal(3, snapshot.RootElement.GetProperty("cluster").GetProperty("peers").GetInt32());
        }
    }

    [Fact]
    public async Task Watch_stops_cleanly_on_ctrl_c()
    {
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { RepoPaths.CliDll, "--gateway", $"127.0.0.1:{cluster.GatewayPortBase}", "watch", "--interval", "0.3" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        // The first snapshot shows it is connected and watching.
        while (await process.StandardOutput.ReadLineAsync(deadline.Token) is { } line && !line.Contains("peers alive")) { }
        var stdout = process.StandardOutput.ReadToEndAsync();

        using (var interrupt = Process.Start("kill", ["-INT", process.Id.ToString()])) await interrupt.WaitForExitAsync(deadline.Token);
        await process.WaitForExitAsync(deadline.Token);

        Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}; stderr: {await stderr}");
        Assert.Equal("", (await stderr).Trim());
        _ = await stdout;
    }

    [Fact]
    public async Task Status_opens_with_a_summary_of_the_live_peers_and_their_totals()
    {
        var listed = await PeersJsonAsync();
        var text = await cluster.CliAsync("status");
        Assert.True(text.ExitCode == 0, text.ToString());
        Assert.StartsWith("3 peers alive; tasks: ", text.Stdout);
        Assert.Contains("Tracker on", text.Stdout);

        var json = await cluster.CliAsync("status", "--json");
        Assert.True(json.ExitCode == 0, json.ToString());
        using var doc = JsonDocument.Parse(json.StdoutBytes);
        var summary = doc.RootElement.GetProperty("cluster");
        Assert.Equal(3, summary.GetProperty("peers").GetInt32());
        Assert.Equal(listed.Values.Sum(p => p.GetProperty("slots").GetInt32()), summary.GetProperty("slots").GetInt32());
        Assert.Equal(listed.Values.Sum(p => p.GetProperty("memoryQuota").GetInt64()), summary.GetProperty("memoryQuota").GetInt64());
        Assert.Equal(listed.Values.Sum(p => p.GetProperty("diskQuota").GetInt64()), summary.GetProperty("diskQuota").GetInt64());
        Assert.Contains(doc.RootElement.GetProperty("trackerHost").GetString(), listed.Keys);
    }

    private async Task<Dictionary<string, JsonElement>> PeersJsonAsync()
    {
        var result = await cluster.CliAsync("peers", "--json");
        Assert.True(result.ExitCode == 0, result.ToString());
        using var json = JsonDocument.Parse(result.StdoutBytes);
        return json.RootElement.EnumerateArray().ToDictionary(p => p.GetProperty("name").GetString()!, p => p.Clone());
    }

    private sealed record ShownPeer(int Slots, long MemoryQuota, long DiskQuota, long DiskUsed, string Runtimes);

    private static async Task<Dictionary<string, ShownPeer>> PagePeersAsync(IPage page)
    {
        var rows = await page.EvaluateAsync<JsonElement>("""
            () => [...document.querySelectorAll('#peers tr[data-peer]')].map(r => ({
              name: r.dataset.peer,
              slots: Number(r.querySelector('[data-field=tasks]').dataset.slots),
              memoryQuota: Number(r.querySelector('[data-field=memoryUsed]').dataset.quota),
              diskQuota: Number(r.querySelector('[data-field=diskUsed]').dataset.quota),
              diskUsed: Number(r.querySelector('[data-field=diskUsed]').dataset.value),
              runtimes: [...r.querySelectorAll('[data-field=runtimes] .chip')].map(c => c.textContent).join(','),
            }))
            """);
        return rows.EnumerateArray().ToDictionary(
            r => r.GetProperty("name").GetString()!,
            r => new ShownPeer(r.GetProperty("slots").GetInt32(), r.GetProperty("memoryQuota").GetInt64(),
                r.GetProperty("diskQuota").GetInt64(), r.GetProperty("diskUsed").GetInt64(), r.GetProperty("runtimes").GetString()!));
    }

    /// <summary>
    /// Screenshots go to TestResults/screenshots; with P2PSHARE_UPDATE_DOCS=1 they replace the
    /// pictures in docs/ that the README shows.
    /// </summary>
    private async Task SaveAsync(IPage page, string name, bool fullPage)
    {
        var folder = Environment.GetEnvironmentVariable("P2PSHARE_UPDATE_DOCS") == "1"
            ? Path.Combine(RepoPaths.Root, "docs")
            : Path.Combine(RepoPaths.Root, "TestResults", "screenshots");
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, name);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = fullPage });
        output.WriteLine($"screenshot: {path}");
    }

    private static int CountOf(string text, string part)
    {
        var count = 0;
        for (var i = text.IndexOf(part, StringComparison.Ordinal); i >= 0; i = text.IndexOf(part, i + part.Length, StringComparison.Ordinal)) count++;
        return count;
    }
}
