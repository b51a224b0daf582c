using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using P2PShare.Configuration;
using P2PShare.Connecting;
using P2PShare.Hosting;
using P2PShare.Peer;

var commandLine = PeerCommandLine.Parse(args);
if (PeerCommandLine.IsHelp(commandLine))
{
    return commandLine.Invoke();
}

IConfiguration configuration;
PeerHostSettings settings;
try
{
    configuration = PeerHost.LoadConfiguration(PeerCommandLine.Settings(commandLine));
    settings = PeerHostSettings.Read(configuration);
}
catch (Exception ex) when (ex is FormatException or InvalidOperationException)
{
    Console.Error.WriteLine($"p2pshare-peer: invalid arguments or configuration: {ex.Message}");
    return 2;
}

var failures = new AnnotatedOptionsValidator<PeerHostSettings>().Validate(null, settings).Failures ?? [];
if (failures.Any())
{
    Console.Error.WriteLine($"p2pshare-peer: invalid configuration: {string.Join("; ", failures)}");
    return 2;
}

var (peer, clustering, http) = (settings.Peer, settings.Clustering, settings.Http);
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
