using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace P2PShare.Cli;

/// <summary>A gateway as the user wrote it: a host name or address and a port.</summary>
public sealed record GatewayAddress(string Host, int Port)
{
    public override string ToString() =>
        Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}

/// <summary>
/// Where the CLI finds the cluster. Pure parsing and comparison live here so they can be tested
/// without a network; only <see cref="ResolveAsync"/> touches DNS.
/// </summary>
public static class Gateways
{
    public const string EnvironmentVariable = "P2PSHARE_GATEWAYS";
    public static readonly GatewayAddress Default = new("127.0.0.1", 30000);

    /// <summary>
    /// Command-line gateways win over the environment, which wins over the default. Each source may
    /// hold comma-separated entries, so <c>--gateway a:1,b:2</c> and the env format read the same.
    /// </summary>
    public static IReadOnlyList<GatewayAddress> Select(IReadOnlyList<string>? fromOptions, string? fromEnvironment)
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
    public static GatewayAddress Parse(string text)
    {
        var s = text.Trim();
        string host;
        string portText;
        if (s.StartsWith('['))
        {
            var close = s.IndexOf(']', StringComparison.Ordinal);
            if (close < 0 || close + 1 >= s.Length || s[close + 1] != ':')
            {
                throw Bad(text);
            }

            host = s[1..close];
            portText = s[(close + 2)..];
        }
        else
        {
            var colon = s.LastIndexOf(':');
            // A bare IPv6 address has several colons and no way to tell where the port starts.
            if (colon <= 0 || s.IndexOf(':', StringComparison.Ordinal) != colon)
            {
                throw Bad(text);
            }

            host = s[..colon];
            portText = s[(colon + 1)..];
        }

        if (host.Length == 0
            || !int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            || port is < 1 or > 65535)
        {
            throw Bad(text);
        }

        return new GatewayAddress(host, port);
    }

    /// <summary>
    /// Resolves through DNS. IPv4 is preferred because silos usually advertise IPv4 gateways and
    /// "localhost" often resolves to ::1 first.
    /// </summary>
    public static async Task<IPEndPoint> ResolveAsync(GatewayAddress gateway, CancellationToken ct)
    {
        if (IPAddress.TryParse(gateway.Host, out var literal))
        {
            return new IPEndPoint(literal, gateway.Port);
        }

        IPAddress[] addresses;
        try
        {
            addresses = await Dns.GetHostAddressesAsync(gateway.Host, ct).ConfigureAwait(false);
        }
        catch (SocketException ex)
        {
            throw new ClusterUnreachableException(gateway.ToString(), $"cannot resolve '{gateway.Host}': {ex.Message}", ex);
        }

        var chosen = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork)
            ?? addresses.FirstOrDefault()
            ?? throw new ClusterUnreachableException(gateway.ToString(), $"'{gateway.Host}' has no addresses");
        return new IPEndPoint(chosen, gateway.Port);
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

    public static string Describe(IReadOnlyList<GatewayAddress> gateways) => string.Join(",", gateways);

    private static IPAddress Normalize(IPAddress address) =>
        address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    private static List<string> Split(IEnumerable<string> values) =>
        values.SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .ToList();

    private static UsageException Bad(string text) =>
        new($"invalid gateway '{text}': expected host:port (port 1-65535)");
}
