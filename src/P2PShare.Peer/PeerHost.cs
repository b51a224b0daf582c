using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Hosting;
using P2PShare.Hosting;

namespace P2PShare.Peer;

/// <summary>Builds the silo host of one peer from configuration.</summary>
internal static class PeerHost
{
    /// <summary>Short command-line switches for the settings people change most.</summary>
    public static readonly Dictionary<string, string> Switches = new(StringComparer.Ordinal)
    {
        ["--name"] = "Peer:Name",
        ["--silo-port"] = "Peer:SiloPort",
        ["--gateway-port"] = "Peer:GatewayPort",
        ["--primary"] = "Peer:Primary",
        ["--clustering"] = "Clustering:Mode",
        ["--db"] = "Clustering:ConnectionString",
        ["--address"] = "Clustering:AdvertisedAddress",
        ["--data-dir"] = "Peer:DataDir",
        ["--memory-quota"] = "Memory:QuotaBytes",
        ["--disk-quota"] = "Disk:QuotaBytes",
        ["--max-file-size"] = "Disk:MaxFileBytes",
        ["--report-interval"] = "Tracker:ReportInterval",
        ["--slots"] = "Compute:Slots",
        ["--quantum"] = "Compute:Quantum",
        ["--legacy-port"] = "Legacy:PeerPort",
        ["--tracker-legacy-port"] = "Legacy:TrackerPort",
        ["--legacy-bind"] = "Legacy:BindAddress",
    };

    public static IConfiguration LoadConfiguration(string[] args) =>
        new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables("P2PSHARE__")
            .AddCommandLine(args, Switches)
            .Build();

    public static ClusteringOptions ReadClustering(IConfiguration configuration) =>
        configuration.GetSection(ClusteringOptions.Section).Get<ClusteringOptions>() ?? new ClusteringOptions();

    public static IHost Build(IConfiguration configuration, PeerOptions peer, ClusteringOptions clustering)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            ContentRootPath = AppContext.BaseDirectory,
            DisableDefaults = true,
        });
        builder.Configuration.AddConfiguration(configuration);
        builder.Logging.AddConfiguration(configuration.GetSection("Logging"));
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
            o.UseUtcTimestamp = true;
        });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));
        builder.Services.Configure<MemoryOptions>(configuration.GetSection(MemoryOptions.Section));
        builder.Services.Configure<DiskOptions>(configuration.GetSection(DiskOptions.Section));
        builder.Services.Configure<TrackerOptions>(configuration.GetSection(TrackerOptions.Section));
        builder.Services.Configure<ComputeOptions>(configuration.GetSection(ComputeOptions.Section));
        builder.Services.Configure<LegacyOptions>(configuration.GetSection(LegacyOptions.Section));

        var dataDir = Path.GetFullPath(string.IsNullOrWhiteSpace(peer.DataDir) ? Path.Combine("data", peer.Name) : peer.DataDir);
        builder.UseOrleans(silo =>
        {
            IPEndPoint? primary = null;
            if (!string.IsNullOrWhiteSpace(peer.Primary) && Endpoints.TryParse(peer.Primary, out var ep))
                primary = Endpoints.Resolve(ep.Value.Host, ep.Value.Port);
            silo.UseP2PShareClustering(clustering, peer.SiloPort, peer.GatewayPort, primary);
            silo.Configure<SiloOptions>(o => o.SiloName = peer.Name);
            silo.Configure<ClusterMembershipOptions>(MembershipTuning.Apply);
            silo.Configure<ClusterMembershipOptions>(configuration.GetSection("Membership"));
            silo.AddP2PSharePeer(dataDir);
        });
        return builder.Build();
    }
}
