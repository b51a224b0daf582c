using System.Net;
using System.Net.Sockets;

namespace P2PShare.Tests.Postgres;

/// <summary>
/// Distinct TCP ports free on every address right now, in 20000-32767: the kernel hands out
/// 32768-60999 for outgoing connections, so a port from there may be taken at any moment.
/// </summary>
public static class FreeTcpPorts
{
    public static int[] Pick(int count)
    {
        var picked = new HashSet<int>();
        for (var attempt = 0; picked.Count < count && attempt < 1000; attempt++)
        {
            var port = Random.Shared.Next(20000, 32768);
            if (!picked.Contains(port) && IsFree(port))
            {
                picked.Add(port);
            }
        }

        return picked.Count == count ? picked.ToArray() : throw new InvalidOperationException($"no {count} free ports in 20000-32767");
    }

    private static bool IsFree(int port)
    {
        try
        {
            var listener = new TcpListener(IPAddress.Any, port);
            listener.Start();
            listener.Stop();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
