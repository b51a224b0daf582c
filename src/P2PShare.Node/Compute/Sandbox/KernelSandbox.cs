using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace P2PShare.Compute;

/// <summary>What one sandboxed process runs and how much it may use.</summary>
/// <param name="Program">Its path as seen inside the sandbox (the runtime's own path: /usr and the runtime are bound where they are).</param>
/// <param name="ReadOnlyBinds">Host files or folders it needs, bound read-only at the given targets.</param>
/// <param name="Environment">Its whole environment.</param>
/// <param name="MemoryBytes">What its heap may use; the memory limit adds the native allowance and the tmpfs caps.</param>
/// <param name="AddressSpaceBytes">RLIMIT_AS where no cgroup bounds memory; null for .NET, which needs ~4 GiB of it.</param>
/// <param name="CpuSeconds">RLIMIT_CPU backstop; null for a worker that lives across tasks.</param>
internal sealed record SandboxRequest(
    string Program,
    IReadOnlyList<string> Arguments,
    IReadOnlyList<(string Source, string Target)> ReadOnlyBinds,
    IReadOnlyDictionary<string, string> Environment,
    long MemoryBytes,
    long? AddressSpaceBytes = null,
    long? CpuSeconds = null);

/// <summary>The output of a command run to completion in the sandbox (<see cref="KernelSandbox.RunAsync"/>).</summary>
internal sealed record SandboxRun(int ExitCode, string Stdout, string Stderr);

/// <summary>
/// The kernel wall around every task's worker process (see docs/SANDBOX.md): bubblewrap with every
/// namespace, an unprivileged uid of its own when the peer is root, no capabilities, a read-only view
/// of only what the runtime needs, a capped private tmpfs, an empty environment, a seccomp filter,
/// and a cgroup (memory, pids, freezer) where this peer may create one, rlimits always. Probed once:
/// with <see cref="ComputeOptions.Isolation"/> <c>kernel</c> a wall that cannot be built makes
/// <see cref="Refusal"/> say why, and the peer runs no tasks (fails closed).
/// </summary>
public sealed partial class KernelSandbox : IDisposable
{
    private const string ProbeScript = "cat /proc/self/status";
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(20);

