using System.Globalization;
using System.Text;

namespace P2PShare.Compute;

/// <summary>Resource limits of one sandboxed worker, applied with <c>prlimit</c> before the uid drops.</summary>
/// <param name="AddressSpaceBytes">RLIMIT_AS; null for .NET, which needs ~4 GiB of address space even with a small heap.</param>
/// <param name="CpuSeconds">RLIMIT_CPU, a backstop behind the scheduler's timeout; null for long-lived workers.</param>
/// <param name="Processes">RLIMIT_NPROC; null when the worker's uid is the peer's own, whose other processes and threads count against it too.</param>
internal sealed record SandboxLimits(int? Processes, int OpenFiles, long FileBytes, long? AddressSpaceBytes = null, long? CpuSeconds = null);

/// <summary>Everything that decides the command line of one sandboxed worker.</summary>
/// <param name="Bubblewrap">Path of bwrap.</param>
/// <param name="Uid">The unprivileged uid and gid to drop to with setpriv (the peer runs as root); null: the peer's own.</param>
/// <param name="SeccompFile">The BPF program, opened as fd 3 by the wrapper shell for <c>--seccomp 3</c>.</param>
/// <param name="CgroupProcFiles">cgroup.procs files the wrapper shell enters before anything else runs.</param>
/// <param name="ReadOnlyBinds">Host paths (files or folders) bound read-only into the sandbox, at the given targets.</param>
/// <param name="TmpBytes">Size of the private tmpfs on /tmp (the working folder) and on /dev/shm.</param>
/// <param name="Environment">The whole environment of the program; nothing else is passed.</param>
internal sealed record SandboxCommandSpec(
    string Bubblewrap,
    int? Uid,
    string SeccompFile,
    IReadOnlyList<string> CgroupProcFiles,
    SandboxLimits Limits,
    IReadOnlyList<(string Source, string Target)> ReadOnlyBinds,
    long TmpBytes,
    IReadOnlyDictionary<string, string> Environment,
    string Program,
    IReadOnlyList<string> Arguments);

/// <summary>
/// Builds the command that starts a worker behind the wall: <c>/bin/sh -c SCRIPT</c> where SCRIPT
/// enters the worker's cgroups (while still root, so every later process is inside) and execs
/// <c>prlimit ... -- [setpriv --reuid U ...] bwrap ... -- PROGRAM</c> with the seccomp program on fd 3
/// (.NET's Process cannot hand a child extra descriptors; a shell redirection can). The program and
/// its arguments travel as the shell's positional parameters, never inside the script text.
/// </summary>
internal static class SandboxCommand
{
    public const string Shell = "/bin/sh";
    public const string Setpriv = "setpriv";
    public const string Prlimit = "prlimit";

    public static IReadOnlyList<string> Build(SandboxCommandSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var script = new StringBuilder();
        foreach (var procs in spec.CgroupProcFiles) script.Append("echo $$ > ").Append(Quote(procs)).Append(" && ");
        script.Append("exec \"$@\" 3< ").Append(Quote(spec.SeccompFile));

        var l = spec.Limits;
        var command = new List<string>
        {
            "-c", script.ToString(), "p2pshare-sandbox",
            Prlimit,
            $"--nofile={l.OpenFiles}",
            $"--fsize={l.FileBytes}",
            "--core=0",
        };
        if (l.Processes is { } processes) command.Add($"--nproc={processes}");
        if (l.AddressSpaceBytes is { } address) command.Add($"--as={address}");
        if (l.CpuSeconds is { } cpu) command.Add($"--cpu={cpu}");
        command.Add("--");
        if (spec.Uid is { } uid)
        {
            var id = uid.ToString(CultureInfo.InvariantCulture);
            command.AddRange([Setpriv, "--reuid", id, "--regid", id, "--clear-groups", "--"]);
        }

        command.AddRange(
        [
            spec.Bubblewrap,
            "--unshare-all", "--unshare-user", "--disable-userns",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--hostname", "sandbox",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin",
            "--symlink", "usr/sbin", "/sbin",
            "--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache",
        ]);
        foreach (var (source, target) in spec.ReadOnlyBinds) command.AddRange(["--ro-bind", source, target]);
        var size = spec.TmpBytes.ToString(CultureInfo.InvariantCulture);
        command.AddRange(
        [
            "--proc", "/proc",
            "--dev", "/dev",
            // bwrap's /dev is an uncapped tmpfs with a world-writable shm folder: cap it like /tmp.
            "--size", size, "--tmpfs", "/dev/shm",
            "--size", size, "--tmpfs", "/tmp",
            "--chdir", "/tmp",
            // bwrap's root and /dev are tmpfs the task's uid owns, with no cap: freeze them, so the
            // two capped tmpfs are the only places it can write.
            "--remount-ro", "/dev",
            "--remount-ro", "/",
            "--clearenv",
        ]);
        foreach (var (key, value) in spec.Environment.OrderBy(e => e.Key, StringComparer.Ordinal)) command.AddRange(["--setenv", key, value]);
        command.AddRange(["--seccomp", "3", "--", spec.Program]);
        command.AddRange(spec.Arguments);
        return command;
    }

    /// <summary>A single-quoted shell word: only a quote itself needs care.</summary>
    internal static string Quote(string text) => "'" + text.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
