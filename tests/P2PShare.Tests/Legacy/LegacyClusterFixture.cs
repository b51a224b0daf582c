using System.Net;
using Microsoft.Extensions.DependencyInjection;
using P2PShare.Legacy;
using P2PShare.Tests.Support;

namespace P2PShare.Tests.Legacy;

/// <summary>
/// Three in-process peers, each with a seed-protocol peer port and tracker port on free loopback
/// ports, with small limits and short timeouts so the hostile-input tests run fast.
/// </summary>
public sealed class LegacyClusterFixture : IAsyncLifetime
{
    public const int MaxFrameBytes = 8 * 1024 * 1024;
    public const int MaxFileBytes = 4 * 1024 * 1024;
    public const int MaxConnections = 48;
    public static readonly TimeSpan StallTimeout = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(6);

    public PeerCluster Peers { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Peers = await PeerCluster.StartAsync(3, services => services.AddP2PShareLegacyGateway().Configure<LegacyOptions>(Configure));
        // Every peer's seed-protocol endpoint is known to the tracker (executed_by, REQUEST_CPU use it).
        await Eventually.TrueAsync(async () =>
            (await Peers.Tracker.GetPeersAsync()).Count(p => SeedProtocolEndpoint.Of(p.Report) is not null) == 3,
            TimeSpan.FromSeconds(15), "the tracker knows the three seed-protocol endpoints");
    }

    public async Task DisposeAsync() => await Peers.DisposeAsync();

    /// <summary>The small limits and short timeouts of these tests' seed-protocol ports.</summary>
    public static void Configure(LegacyOptions o)
    {
        o.PeerPort = 0;
        o.TrackerPort = 0;
        o.BindAddress = "127.0.0.1";
        o.MaxFrameBytes = MaxFrameBytes;
        o.MaxFileBytes = MaxFileBytes;
        o.MaxBufferedBytes = 2L * MaxFrameBytes; // two large messages at once
        o.MaxConnections = MaxConnections;
        o.StallTimeout = StallTimeout;
        o.IdleTimeout = IdleTimeout;
        o.ExternalPeerTimeout = TimeSpan.FromSeconds(30);
    }

    public LegacyGateway Gateway(string peer) => Peers.Silo(peer).ServiceProvider.GetRequiredService<LegacyGateway>();

    public IPEndPoint PeerPort(string peer) => Gateway(peer).PeerEndpoint!;

    public IPEndPoint TrackerPort(string peer) => Gateway(peer).TrackerEndpoint!;

    public string Endpoint(string peer) => $"127.0.0.1:{PeerPort(peer).Port}";
}
