using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Dashboard;
using Orleans.Hosting;
using P2PShare.Configuration;
using P2PShare.Connecting;
using P2PShare.Hosting;
using P2PShare.Legacy;
using P2PShare.Peer.Http;
using P2PShare.Peers;
using P2PShare.Resp;

namespace P2PShare.Peer;

/// <summary>Builds the silo host of one peer from configuration.</summary>
internal static class PeerHost
{
    /// <summary>The peer's configuration from its command line (<see cref="PeerCommandLine"/>).</summary>
    /// <exception cref="FormatException">The command line has a problem.</exception>
    public static IConfiguration LoadConfiguration(string[] args) =>
        LoadConfiguration(PeerCommandLine.Settings(PeerCommandLine.Parse(args)));

    /// <summary>
    /// appsettings.json, then the environment (<c>P2PSHARE__SECTION__KEY</c>), then the settings of the
    /// command line, each over the one before.
    /// </summary>
    public static IConfiguration LoadConfiguration(IReadOnlyDictionary<string, string?> commandLine) =>
        new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables(PeerSwitch.EnvironmentPrefix)
            .AddInMemoryCollection(commandLine)
            .Build();

    public static ClusteringOptions ReadClustering(IConfiguration configuration) =>
        configuration.GetSection(ClusteringOptions.Section).Get<ClusteringOptions>() ?? new ClusteringOptions();

    public static HttpOptions ReadHttp(IConfiguration configuration) =>
        configuration.GetSection(HttpOptions.Section).Get<HttpOptions>() ?? new HttpOptions();

    /// <summary>
    /// The peer's host: a plain generic host, or, when <see cref="HttpOptions.Port"/> is set, a web
    /// host whose HTTP endpoints share the silo's services (the dashboard needs that). Kestrel starts
    /// before the silo, so probes get answers (not ready yet) while the peer joins.
    /// </summary>
    /// <param name="configureSilo">Extra silo configuration (tests use it to inject faults).</param>
    public static IHost Build(IConfiguration configuration, PeerOptions peer, ClusteringOptions clustering, HttpOptions http,
        Action<ISiloBuilder>? configureSilo = null)
    {
        WebApplicationBuilder? web = null;
        IHostApplicationBuilder builder;
        if (http.Enabled)
        {
            // The empty builder adds no configuration sources, logging or HTTPS of its own: ours only.
            web = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
            web.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Parse(http.BindAddress), http.Port!.Value));
            builder = web;
        }
        else
        {
            builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
            {
                ContentRootPath = AppContext.BaseDirectory,
                DisableDefaults = true,
            });
        }

        // The features bind their sections from the host's configuration. A copy rather than
        // AddConfiguration: a chained configuration hides empty values, and some mean something
        // (Compute:PythonPath= switches Python tasks off).
        builder.Configuration.AddInMemoryCollection(configuration.AsEnumerable());
        builder.Logging.AddConfiguration(configuration.GetSection("Logging"));
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
            o.UseUtcTimestamp = true;
        });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));

        var dataDir = Path.GetFullPath(string.IsNullOrWhiteSpace(peer.DataDir) ? Path.Combine("data", peer.Name) : peer.DataDir);
        builder.UseOrleans(silo =>
        {
            IPEndPoint? primary = null;
            if (!string.IsNullOrWhiteSpace(peer.Primary) && HostPort.TryParse(peer.Primary, out var ep, allowBareIPv6: true))
                primary = ep.Resolve();
            silo.UseP2PShareClustering(clustering, peer.SiloPort, peer.GatewayPort, primary);
            silo.Configure<SiloOptions>(o => o.SiloName = peer.Name);
            silo.Configure<ClusterMembershipOptions>(MembershipTuning.Apply);
            silo.Configure<ClusterMembershipOptions>(configuration.GetSection("Membership"));
            silo.AddP2PSharePeer(dataDir);
            if (LegacyGatewayExtensions.IsConfigured(configuration)) silo.AddP2PShareLegacyGateway();
            if (RespGatewayExtensions.IsConfigured(configuration)) silo.AddP2PShareResp();
            if (http.Dashboard) silo.AddDashboard();
            configureSilo?.Invoke(silo);
        });
        if (web is null) return ((HostApplicationBuilder)builder).Build();

        StartAfterHttp.Defer(web.Services);
        PeerHttp.AddServices(web.Services, http);
        var app = web.Build();
        PeerHttp.Map(app, http, peer.Name);
        return app;
    }
}
