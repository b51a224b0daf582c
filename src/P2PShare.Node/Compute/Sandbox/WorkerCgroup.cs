using System.Globalization;

namespace P2PShare.Compute;

/// <summary>
/// The cgroup (v1: one folder per controller) of one sandboxed worker: memory (everything the worker
/// and its children hold, tmpfs pages included), pids (processes and threads) and freezer (pausing
/// every process of the task at once, forks included). Created under the peer's own groups, so the
/// peer's limits still cover its workers. The worker's wrapper shell enters it before it execs
/// anything; <see cref="Dispose"/> kills what is left and removes the folders.
/// </summary>
internal sealed class WorkerCgroup : IDisposable
{
    private static readonly TimeSpan RemoveDeadline = TimeSpan.FromSeconds(5);
    private readonly string _memory;
    private readonly string _pids;
    private readonly string? _freezer;
    private int _disposed;

    private WorkerCgroup(string memory, string pids, string? freezer)
    {
        _memory = memory;
        _pids = pids;
        _freezer = freezer;
    }

    /// <summary>The cgroup.procs files the worker's wrapper writes its PID to.</summary>
    public IReadOnlyList<string> ProcFiles =>
        _freezer is null ? [Path.Combine(_memory, "cgroup.procs"), Path.Combine(_pids, "cgroup.procs")]
        : [Path.Combine(_memory, "cgroup.procs"), Path.Combine(_pids, "cgroup.procs"), Path.Combine(_freezer, "cgroup.procs")];

    /// <summary>Whether <see cref="Freeze"/> stops the whole group; without it the caller signals the worker.</summary>
    public bool CanFreeze => _freezer is not null;

    /// <summary>The parent folders of worker groups under this process's own groups, when this process may create them.</summary>
    public static CgroupRoots? FindRoots(string name)
    {
        var memory = OwnGroup("memory");
        var pids = OwnGroup("pids");
        if (memory is null || pids is null) return null;
        var roots = new CgroupRoots(Path.Combine(memory, name), Path.Combine(pids, name), OwnGroup("freezer") is { } f ? Path.Combine(f, name) : null);
        try
        {
            Directory.CreateDirectory(roots.Memory);
            Directory.CreateDirectory(roots.Pids);
            if (roots.Freezer is not null) Directory.CreateDirectory(roots.Freezer);
            // A limit that cannot be written is no limit: try one on a throwaway group.
            using var probe = Create(roots, "probe-" + Guid.NewGuid().ToString("N"), 64 * Bytes.MiB, 64);
            return roots;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Creates the groups of one worker with its memory and process limits.</summary>
    public static WorkerCgroup Create(CgroupRoots roots, string name, long memoryBytes, int processes)
    {
        var memory = Path.Combine(roots.Memory, name);
        var pids = Path.Combine(roots.Pids, name);
        var freezer = roots.Freezer is null ? null : Path.Combine(roots.Freezer, name);
        Directory.CreateDirectory(memory);
        Directory.CreateDirectory(pids);
        if (freezer is not null) Directory.CreateDirectory(freezer);
        var group = new WorkerCgroup(memory, pids, freezer);
        try
        {
            var bytes = memoryBytes.ToString(CultureInfo.InvariantCulture);
            File.WriteAllText(Path.Combine(memory, "memory.limit_in_bytes"), bytes);
            // With swap accounting the limit must also bound memory+swap, or a task swaps past it.
            var memsw = Path.Combine(memory, "memory.memsw.limit_in_bytes");
            if (File.Exists(memsw)) File.WriteAllText(memsw, bytes);
            File.WriteAllText(Path.Combine(pids, "pids.max"), processes.ToString(CultureInfo.InvariantCulture));
            return group;
        }
        catch
        {
            group.Dispose();
            throw;
        }
    }

    public void Freeze() => Write(_freezer, "freezer.state", "FROZEN");

    public void Thaw() => Write(_freezer, "freezer.state", "THAWED");

    /// <summary>The kernel's OOM killer ended a process of this group: the worker died of its memory limit.</summary>
    public bool WasOutOfMemory
    {
        get
        {
            try
            {
                foreach (var line in File.ReadLines(Path.Combine(_memory, "memory.oom_control")))
                    if (line.StartsWith("oom_kill ", StringComparison.Ordinal) && line[9..].Trim() != "0") return true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }

            return false;
        }
    }

    /// <summary>The processes in the group (the worker, whatever it forked), as the peer sees their PIDs.</summary>
    public IReadOnlyList<int> Processes()
    {
        try
        {
            return [.. File.ReadLines(Path.Combine(_pids, "cgroup.procs")).Select(l => int.TryParse(l, out var pid) ? pid : 0).Where(p => p > 0)];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>Kills every process of the group (a frozen one too: SIGKILL is delivered once thawed).</summary>
    public void KillAll()
    {
        foreach (var pid in Processes()) _ = Native.Kill(pid, Native.SigKill);
        if (_freezer is not null) Thaw();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        // Polled with a deadline: killed processes leave their group only once the kernel reaped them.
        var deadline = DateTime.UtcNow + RemoveDeadline;
        while (true)
        {
            KillAll();
            if (TryRemove() || DateTime.UtcNow > deadline) return;
            Thread.Sleep(10);
        }
    }

    private bool TryRemove()
    {
        var removed = true;
        foreach (var folder in new[] { _freezer, _pids, _memory })
        {
            if (folder is null || !Directory.Exists(folder)) continue;
            try
            {
                Directory.Delete(folder);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                removed = false;
            }
        }

        return removed;
    }

    private static void Write(string? folder, string file, string value)
    {
        if (folder is null) return;
        try
        {
            File.WriteAllText(Path.Combine(folder, file), value);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The group is gone with its worker.
        }
    }

    // "4:memory:/process_api/abc" -> /sys/fs/cgroup/memory/process_api/abc
    private static string? OwnGroup(string controller)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/cgroup"))
            {
                var parts = line.Split(':', 3);
                if (parts.Length == 3 && parts[1].Split(',').Contains(controller))
                {
                    var folder = "/sys/fs/cgroup/" + controller + parts[2].TrimEnd('/');
                    return Directory.Exists(folder) ? folder : null;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return null;
    }
}

/// <summary>The folders under which worker groups are created, one per controller.</summary>
internal sealed record CgroupRoots(string Memory, string Pids, string? Freezer);
