using System.Globalization;

namespace P2PShare.Tests.Support;

/// <summary>CPU time of processes as the kernel counts it (/proc/PID/stat utime + stime), the process's own counters.</summary>
public static class ProcessCpu
{
    private const double TicksPerSecond = 100; // USER_HZ on Linux

    /// <summary>CPU time of <paramref name="pid"/> and every live descendant (a zygote's task runs in its child).</summary>
    public static TimeSpan OfTree(int pid)
    {
        var total = TimeSpan.Zero;
        var pending = new Stack<int>([pid]);
        while (pending.TryPop(out var next))
        {
            total += Of(next);
            foreach (var child in Children(next)) pending.Push(child);
        }

        return total;
    }

    /// <summary>
    /// CPU time of <paramref name="pid"/> and every live descendant, each with the children it has
    /// reaped: the whole cost of a peer's scheduler and its workers, forked tasks included.
    /// </summary>
    public static TimeSpan OfTreeWithReaped(int pid)
    {
        var total = TimeSpan.Zero;
        var pending = new Stack<int>([pid]);
        while (pending.TryPop(out var next))
        {
            total += WithReapedChildren(next);
            foreach (var child in Children(next)) pending.Push(child);
        }

        return total;
    }

    /// <summary>CPU time of one process (all its threads); zero when it is gone.</summary>
    public static TimeSpan Of(int pid) => Read(pid, withReaped: false);

    /// <summary>CPU time of one process plus that of the children it has waited for (a zygote's finished tasks).</summary>
    public static TimeSpan WithReapedChildren(int pid) => Read(pid, withReaped: true);

    private static TimeSpan Read(int pid, bool withReaped)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // The command name may hold spaces and parentheses: fields count from after the last ')'.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            // utime, stime, cutime, cstime
            var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            if (withReaped) ticks += long.Parse(fields[13], CultureInfo.InvariantCulture) + long.Parse(fields[14], CultureInfo.InvariantCulture);
            return TimeSpan.FromSeconds(ticks / TicksPerSecond);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return TimeSpan.Zero;
        }
    }

    private static IEnumerable<int> Children(int pid)
    {
        string[] tasks;
        try
        {
            tasks = Directory.GetDirectories($"/proc/{pid}/task");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            yield break;
        }

        foreach (var task in tasks)
        {
            string text;
            try
            {
                text = File.ReadAllText(Path.Combine(task, "children"));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            foreach (var child in text.Split(' ', StringSplitOptions.RemoveEmptyEntries)) yield return int.Parse(child, CultureInfo.InvariantCulture);
        }
    }
}