    private readonly ComputeOptions _options;
    private readonly ILogger<KernelSandbox> _logger;
    private readonly Lazy<string?> _refusal;
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "p2pshare-sandbox", Guid.NewGuid().ToString("N"));
    private readonly StagedFiles _staged = new(StagedFiles.DefaultRoot);
    private readonly BlockingCollection<(Process Process, TaskCompletionSource Started)> _starts = new();
    private readonly Thread _launcher;
    private string _bubblewrap = "";
    private string _seccompFile = "";
    private CgroupRoots? _cgroups;
    private UidLeases? _uids;

    public KernelSandbox(IOptions<ComputeOptions> options, ILogger<KernelSandbox> logger)
    {
        _options = options.Value;
        _logger = logger;
        Mode = _options.Isolation;
        _refusal = new Lazy<string?>(Probe, LazyThreadSafetyMode.ExecutionAndPublication);
        // Workers are started from one thread that never ends: a child's parent-death signal
        // (bwrap --die-with-parent) fires when the *thread* that forked it exits, and thread-pool
        // threads do exit when idle.
        _launcher = new Thread(LaunchLoop) { IsBackground = true, Name = "p2pshare-sandbox-launcher" };
        _launcher.Start();
        if (Mode == WorkerIsolation.None) LogUnsandboxed();
    }

    public WorkerIsolation Mode { get; }

    /// <summary>Why the kernel wall cannot be built here, so no task may run; null when it stands (or isolation is off).</summary>
    public string? Refusal => Mode == WorkerIsolation.Kernel ? _refusal.Value : null;

    /// <summary>For <c>peers</c> and the status page: "kernel", "unsandboxed" or "refusing tasks: WHY".</summary>
    public string Status => Mode == WorkerIsolation.None ? SandboxStates.Unsandboxed
        : Refusal is { } why ? SandboxStates.Refusing(why) : SandboxStates.Kernel;

    /// <summary>Worker groups are cgroups (memory covers native memory and tmpfs, freezer pauses forks too).</summary>
    public bool UsesCgroups => Refusal is null && _cgroups is not null;

    /// <summary>The uid workers get outside the sandbox: one per worker from the range when root; the peer's otherwise.</summary>
    public bool DedicatedUids => Refusal is null && _uids is not null;

    /// <summary>Prepares one sandboxed process: a uid and cgroup of its own and the command that starts it.</summary>
    internal SandboxLease Lease(SandboxRequest request)
    {
        if (Refusal is { } refusal) throw new InvalidOperationException($"refusing tasks: {refusal}");
        return LeaseUnchecked(request);
    }

    // The probe's own lease, while Refusal is still being decided.
    private SandboxLease LeaseUnchecked(SandboxRequest request)
    {
        UidLease? uid = null;
        WorkerCgroup? group = null;
        try
        {
            uid = _uids?.Acquire() ?? (_uids is null ? null
                : throw new InvalidOperationException($"all {_options.SandboxUidCount} sandbox uids from {_options.SandboxUidBase} are in use (Compute:SandboxUidCount)"));
            var tmp = _options.WorkerTmpBytes;
            var memory = request.MemoryBytes + _options.WorkerNativeBytes + 2 * tmp;
            if (_cgroups is not null)
                group = WorkerCgroup.Create(_cgroups, $"w{Environment.ProcessId}-{Guid.NewGuid():N}", memory, _options.WorkerMaxProcesses);
            // RLIMIT_NPROC counts every process of the real uid: only a uid of the worker's own can carry it.
            var limits = new SandboxLimits(uid is null ? null : _options.WorkerMaxProcesses, _options.WorkerMaxOpenFiles, tmp,
                // Without a cgroup, the address space is the only bound on native memory.
                group is null ? request.AddressSpaceBytes : null, request.CpuSeconds);
            var command = SandboxCommand.Build(new SandboxCommandSpec(_bubblewrap, uid?.Uid, _seccompFile, group?.ProcFiles ?? [], limits,
                uid is null ? request.ReadOnlyBinds : _staged.Reachable(request.ReadOnlyBinds), tmp, request.Environment, request.Program, request.Arguments));
            return new SandboxLease(this, command, group, uid, memory);
        }
        catch
        {
            group?.Dispose();
            uid?.Dispose();
            throw;
        }
    }

    /// <summary>Starts a process on the launcher thread (see the constructor).</summary>
    internal Task StartAsync(Process process)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _starts.Add((process, started));
        return started.Task;
    }

    /// <summary>
    /// Runs <paramref name="program"/> to completion inside exactly the sandbox workers get, with
    /// <paramref name="stdin"/> as its input. The probe uses it, and the tests attack the wall through it.
    /// </summary>
    internal Task<SandboxRun> RunAsync(SandboxRequest request, string stdin, TimeSpan timeout) => RunAsync(Lease(request), stdin, timeout);

    private async Task<SandboxRun> RunAsync(SandboxLease lease, string stdin, TimeSpan timeout)
    {
        using var _ = lease;
        using var process = new Process { StartInfo = lease.StartInfo(Path.GetTempPath()) };
        await StartAsync(process).ConfigureAwait(false);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.StandardInput.WriteAsync(stdin).ConfigureAwait(false);
            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // It did not read its input: its output says why.
        }

        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            lease.Cgroup?.KillAll();
            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            return new SandboxRun(-1, await stdout.ConfigureAwait(false), $"no end within {timeout.TotalSeconds:0} s; " + await stderr.ConfigureAwait(false));
        }

        return new SandboxRun(process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
    }

    private string? Probe()
    {
        var problem = Build();
        if (problem is null)
        {
            var probe = LeaseUnchecked(new SandboxRequest("/bin/sh", ["-c", ProbeScript], [], Empty, 16 * Bytes.MiB));
            var run = RunAsync(probe, "", ProbeTimeout).GetAwaiter().GetResult();
            problem = Judge(run);
        }

        if (problem is null)
            LogWall(_bubblewrap, _uids is null ? "the peer's own (not root)" : $"{_options.SandboxUidBase}+", _cgroups is null ? "rlimits only (no cgroup this peer may create)" : "memory, pids" + (_cgroups.Freezer is null ? "" : ", freezer"));
        else
            LogRefusing(problem);
        return problem;
    }

    /// <summary>Finds the tools and writes the seccomp program; the first missing piece, or null.</summary>
    private string? Build()
    {
        if (!OperatingSystem.IsLinux()) return "the kernel sandbox needs Linux";
        if (Which(_options.BubblewrapPath) is not { } bwrap) return $"bubblewrap is not installed ({_options.BubblewrapPath} not found; Debian: apt-get install bubblewrap)";
        _bubblewrap = bwrap;
        if (Which(SandboxCommand.Prlimit) is null) return "prlimit is not installed (Debian: util-linux)";
        var root = Native.IsRoot;
        if (root && Which(SandboxCommand.Setpriv) is null) return "setpriv is not installed (Debian: util-linux)";
        try
        {
            Directory.CreateDirectory(_folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            _seccompFile = Path.Combine(_folder, "seccomp.bpf");
            SeccompFilter.WriteTo(_seccompFile);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            return $"no seccomp filter: {e.Message}";
        }

        CloseInheritedDescriptorsOnExec();
        if (root)
        {
            _uids = new UidLeases(_options.SandboxUidBase, _options.SandboxUidCount);
            _cgroups = WorkerCgroup.FindRoots("p2pshare");
        }

        return null;
    }

    /// <summary>
    /// Descriptors this process inherited without close-on-exec (from a shell, a service manager)
    /// would pass through bwrap into every task: a pipe, a socket, a folder outside the sandbox.
    /// .NET opens its own with close-on-exec; mark the inherited ones too.
    /// </summary>
    private static void CloseInheritedDescriptorsOnExec()
    {
        foreach (var entry in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            if (int.TryParse(Path.GetFileName(entry), out var fd) && fd > 2) _ = Native.SetCloseOnExec(fd);
        }
    }

    private static string? Judge(SandboxRun run)
    {
        if (run.ExitCode != 0)
            return $"bwrap could not build the sandbox ({FirstLine(run.Stderr) ?? $"exit code {run.ExitCode}"})";
        string? Field(string name) => run.Stdout.Split('\n').FirstOrDefault(l => l.StartsWith(name, StringComparison.Ordinal))?[name.Length..].Trim();
        var uid = Field("Uid:")?.Split('\t', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
        if (uid is null or "0") return $"the sandbox ran as uid {uid ?? "?"}, not an unprivileged user";
        foreach (var caps in new[] { "CapEff:", "CapPrm:", "CapBnd:" })
            if (Field(caps) is var value && (value is null || value.Trim('0').Length != 0)) return $"the sandbox kept capabilities ({caps} {value})";
        if (Field("NoNewPrivs:") != "1") return "the sandbox did not set no_new_privs";
        if (Field("Seccomp:") != "2") return "the sandbox runs without its seccomp filter";
        return null;
    }

    private static readonly IReadOnlyDictionary<string, string> Empty = new Dictionary<string, string> { ["PATH"] = "/usr/bin" };

    private static string? FirstLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() is { } line
            ? line.Length > 200 ? line[..200] : line
            : null;

    /// <summary>A full path of <paramref name="name"/>: itself when it has a slash, else the first on PATH.</summary>
    internal static string? Which(string name)
    {
        if (name.Contains('/')) return File.Exists(name) ? Path.GetFullPath(name) : null;
        var path = Environment.GetEnvironmentVariable("PATH") is { Length: > 0 } p ? p : "/usr/local/bin:/usr/bin:/bin";
        foreach (var folder in path.Split(':', StringSplitOptions.RemoveEmptyEntries).Append("/usr/bin").Append("/usr/sbin"))
        {
            var candidate = Path.Combine(folder, name);
            if (File.Exists(candidate)) return candidate;
        }

        return null;
    }

    private void LaunchLoop()
    {
        foreach (var (process, started) in _starts.GetConsumingEnumerable())
        {
            try
            {
                process.Start();
                started.TrySetResult();
            }
            catch (Exception e)
            {
                started.TrySetException(e);
            }
        }
    }

    public void Dispose()
    {
        _starts.CompleteAdding();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Tasks run behind the kernel wall: {Bwrap}, uids {Uids}, limits by {Limits}")]
    private partial void LogWall(string bwrap, string uids, string limits);

    [LoggerMessage(Level = LogLevel.Error, Message = "Refusing tasks: {Reason}. The kernel wall needs bubblewrap (apt-get install bubblewrap), util-linux (setpriv, prlimit), libseccomp2, "
        + "and unprivileged user namespaces: sysctl user.max_user_namespaces > 0, no RestrictNamespaces= or SystemCallFilter= against them in the systemd unit, "
        + "a container seccomp profile that allows them (docker: --security-opt seccomp=unconfined or a profile allowing clone/unshare). "
        + "Compute:Isolation=none runs tasks without the wall.")]
    private partial void LogRefusing(string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Compute:Isolation=none: tasks run UNSANDBOXED as the peer's own user, guarded only by the language checks")]
    private partial void LogUnsandboxed();
}

/// <summary>One sandboxed process's command, uid and cgroup; disposing frees the uid and removes the group.</summary>
internal sealed class SandboxLease(KernelSandbox sandbox, IReadOnlyList<string> command, WorkerCgroup? cgroup, UidLease? uid, long memoryLimitBytes) : IDisposable
{
    public KernelSandbox Sandbox { get; } = sandbox;

    public WorkerCgroup? Cgroup { get; } = cgroup;

    public int? Uid => uid?.Uid;

    /// <summary>The worker's whole memory limit (heap, native allowance, tmpfs caps) when a cgroup enforces it.</summary>
    public long MemoryLimitBytes { get; } = memoryLimitBytes;

    /// <summary>The wrapper shell's start info, with an empty environment: bwrap is PID 1 inside and its environment is readable there.</summary>
    public ProcessStartInfo StartInfo(string workingDirectory)
    {
        var start = new ProcessStartInfo(SandboxCommand.Shell)
        {
            WorkingDirectory = workingDirectory,
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            CreateNoWindow = true,
        };
        foreach (var argument in command) start.ArgumentList.Add(argument);
        start.Environment.Clear();
        return start;
    }

    public void Dispose()
    {
        Cgroup?.Dispose();
        uid?.Dispose();
    }
}

/// <summary>
/// Hands out uids from a range, one per live worker, across every peer on the machine: a uid is
/// held by an exclusive lock on a file named after it (released when the holder disposes or dies).
/// </summary>
internal sealed class UidLeases(int first, int count)
{
    private readonly string _folder = OperatingSystem.IsLinux()
        ? Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "p2pshare-sandbox-uids"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute).FullName
        : throw new PlatformNotSupportedException("sandbox uids need Linux");
    private int _next;

    public UidLease? Acquire()
    {
        for (var i = 0; i < count; i++)
        {
            var uid = first + (int)((uint)Interlocked.Increment(ref _next) % (uint)count);
            try
            {
                // FileShare.None is an flock(LOCK_EX | LOCK_NB) on Unix: other processes and other peers
                // of this process see the uid as taken.
                var lockFile = new FileStream(Path.Combine(_folder, uid.ToString(CultureInfo.InvariantCulture)), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                return new UidLease(uid, lockFile);
            }
            catch (IOException)
            {
                // Taken.
            }
        }

        return null;
    }
}

internal sealed class UidLease(int uid, FileStream lockFile) : IDisposable
{
    public int Uid { get; } = uid;

    public void Dispose() => lockFile.Dispose();
}

/// <summary>The sandbox state as peers advertise it (<c>LoadReport.Sandbox</c>).</summary>
public static class SandboxStates
{
    public const string Kernel = "kernel";
    public const string Unsandboxed = "unsandboxed";
    public const string RefusingPrefix = "refusing tasks: ";

    public static string Refusing(string why) => RefusingPrefix + why;
}
