using System.Net.Sockets;

namespace P2PShare.Peer;

internal static class StartupErrors
{
    /// <summary>The innermost message that explains a failed start, on one line.</summary>
    public static string Describe(Exception ex)
    {
        for (var e = ex; e is not null; e = e.InnerException)
        {
            // Kestrel starts first and says which address it could not bind.
            if (e is Microsoft.AspNetCore.Connections.AddressInUseException)
                return $"the HTTP port is already in use: {OneLine(ex.Message)} (choose another --http-port)";
            if (e is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse })
                return "a port is already in use (choose other --silo-port/--gateway-port)";
        }

        var inner = ex;
        while (inner.InnerException is not null && inner is AggregateException or Orleans.Runtime.OrleansLifecycleCanceledException)
            inner = inner.InnerException;
        return inner.Message.ReplaceLineEndings(" ");
    }

    private static string OneLine(string text) => text.ReplaceLineEndings(" ").Trim();
}
