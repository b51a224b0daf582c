using System.Diagnostics;
using System.Globalization;

namespace P2PShare.Compute;

/// <summary>
/// Starts Python sandbox workers: <c>python3 -I -B p2pshare_worker.py</c> (isolated mode, no bytecode
/// files) with an empty environment, behind the kernel wall (<see cref="KernelSandbox"/>: only /usr,
/// the interpreter's prefix and the worker script visible, read-only). With <c>Compute:Isolation=none</c>
/// they start in an empty folder, inside empty network and PID namespaces when this machine allows them
/// (<c>unshare --user --map-root-user --net --pid --fork --kill-child</c>).
/// A worker is a zygote: a warm, already walled-off interpreter that forks a task process ahead of
/// need, which runs the zygote's tasks one after another while it stays clean (its interpreter as the
/// zygote left it; one thread, its own descriptors and no leftover process, checked from /proc) and is
/// replaced by a fresh fork otherwise (always with <c>Compute:Isolation=none</c>): a few hundred µs of CPU a
/// task instead of ~2 ms a fork, and nothing a task changes or leaves running meets the next. The
/// zygote says hello with its PID as the peer sees it; time slicing stops the whole sandbox (its
/// cgroup freezer, or SIGSTOP to the zygote's process group, which its task shares), and timeouts
/// and cancels kill the whole sandbox, so the pool replaces the zygote. Like a C# worker, a zygote is
/// bound to one submitter by the pool. It caps each task's address space at the heap limit and its
/// CPU time at the longest timeout, and refuses network, processes and files with an audit hook
/// (unless <see cref="ComputeOptions.PythonAuditHook"/> is off, to test the kernel wall alone).
/// Whether python3 and the namespaces work is probed once, at start.
/// </summary>
public sealed partial class PythonWorkerFactory : IWorkerFactory
{
    /// <summary>The oldest interpreter the worker supports (audit hooks came in 3.8).</summary>
    public static readonly Version MinimumVersion = new(3, 8);

    internal const string ScriptName = "p2pshare_worker.py";
    private const string SandboxScript = "/worker/" + ScriptName;
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(10);
    private static readonly string[] Namespaces = ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", "--"];

    private readonly ComputeOptions _options;
    private readonly ILogger<PythonWorkerFactory> _logger;
    private readonly string _script;
    private readonly string[] _launcher = [];
    private readonly KernelSandbox _sandbox;
    private readonly List<(string Source, string Target)> _binds = [];

