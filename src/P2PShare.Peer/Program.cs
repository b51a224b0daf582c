using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using P2PShare.Connecting;
using P2PShare.Hosting;
using P2PShare.Peer;
using P2PShare.Peer.Http;

if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine(Usage.Text);
    return 0;
}

IConfiguration configuration;
PeerOptions peer;
ClusteringOptions clustering;
HttpOptions http;
try
{
    configuration = PeerHost.LoadConfiguration(args);
    peer = configuration.GetSection(PeerOptions.Section).Get<PeerOptions>() ?? new PeerOptions();
    clustering = PeerHost.ReadClustering(configuration);
    http = PeerHost.ReadHttp(configuration);
}
catch (Exception ex) when (ex is FormatException or InvalidOperationException)
{
    Console.Error.WriteLine($"p2pshare-peer: invalid arguments or configuration: {ex.Message}");
    return 2;
}

var failures = new OptionsValidator().Validate(null, peer).Failures ?? [];
failures = failures.Concat(new ClusteringOptionsValidator().Validate(null, clustering).Failures ?? []);
failures = failures.Concat(HttpOptionsValidator.Validate(http, peer));
if (clustering.IsPostgres && !string.IsNullOrWhiteSpace(peer.Primary))
{
    failures = failures.Append("Peer:Primary (--primary) only applies in local mode; in postgres mode peers find each other in the database");
}
if (failures.Any())
{
    Console.Error.WriteLine($"p2pshare-peer: invalid configuration: {string.Join("; ", failures)}");
    return 2;
}

if (clustering.IsPostgres)
{
    // Orleans would retry an unreachable database for minutes and then fail with a chain of
    // exceptions; say what is wrong at once.
    var problem = await ClusterDatabase.FindProblemAsync(clustering.ConnectionString!, ClusterDatabase.DefaultTimeout, CancellationToken.None);
    if (problem is not null)
    {
        Console.Error.WriteLine($"p2pshare-peer: peer '{peer.Name}' failed: {problem.Message}");
        return 1;
    }
}

using var host = PeerHost.Build(configuration, peer, clustering, http);
try
{
    await host.RunAsync();
    return 0;
}
catch (OptionsValidationException ex)
{
    Console.Error.WriteLine($"p2pshare-peer: invalid configuration: {string.Join("; ", ex.Failures)}");
    return 2;
}
catch (Exception ex)
{
    Console.Error.WriteLine($"p2pshare-peer: peer '{peer.Name}' failed: {StartupErrors.Describe(ex)}");
    return 1;
}
