using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.TestingHost;
using P2PShare.Compute;
using P2PShare.Files;
using P2PShare.Hosting;
using P2PShare.Peers;
using P2PShare.Tracker;

namespace P2PShare.Tests.Support;

/// <summary>
/// An in-process cluster of real silos acting as peers <c>peer-1..N</c>, each with its own data folder,
/// fast load reports and tuned failure detection, the way the peer host configures them.
/// </summary>
public sealed class PeerCluster : IAsyncDisposable
{
    public static readonly TimeSpan ReportInterval = TimeSpan.FromMilliseconds(300);

    private readonly TempDirectory _dataRoot;

    private PeerCluster(InProcessTestCluster cluster, TempDirectory dataRoot)
    {
        Cluster = cluster;
        _dataRoot = dataRoot;
    }

    public InProcessTestCluster Cluster { get; }

    public IClusterClient Client => Cluster.Client;

    /// <param name="configurePeer">Per-peer services, given the peer's name (<c>peer-1</c>..), after <paramref name="configure"/>.</param>
    /// <param name="jobDatabase">
    /// A PostgreSQL connection string: job records and reminders go there (as in <c>postgres</c>
    /// mode) and survive the silos; null keeps them in memory (as in <c>local</c> mode).
    /// </param>
    public static async Task<PeerCluster> StartAsync(int peers = 3, Action<IServiceCollection>? configure = null, string? jobDatabase = null,
        Action<string, IServiceCollection>? configurePeer = null)
    {
        var builder = new InProcessTestClusterBuilder((short)peers);
        var dataRoot = new TempDirectory();
        builder.ConfigureSilo((options, silo) =>
        {
            // TestingHost names silos Silo_0..; peers are named peer-1..
            var name = PeerName(options.SiloName);
            silo.Services.PostConfigure<SiloOptions>(o => o.SiloName = name);
            silo.Configure<ClusterMembershipOptions>(MembershipTuning.Apply);
            silo.Services.Configure<TrackerOptions>(o =>
            {
                o.ReportInterval = ReportInterval;
                o.MinReportGap = TimeSpan.FromMilliseconds(20);
            });
            silo.Services.Configure<DiskOptions>(o => o.ChunkBytes = 64 * 1024);
            // A compiler process costs seconds of CPU to start; tests that compile start one when they
            // need it, instead of every silo of every cluster at start (the peer host warms one).
            silo.Services.Configure<ComputeOptions>(o => o.WarmCompilers = 0);
            configure?.Invoke(silo.Services);
            configurePeer?.Invoke(name, silo.Services);
            silo.AddP2PShareJobStorage(jobDatabase);
            silo.AddP2PSharePeer(Path.Combine(dataRoot.Path, name));
        });
        var cluster = builder.Build();
        await cluster.DeployAsync();
        var self = new PeerCluster(cluster, dataRoot);
        await self.WaitForPeersAsync(Enumerable.Range(1, peers).Select(i => $"peer-{i}").ToArray());
        return self;
    }

    public static string PeerName(string siloName) =>
        siloName.StartsWith("Silo_", StringComparison.Ordinal) ? $"peer-{int.Parse(siloName[5..]) + 1}" : siloName;

    public IPeerGrain Peer(string name) => Client.GetGrain<IPeerGrain>(name);

    public ITrackerGrain Tracker => Client.GetTracker();

    public IJobGrain Job(string jobId) => Client.GetJob(jobId);

    public InProcessSiloHandle Silo(string peer) =>
        Cluster.Silos.Single(s => PeerName(s.Name) == peer);

    public async Task<string[]> TrackedPeersAsync() =>
        (await Tracker.GetPeersAsync()).Select(p => p.Name).ToArray();

    public Task WaitForPeersAsync(params string[] expected) =>
        Eventually.TrueAsync(async () =>
        {
            try
            {
                return (await TrackedPeersAsync()).SequenceEqual(expected);
            }
            catch (Exception ex) when (ex is not TimeoutException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(15), $"tracker lists exactly [{string.Join(", ", expected)}]");

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Cluster.StopAllSilosAsync();
        }
        finally
        {
            await Cluster.DisposeAsync();
            _dataRoot.Dispose();
        }
    }
}

/// <summary>One 3-peer cluster shared by the tests of a class that do not stop or kill silos.</summary>
public sealed class SharedPeerCluster : IAsyncLifetime
{
    public PeerCluster Peers { get; private set; } = null!;

    public async Task InitializeAsync() => Peers = await PeerCluster.StartAsync();

    public async Task DisposeAsync() => await Peers.DisposeAsync();
}
