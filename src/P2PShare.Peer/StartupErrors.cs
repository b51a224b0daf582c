using System.Net.Sockets;

namespace P2PShare.Peer;

internal static class StartupErrors
{
    /// <summary>The innermost message that explains a failed start, on one line.</summary>
    public static string Describe(Exception ex)
    {
        for (var e = ex; e is not null; e = e.InnerException)
        {
            if (e is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse })
                return "a port is already in use (choose other --silo-port/--gateway-port)";
        }

        var inner = ex;
        while (inner.InnerException is not null && inner is AggregateException or Orleans.Runtime.OrleansLifecycleCanceledException)
            inner = inner.InnerException;
        return inner.Message.ReplaceLineEndings(" ");
    }
}