    public PythonWorkerFactory(IOptions<ComputeOptions> options, ILogger<PythonWorkerFactory> logger, KernelSandbox? sandbox = null)
    {
        _options = options.Value;
        _logger = logger;
        _sandbox = sandbox ?? new KernelSandbox(options, Microsoft.Extensions.Logging.Abstractions.NullLogger<KernelSandbox>.Instance);
        _script = Path.Combine(AppContext.BaseDirectory, ScriptName);
        var python = _options.PythonPath;
        if (!_options.PythonAuditHook && !string.IsNullOrWhiteSpace(python)) LogNoAuditHook();
        if (string.IsNullOrWhiteSpace(python))
        {
            Unavailable = "Python tasks are switched off (Compute:PythonPath is empty)";
            return;
        }

        if (!File.Exists(_script))
        {
            Unavailable = $"the Python sandbox worker is missing: {_script}";
            return;
        }

        // Behind the wall the interpreter must be readable by the sandbox's uid: the system's, not a
        // user-local one found first on PATH (pyenv under /root is closed to other users).
        if (_sandbox.Mode == WorkerIsolation.Kernel && !python.Contains('/') && File.Exists("/usr/bin/" + python)) python = "/usr/bin/" + python;

        // sys.executable: workers start the interpreter itself, not a wrapper found on PATH (a pyenv
        // shim costs ~100 ms a start).
        var (exit, lines) = Run([python, "-I", "-c", "import sys; print(sys.executable); print('%d.%d.%d' % sys.version_info[:3]); print(sys.base_prefix)"]);
        if (exit != 0 || lines.Length < 2 || !System.Version.TryParse(lines[1], out var version))
        {
            Unavailable = $"{python} was not found or does not run ({(exit == 0 ? "no version" : Describe(exit, lines))}); install python3 or set Compute:PythonPath";
            LogUnavailable(Unavailable);
            return;
        }

        if (version < MinimumVersion)
        {
            Unavailable = $"{python} is Python {version}; Python tasks need {MinimumVersion} or later (Compute:PythonPath)";
            LogUnavailable(Unavailable);
            return;
        }

        Interpreter = lines[0].Length > 0 && File.Exists(lines[0]) ? lines[0] : python;
        Version = lines[1];
        if (_sandbox.Mode == WorkerIsolation.Kernel)
        {
            if (_sandbox.Refusal is { } why)
            {
                Unavailable = $"refusing tasks: {why}";
                return;
            }

            // The interpreter's installation where /usr does not hold it (pyenv, a venv's base): bound
            // where it is, so the sandbox never needs the folders above it (/root is closed to others).
            if (lines.Length > 2 && Path.IsPathRooted(lines[2]) && !lines[2].StartsWith("/usr/", StringComparison.Ordinal) && lines[2] != "/usr")
                _binds.Add((lines[2], lines[2]));
            _binds.Add((_script, SandboxScript));
            var probe = _sandbox.RunAsync(Request(Interpreter, ["-I", "-c", "print('ok')"]), "", ProbeTimeout).GetAwaiter().GetResult();
            if (probe.ExitCode != 0 || probe.Stdout.Trim() != "ok")
            {
                Unavailable = $"{Interpreter} does not run inside the sandbox ({Describe(probe.ExitCode, probe.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries))}); "
                    + "it must be readable by other users: install Debian's python3 and set Compute:PythonPath=/usr/bin/python3";
                LogUnavailable(Unavailable);
                return;
            }

            LogProbed(Interpreter, Version, true);
            return;
        }

        if (_options.PythonNamespaces)
        {
            // In its own PID namespace the interpreter is PID 1.
            var (nsExit, nsLines) = Run([.. Namespaces, Interpreter, "-I", "-c", "import os; print(os.getpid())"]);
            _unshared = nsExit == 0 && nsLines is ["1", ..];
            if (!_unshared) LogNoNamespaces(Describe(nsExit, nsLines));
        }

        _launcher = _unshared ? [.. Namespaces, Interpreter] : [Interpreter];
        LogProbed(Interpreter, Version, Namespaced);
    }

    public string Language => TaskLanguages.Python;

    public string? Unavailable { get; }

    /// <summary>A zygote serves many tasks (a fresh fork each); it keeps compiled programs, so it is recycled like a C# worker.</summary>
    public int? RecycleAfterPrograms => null;

    /// <summary>The interpreter workers run: <c>sys.executable</c> of <see cref="ComputeOptions.PythonPath"/>.</summary>
    public string? Interpreter { get; }

    /// <summary>The interpreter's version, e.g. 3.11.2.</summary>
    public string? Version { get; }

    /// <summary>Workers run in empty network and PID namespaces (no interfaces but a down loopback, no other process): with <c>unshare</c>, or behind the kernel wall.</summary>
    public bool Namespaced => _sandbox.Mode == WorkerIsolation.Kernel ? Unavailable is null : _unshared;

    private readonly bool _unshared;

    public async Task<IWorker> StartAsync(CancellationToken cancellationToken) => await StartWorkerAsync(cancellationToken).ConfigureAwait(false);

