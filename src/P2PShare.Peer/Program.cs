using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using P2PShare.Hosting;
using P2PShare.Peer;

if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine(Usage.Text);
    return 0;
}

IConfiguration configuration;
PeerOptions peer;
try
{
    configuration = PeerHost.LoadConfiguration(args);
    peer = configuration.GetSection(PeerOptions.Section).Get<PeerOptions>() ?? new PeerOptions();
}
catch (Exception ex) when (ex is FormatException or InvalidOperationException)
{
    Console.Error.WriteLine($"p2pshare-peer: invalid arguments or configuration: {ex.Message}");
    return 2;
}

var check = new OptionsValidator().Validate(null, peer);
if (check.Failed)
{
    Console.Error.WriteLine($"p2pshare-peer: invalid configuration: {string.Join("; ", check.Failures)}");
    return 2;
}

using var host = PeerHost.Build(configuration, peer);
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
