using System.Globalization;

namespace P2PShare.Benchmarks;

/// <summary>
/// CPU time the peers spend, read from the processes' own counters: every peer process and every
/// process below it (workers sit behind bwrap, several levels down) count their utime + stime, and
/// exited ones live on in their parents' cutime + cstime once reaped. The difference of two
/// readings is the CPU the cluster spent between them, whoever in it spent it.
/// </summary>
internal static class CpuMeter
{
    // USER_HZ: the unit of /proc/PID/stat's times; 100 on every Linux the project runs on.
    private const double MsPerTick = 10;

    /// <summary>The peers' and all their descendants' CPU so far, in ms; null when the peers' PIDs are unknown.</summary>
    public static double? TotalMs(IEnumerable<int> peerPids)
    {
        var roots = peerPids.ToHashSet();
        if (roots.Count == 0) return null;

        var parents = new Dictionary<int, int>();
        var ticks = new Dictionary<int, long>();
        foreach (var folder in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(folder), out var pid)) continue;
            if (Read(pid) is not { } stat) continue;
            parents[pid] = stat.Parent;
            ticks[pid] = stat.Ticks;
        }

        long total = 0;
        foreach (var (pid, own) in ticks)
        {
            for (var (at, hops) = (pid, 0); at > 1 && hops < 64; hops++)
            {
                if (roots.Contains(at))
                {
                    total += own;
                    break;
                }

                if (!parents.TryGetValue(at, out at)) break;
            }
        }

        return total * MsPerTick;
    }

    /// <summary>Parent PID and utime + stime + cutime + cstime (fields 4, 14-17 of /proc/PID/stat).</summary>
    private static (int Parent, long Ticks)? Read(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // The command name (field 2) is in parentheses and may hold spaces.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            long Field(int number) => long.Parse(fields[number - 3], CultureInfo.InvariantCulture);
            return ((int)Field(4), Field(14) + Field(15) + Field(16) + Field(17));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }
}
