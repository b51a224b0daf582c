using System.Net;
using System.Net.Sockets;

namespace P2PShare.EndToEnd.Infrastructure;

/// <summary>
/// Finds runs of consecutive free TCP ports for a cluster. Below 32768, because the kernel hands
/// out 32768-60999 as ephemeral ports for outgoing connections.
/// </summary>
public static class FreePorts
{
    private const int Lowest = 20000;
    private const int HighestExclusive = 32768;

    /// <summary>Two disjoint bases, each followed by <paramref name="count"/> ports free right now.</summary>
    public static (int SiloBase, int GatewayBase) PickBases(int count)
    {
        var silo = FindRun(count, exclude: null);
        var gateway = FindRun(count, exclude: (silo, count));
        return (silo, gateway);
    }

    private static int FindRun(int count, (int Start, int Count)? exclude)
    {
        for (var attempt = 0; attempt < 200; attempt++)
        {
            var start = Random.Shared.Next(Lowest, HighestExclusive - count);
            if (exclude is { } taken && start < taken.Start + taken.Count && taken.Start < start + count)
            {
                continue;
            }

            if (Enumerable.Range(start, count).All(IsFree))
            {
                return start;
            }
        }

        throw new InvalidOperationException($"no {count} consecutive free ports between {Lowest} and {HighestExclusive}");
    }

    private static bool IsFree(int port)
    {
        try
        {
            var listener = new TcpListener(IPAddress.Loopback, port);
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