    public async Task<WorkerProcess> StartWorkerAsync(CancellationToken cancellationToken)
    {
        if (Unavailable is not null) throw new InvalidOperationException(Unavailable);
        var heap = _options.WorkerHeapLimitBytes;
        if (_sandbox.Mode == WorkerIsolation.Kernel)
        {
            // --reap: the sandbox has a PID namespace and a /proc of its own, so the zygote may kill every process it sees there.
            var lease = _sandbox.Lease(Request(Interpreter!, ["-I", "-B", SandboxScript, heap.ToString(CultureInfo.InvariantCulture), CpuSecondsPerTask, "--reap", .. HookArguments]));
            var sandboxed = await WorkerProcess.StartAsync(lease, heap, WorkerProcess.PythonOutcomes, _logger, cancellationToken, signalGroup: true).ConfigureAwait(false);
            LogStarted(sandboxed.ProcessId, sandboxed.StartupTime.TotalMilliseconds);
            return sandboxed;
        }

        string[] arguments = [.. _launcher.Skip(1), "-I", "-B", _script, heap.ToString(CultureInfo.InvariantCulture), CpuSecondsPerTask, .. HookArguments];
        // No environment at all: the peer's (a database password, say) is nothing a program should read.
        var worker = await WorkerProcess.StartAsync(_launcher[0], arguments, heap, new Dictionary<string, string>(), inheritEnvironment: false, WorkerProcess.PythonOutcomes,
            _logger, cancellationToken, signalGroup: true).ConfigureAwait(false);
        LogStarted(worker.ProcessId, worker.StartupTime.TotalMilliseconds);
        return worker;
    }

    /// <summary>The worker arms its audit hook unless told not to (<see cref="ComputeOptions.PythonAuditHook"/>).</summary>
    private string[] HookArguments => _options.PythonAuditHook ? [] : ["--no-audit-hook"];

    /// <summary>RLIMIT_CPU of each task's process, a backstop behind the scheduler's timeout: the longest timeout.</summary>
    private string CpuSecondsPerTask => ((long)Math.Ceiling(_options.MaxTimeout.TotalSeconds) + 1).ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// A zygote's sandbox. No CPU-time backstop on the zygote itself, which lives across tasks: it sets
    /// one on each task's process, and caps each task's address space at the heap limit.
    /// </summary>
    private SandboxRequest Request(string interpreter, string[] arguments) =>
        new(interpreter, arguments, _binds, new Dictionary<string, string>(), _options.WorkerHeapLimitBytes);

    /// <summary>Runs a command to completion (bounded); its exit code (-1: did not start or finish) and stdout lines, or stderr's when it failed.</summary>
    private static (int Exit, string[] Lines) Run(string[] command)
    {
        try
        {
            var start = new ProcessStartInfo(command[0])
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
            };
            foreach (var argument in command.Skip(1)) start.ArgumentList.Add(argument);
            using var process = Process.Start(start)!;
            process.StandardInput.Close();
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(ProbeTimeout))
            {
                process.Kill(entireProcessTree: true);
                return (-1, [$"no answer within {ProbeTimeout.TotalSeconds:0} s"]);
            }

            var text = process.ExitCode == 0 ? stdout.Result : stderr.Result;
            return (process.ExitCode, text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return (-1, [e.Message]);
        }
    }

    private static string Describe(int exit, string[] lines)
    {
        var first = lines.FirstOrDefault() ?? "";
        if (first.Length > 200) first = first[..200];
        return exit == -1 ? first : $"exit code {exit}{(first.Length > 0 ? ": " + first : "")}";
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Python tasks: {Python} {Version}; network and PID namespaces per worker (kernel wall or unshare): {Namespaced}")]
    private partial void LogProbed(string python, string version, bool namespaced);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Python workers run without network and PID namespaces (unshare failed: {Reason}); only the audit hook refuses network and processes")]
    private partial void LogNoNamespaces(string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Compute:PythonAuditHook=false: Python tasks run without the audit hook, the second line behind the kernel wall; only for testing the wall alone")]
    private partial void LogNoAuditHook();

    [LoggerMessage(Level = LogLevel.Information, Message = "No Python tasks on this peer: {Reason}")]
    private partial void LogUnavailable(string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Python worker {Pid} ready in {Ms:0} ms")]
    private partial void LogStarted(int pid, double ms);
}
