using System.Net;
using P2PShare.Connecting;

namespace P2PShare.Cli;

/// <summary>
/// Where the CLI finds the cluster in <c>local</c> clustering: which gateways, and the CLI's errors
/// for one it cannot use. Parsing and resolving are <see cref="HostPort"/>'s, shared with the peer.
/// </summary>
public static class Gateways
{
    public const string EnvironmentVariable = "P2PSHARE_GATEWAYS";
    public static readonly HostPort Default = new("127.0.0.1", 30000);

    /// <summary>
    /// Command-line gateways win over the environment, which wins over the default. Each source may
    /// hold comma-separated entries, so <c>--gateway a:1,b:2</c> and the env format read the same.
    /// </summary>
    public static IReadOnlyList<HostPort> Select(IReadOnlyList<string>? fromOptions, string? fromEnvironment)
    {
        var optionEntries = Split(fromOptions ?? []);
        if (optionEntries.Count > 0)
        {
            return optionEntries.Select(Parse).ToList();
        }

        var envEntries = Split(string.IsNullOrWhiteSpace(fromEnvironment) ? [] : [fromEnvironment]);
        return envEntries.Count > 0 ? envEntries.Select(Parse).ToList() : [Default];
    }

    /// <summary>Parses <c>host:port</c>, <c>1.2.3.4:port</c> or <c>[::1]:port</c>.</summary>
    /// <exception cref="UsageException">The text is not a host and a port.</exception>
    public static HostPort Parse(string text) =>
        HostPort.TryParse(text, out var gateway)
            ? gateway
            : throw new UsageException($"invalid gateway '{text}': expected host:port (port 1-65535)");

    /// <summary>Resolves through DNS (see <see cref="HostPort.ResolveAsync"/>).</summary>
    /// <exception cref="ClusterUnreachableException">The gateway's name does not resolve.</exception>
    public static async Task<IPEndPoint> ResolveAsync(HostPort gateway, CancellationToken ct)
    {
        try
        {
            return await gateway.ResolveAsync(ct).ConfigureAwait(false);
        }
        catch (HostResolutionException ex)
        {
            throw new ClusterUnreachableException(gateway.ToString(), ex.Reason, ex.InnerException);
        }
    }

    /// <summary>
    /// True when two endpoints name the same gateway. Loopback addresses count as one, because a
    /// peer advertising 127.0.0.1 and a user typing localhost (::1) mean the same listener.
    /// </summary>
    public static bool SameEndpoint(IPEndPoint a, IPEndPoint b)
    {
        if (a.Port != b.Port)
        {
            return false;
        }

        var x = Normalize(a.Address);
        var y = Normalize(b.Address);
        return x.Equals(y) || (IPAddress.IsLoopback(x) && IPAddress.IsLoopback(y));
    }

    public static string Describe(IReadOnlyList<HostPort> gateways) => string.Join(",", gateways);

    private static IPAddress Normalize(IPAddress address) =>
        address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    private static List<string> Split(IEnumerable<string> values) =>
        values.SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .ToList();
}
