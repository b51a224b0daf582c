using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Hosting;
using P2PShare.Compute;
using P2PShare.Peer;
using P2PShare.Peers;
using P2PShare.Tests.Postgres;
using P2PShare.Tests.Support;
using P2PShare.Tracker;

namespace P2PShare.Tests.Http;

/// <summary>
/// A real peer host, built by the same <see cref="PeerHost.Build"/> as <c>p2pshare-peer</c>, running in
/// this process with localhost clustering on free ports and its HTTP host on a port the OS picks.
/// </summary>
public sealed class WebPeer : IAsyncDisposable
{
    private WebPeer(string name, IHost host, Uri http, int siloPort)
    {
        Name = name;
        Host = host;
        Http = new HttpClient { BaseAddress = http, Timeout = TimeSpan.FromSeconds(15) };
        SiloPort = siloPort;
    }

    public string Name { get; }

    public IHost Host { get; }

    public HttpClient Http { get; }

    public int SiloPort { get; }

    public IGrainFactory Grains => Host.Services.GetRequiredService<IGrainFactory>();

    /// <summary>Settings every test peer gets: fast reports, few warm workers, quiet logs.</summary>
    public static Dictionary<string, string?> BaseSettings(string name, string dataDir, int siloPort, int gatewayPort, int? primarySiloPort) => new()
    {
        ["Peer:Name"] = name,
        ["Peer:SiloPort"] = siloPort.ToString(),
        ["Peer:GatewayPort"] = gatewayPort.ToString(),
        ["Peer:Primary"] = primarySiloPort is { } primary ? $"127.0.0.1:{primary}" : null,
        ["Peer:DataDir"] = dataDir,
        ["Http:Port"] = "0",
        ["Tracker:ReportInterval"] = "00:00:00.300",
        ["Tracker:MinReportGap"] = "00:00:00.020",
        ["Compute:WarmWorkers"] = "1",
        ["Compute:WarmCompilers"] = "0",
        ["Compute:PythonPath"] = "",
        ["Logging:LogLevel:Default"] = "Error",
    };

    /// <summary>Builds and starts a peer; the settings override <see cref="BaseSettings"/>.</summary>
    public static async Task<WebPeer> StartAsync(IDictionary<string, string?> settings, Action<ISiloBuilder>? configureSilo = null)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var peer = configuration.GetSection(PeerOptions.Section).Get<PeerOptions>()!;
        var host = PeerHost.Build(configuration, peer, PeerHost.ReadClustering(configuration), PeerHost.ReadHttp(configuration), configureSilo);
        try
        {
            await host.StartAsync();
        }
        catch
        {
            host.Dispose();
            throw;
        }

        var address = host.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return new WebPeer(peer.Name, host, new Uri(address + "/"), peer.SiloPort);
    }

    public async Task<JsonDocument> GetJsonAsync(string path)
    {
        using var response = await Http.GetAsync(path);
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET {path} on {Name}: {(int)response.StatusCode} {System.Text.Encoding.UTF8.GetString(body)}");
        return JsonDocument.Parse(body);
    }

    public async Task<string> MetricsAsync()
    {
        using var response = await Http.GetAsync("metrics");
        Assert.True(response.IsSuccessStatusCode, $"GET /metrics on {Name}: {(int)response.StatusCode}");
        return await response.Content.ReadAsStringAsync();
    }

    /// <summary>Runs a task submitted on this peer to its end.</summary>
    public async Task<JobInfo> RunAsync(TaskSpec task)
    {
        var job = await Grains.GetGrain<IPeerGrain>(Name).SubmitAsync(task);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!job.IsTerminal && DateTime.UtcNow < deadline)
            job = await Grains.GetJob(job.JobId).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(job.IsTerminal, $"job {job.JobId} did not end: {job.Status}");
        return job;
    }

    /// <summary>Uploads <paramref name="bytes"/> to <paramref name="peer"/>'s disk, as the CLI does in one chunk.</summary>
    public async Task UploadAsync(string peer, string name, byte[] bytes)
    {
        var grain = Grains.GetGrain<IPeerGrain>(peer);
        var ticket = await grain.BeginUploadAsync(name, bytes.Length);
        await grain.WriteChunkAsync(ticket.UploadId, 0, bytes);
        await grain.CompleteUploadAsync(ticket.UploadId, Convert.ToHexStringLower(SHA256.HashData(bytes)));
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        try
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await Host.StopAsync(stop.Token);
        }
        finally
        {
            Host.Dispose();
        }
    }
}

/// <summary>Two real peer hosts, <c>peer-1</c> (the primary) and <c>peer-2</c>, both serving HTTP and the dashboard.</summary>
public sealed class WebPeerCluster : IAsyncLifetime
{
    private readonly TempDirectory _data = new();

    public WebPeer Peer1 { get; private set; } = null!;

    public WebPeer Peer2 { get; private set; } = null!;

    public IEnumerable<WebPeer> Peers => [Peer1, Peer2];

    public async Task InitializeAsync()
    {
        var ports = FreeTcpPorts.Pick(4);
        Peer1 = await WebPeer.StartAsync(WithDashboard(WebPeer.BaseSettings("peer-1", Path.Combine(_data.Path, "peer-1"), ports[0], ports[1], null)));
        Peer2 = await WebPeer.StartAsync(WithDashboard(WebPeer.BaseSettings("peer-2", Path.Combine(_data.Path, "peer-2"), ports[2], ports[3], ports[0])));
        await Eventually.TrueAsync(async () =>
        {
            var peers = await Peer1.Grains.GetTracker().GetPeersAsync();
            return peers.Select(p => p.Name).SequenceEqual(["peer-1", "peer-2"]);
        }, TimeSpan.FromSeconds(30), "the tracker lists peer-1 and peer-2");
    }

    private static Dictionary<string, string?> WithDashboard(Dictionary<string, string?> settings)
    {
        settings["Http:Dashboard"] = "true";
        return settings;
    }

    public async Task DisposeAsync()
    {
        try
        {
            if (Peer2 is not null) await Peer2.DisposeAsync();
        }
        finally
        {
            if (Peer1 is not null) await Peer1.DisposeAsync();
            _data.Dispose();
        }
    }
}
