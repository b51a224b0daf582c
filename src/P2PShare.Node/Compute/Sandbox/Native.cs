using System.Globalization;
using System.Runtime.InteropServices;

namespace P2PShare.Compute;

/// <summary>The few libc calls and /proc readings the sandbox needs.</summary>
internal static class Native
{
    public const int SigKill = 9;
    public const int SigCont = 18; // Linux x64
    public const int SigStop = 19;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static extern int Kill(int pid, int signal);

    private const int FGetFd = 1;
    private const int FSetFd = 2;
    private const int FdCloexec = 1;

    [DllImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static extern int Fcntl(int fd, int command, int argument);

    /// <summary>Marks <paramref name="fd"/> close-on-exec; false when it is not open.</summary>
    public static bool SetCloseOnExec(int fd)
    {
        var flags = Fcntl(fd, FGetFd, 0);
        return flags >= 0 && Fcntl(fd, FSetFd, flags | FdCloexec) == 0;
    }

    [DllImport("libc", EntryPoint = "geteuid")]
    public static extern uint EffectiveUserId();

    public static bool IsRoot => EffectiveUserId() == 0;

    /// <summary>The parent of <paramref name="pid"/>, from /proc; null when it is gone or unreadable.</summary>
    public static int? ParentOf(int pid)
    {
        try
        {
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return int.Parse(fields[1], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>
    /// The process, among the descendants of <paramref name="ancestor"/>, whose PID in its innermost
    /// PID namespace is <paramref name="innerPid"/>: a sandboxed worker says hello with the PID it
    /// sees (2 under bwrap), the peer signals it by the PID the peer sees.
    /// </summary>
    public static int? FindDescendantByInnerPid(int ancestor, int innerPid)
    {
        foreach (var folder in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(folder), out var pid) || pid == ancestor) continue;
            if (InnermostPid(pid) != innerPid || !Descends(pid, ancestor)) continue;
            return pid;
        }

        return null;
    }

    /// <summary>"Uid:" of /proc/PID/status: real, effective, saved, filesystem.</summary>
    public static int[]? Uids(int pid) => StatusField(pid, "Uid:")?.Split('\t', StringSplitOptions.RemoveEmptyEntries)
        .Select(u => int.Parse(u, CultureInfo.InvariantCulture)).ToArray();

    private static int? InnermostPid(int pid) =>
        StatusField(pid, "NSpid:") is { } nspid && int.TryParse(nspid.Split('\t', StringSplitOptions.RemoveEmptyEntries)[^1], out var inner) ? inner : null;

    private static bool Descends(int pid, int ancestor)
    {
        for (var depth = 0; depth < 16 && ParentOf(pid) is { } parent and > 1; depth++)
        {
            if (parent == ancestor) return true;
            pid = parent;
        }

        return false;
    }

    private static string? StatusField(int pid, string name)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
                if (line.StartsWith(name, StringComparison.Ordinal)) return line[name.Length..].Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return null;
    }
}
