using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using P2PShare.Peer;
using P2PShare.Peers;
using P2PShare.Tests.Postgres;
using P2PShare.Tests.Support;
using P2PShare.Tracker;

namespace P2PShare.Tests.Http;

/// <summary>Readiness failures and start-up failures of the HTTP host, each on a peer of its own.</summary>
public sealed class PeerReadinessTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Readyz_is_503_with_the_reason_when_workers_cannot_start_or_the_tracker_is_slow()
    {
        using var data = new TempDirectory();
        var notAWorker = Path.Combine(data.Path, "not-a-worker.dll");
        await File.WriteAllTextAsync(notAWorker, "this is not an assembly");
        var ports = FreeTcpPorts.Pick(2);
        var settings = WebPeer.BaseSettings("peer-1", Path.Combine(data.Path, "peer-1"), ports[0], ports[1], null);
        settings["Compute:WorkerPath"] = notAWorker;
        var tracker = new SlowTracker();
        await using var peer = await WebPeer.StartAsync(settings, silo => silo.Services.AddSingleton<IIncomingGrainCallFilter>(tracker));

        JsonElement report = default;
        await Eventually.TrueAsync(async () =>
        {
            (var code, report) = await ReadyzAsync(peer);
            return code == HttpStatusCode.ServiceUnavailable && report.GetProperty("reason").GetString()!.Contains("worker processes cannot start");
        }, Patience, "/readyz says the worker pool is broken");
        Assert.False(report.GetProperty("ready").GetBoolean());
        Assert.False(report.GetProperty("workersHealthy").GetBoolean());
        Assert.True(report.GetProperty("trackerReachable").GetBoolean(), report.ToString());

        tracker.Slow = true;
        var (slowCode, slow) = await ReadyzAsync(peer);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, slowCode);
        Assert.Equal("the tracker did not answer within 2 s", slow.GetProperty("reason").GetString());
        Assert.False(slow.GetProperty("trackerReachable").GetBoolean());

        using var status = await peer.Http.GetAsync("api/status");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status.StatusCode);
        using var error = JsonDocument.Parse(await status.Content.ReadAsStringAsync());
        Assert.StartsWith("the cluster status is unavailable", error.RootElement.GetProperty("error").GetString());
        tracker.Slow = false;

        // Liveness never depends on the cluster.
        using var health = await peer.Http.GetAsync("healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task A_taken_http_port_fails_the_start_with_one_line_naming_it()
    {
        using var data = new TempDirectory();
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var httpPort = ((IPEndPoint)taken.LocalEndpoint).Port;
        var ports = FreeTcpPorts.Pick(2);
        var settings = WebPeer.BaseSettings("peer-1", Path.Combine(data.Path, "peer-1"), ports[0], ports[1], null);
        settings["Http:Port"] = httpPort.ToString();

        var failure = await Assert.ThrowsAnyAsync<Exception>(() => WebPeer.StartAsync(settings));

        var line = StartupErrors.Describe(failure);
        Assert.Contains("HTTP port is already in use", line);
        Assert.Contains($":{httpPort}", line);
        Assert.DoesNotContain('\n', line);
    }

    private static async Task<(HttpStatusCode, JsonElement)> ReadyzAsync(WebPeer peer)
    {
        using var response = await peer.Http.GetAsync("readyz");
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return (response.StatusCode, json.RootElement.Clone());
    }

    /// <summary>Holds every call to the tracker for longer than readiness waits, while switched on.</summary>
    private sealed class SlowTracker : IIncomingGrainCallFilter
    {
        public volatile bool Slow;

        public async Task Invoke(IIncomingGrainCallContext context)
        {
            if (Slow && context.Grain is ITrackerGrain) await Task.Delay(TimeSpan.FromSeconds(3));
            await context.Invoke();
        }
    }
}
