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
        var runs = PickRuns(count, 2);
        return (runs[0], runs[1]);
    }

    /// <summary><paramref name="runs"/> disjoint bases, each followed by <paramref name="count"/> ports free right now.</summary>
    public static int[] PickRuns(int count, int runs)
    {
        var starts = new List<int>();
        for (var i = 0; i < runs; i++)
        {
            starts.Add(FindRun(count, starts));
        }

        return [.. starts];
    }

    private static int FindRun(int count, List<int> taken)
    {
        for (var attempt = 0; attempt < 200; attempt++)
        {
            var start = Random.Shared.Next(Lowest, HighestExclusive - count);
            if (taken.Any(t => start < t + count && t < start + count))
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
