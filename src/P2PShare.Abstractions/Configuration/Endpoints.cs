using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;

namespace P2PShare.Configuration;

/// <summary>Parses <c>host:port</c> as users type it.</summary>
public static class Endpoints
{
    public static bool TryParse(string text, [NotNullWhen(true)] out (string Host, int Port)? endpoint)
    {
        endpoint = null;
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || colon == text.Length - 1) return false;
        var host = text[..colon].Trim('[', ']');
        if (!int.TryParse(text[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            || port is < 1 or > 65535)
            return false;
        endpoint = (host, port);
        return true;
    }

    public static IPEndPoint Resolve(string host, int port)
    {
        if (IPAddress.TryParse(host, out var ip)) return new IPEndPoint(ip, port);
        var addresses = Dns.GetHostAddresses(host);
        var chosen = addresses.FirstOrDefault(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
                     ?? addresses.First();
        return new IPEndPoint(chosen, port);
    }
}
