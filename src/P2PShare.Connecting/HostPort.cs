using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace P2PShare.Connecting;

/// <summary>
/// A host name or address and a port, as users write them: the CLI's gateways, a peer's primary.
/// Parsing is pure so it can be tested without a network; only the Resolve methods touch DNS.
/// </summary>
public sealed record HostPort(string Host, int Port)
{
    public override string ToString() =>
        Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";

    /// <summary>Reads <c>host:port</c>, <c>1.2.3.4:port</c> or <c>[::1]:port</c> (port 1-65535), ignoring surrounding spaces.</summary>
    /// <param name="allowBareIPv6">
    /// Also read <c>::1:port</c>, taking everything before the last colon as the host. A peer's
    /// <c>Peer:Primary</c> has always been read that way; the CLI refuses it, since a bare IPv6 address
    /// has several colons and no way to tell where the port starts.
    /// </param>
    public static bool TryParse(string? text, [NotNullWhen(true)] out HostPort? address, bool allowBareIPv6 = false)
    {
        address = null;
        var s = text?.Trim() ?? "";
        string host;
        string portText;
        if (s.StartsWith('['))
        {
            var close = s.IndexOf(']', StringComparison.Ordinal);
            if (close < 0 || close + 1 >= s.Length || s[close + 1] != ':')
            {
                return false;
            }

            host = s[1..close];
            portText = s[(close + 2)..];
        }
        else
        {
            var colon = s.LastIndexOf(':');
            if (colon <= 0 || (!allowBareIPv6 && s.IndexOf(':', StringComparison.Ordinal) != colon))
            {
                return false;
            }

            host = s[..colon];
            portText = s[(colon + 1)..];
        }

        if (host.Length == 0
            || !int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            || port is < 1 or > 65535)
        {
            return false;
        }

        address = new HostPort(host, port);
        return true;
    }

    /// <summary>
    /// The endpoint to dial: the host itself when it is an IP address, else its first IPv4 address
    /// from DNS, else its first address. IPv4 first because peers usually advertise IPv4 endpoints
    /// and "localhost" often resolves to ::1 first.
    /// </summary>
    /// <exception cref="HostResolutionException">DNS does not know the name, or gives no address for it.</exception>
    public async Task<IPEndPoint> ResolveAsync(CancellationToken cancellationToken)
    {
        if (IPAddress.TryParse(Host, out var literal))
        {
            return new IPEndPoint(literal, Port);
        }

        try
        {
            return Choose(await Dns.GetHostAddressesAsync(Host, cancellationToken).ConfigureAwait(false));
        }
        catch (SocketException ex)
        {
            throw CannotResolve(ex);
        }
    }

    /// <summary>The same as <see cref="ResolveAsync"/>, for configuration callbacks that cannot await (a silo builder's).</summary>
    /// <exception cref="HostResolutionException">DNS does not know the name, or gives no address for it.</exception>
    public IPEndPoint Resolve()
    {
        if (IPAddress.TryParse(Host, out var literal))
        {
            return new IPEndPoint(literal, Port);
        }

        try
        {
            return Choose(Dns.GetHostAddresses(Host));
        }
        catch (SocketException ex)
        {
            throw CannotResolve(ex);
        }
    }

    private IPEndPoint Choose(IPAddress[] addresses)
    {
        var chosen = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork)
            ?? addresses.FirstOrDefault()
            ?? throw new HostResolutionException(this, $"'{Host}' has no addresses");
        return new IPEndPoint(chosen, Port);
    }

    private HostResolutionException CannotResolve(SocketException ex) =>
        new(this, $"cannot resolve '{Host}': {ex.Message}", ex);
}
