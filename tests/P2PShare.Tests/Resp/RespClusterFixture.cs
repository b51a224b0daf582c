using System.Net;
using Microsoft.Extensions.DependencyInjection;
using P2PShare.Legacy;
using P2PShare.Memory;
using P2PShare.Resp;
using P2PShare.Tests.Support;

namespace P2PShare.Tests.Resp;

/// <summary>
/// Two in-process peers, each with a Redis-protocol port and a seed-protocol peer port on free
/// loopback ports, with small limits and short timeouts so the hostile-input tests run fast.
/// </summary>
public sealed class RespClusterFixture : IAsyncLifetime
{
    public const long QuotaBytes = 4 * 1024 * 1024;
    public const long MaxValueBytes = 1024 * 1024;
    public const int MaxConnections = 40;
    public const int MaxArguments = 4096;
    public const int MaxInlineBytes = 4096;
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(6);
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan WriteTimeout = TimeSpan.FromSeconds(3);

    public PeerCluster Peers { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Peers = await PeerCluster.StartAsync(2, services =>
        {
            services.Configure<MemoryOptions>(o =>
            {
                o.QuotaBytes = QuotaBytes;
                o.MaxValueBytes = MaxValueBytes;
            });
            services.AddP2PShareResp().Configure<RespOptions>(o =>
            {
                o.Port = 0;
                o.MaxConnections = MaxConnections;
                o.MaxArguments = MaxArguments;
                o.MaxInlineBytes = MaxInlineBytes;
                o.MaxRequestBytes = 4 * MaxValueBytes;
                o.IdleTimeout = IdleTimeout;
                o.RequestTimeout = RequestTimeout;
                o.WriteTimeout = WriteTimeout;
            });
            services.AddP2PShareLegacyGateway().Configure<LegacyOptions>(o =>
            {
                o.PeerPort = 0;
                o.BindAddress = "127.0.0.1";
            });
        });
        await Eventually.TrueAsync(async () =>
            (await Peers.Tracker.GetPeersAsync()).Count(p => RespEndpoint.Of(p.Report) is not null) == 2,
            TimeSpan.FromSeconds(15), "the tracker knows both Redis endpoints");
    }

    public async Task DisposeAsync() => await Peers.DisposeAsync();

    public RespGateway Gateway(string peer) => Peers.Silo(peer).ServiceProvider.GetRequiredService<RespGateway>();

    public MemoryStore Store(string peer) => Peers.Silo(peer).ServiceProvider.GetRequiredService<MemoryStore>();

    public IPEndPoint Port(string peer) => Gateway(peer).Endpoint!;

    public IPEndPoint SeedPort(string peer) => Peers.Silo(peer).ServiceProvider.GetRequiredService<LegacyGateway>().PeerEndpoint!;

    /// <summary>A StackExchange.Redis configuration string for a peer's endpoint.</summary>
    public string Configuration(string peer) => $"127.0.0.1:{Port(peer).Port},abortConnect=true,allowAdmin=true,connectTimeout=10000,syncTimeout=10000";
}
