using System.Diagnostics;
using System.Globalization;
using P2PShare.Hosting;

namespace P2PShare.Compute;

/// <summary>
/// Starts Python sandbox workers: <c>python3 -I -B p2pshare_worker.py</c> (isolated mode, no bytecode
/// files) in an empty folder, inside an empty network namespace when this machine allows one
/// (<c>unshare --user --map-root-user --net</c>; <c>unshare</c> execs in place, so the worker keeps
/// its PID and the scheduler's SIGSTOP/SIGCONT/kill reach it). The worker caps its own address
/// space at the heap limit plus the interpreter's baseline and refuses network, processes and files
/// with an audit hook. Whether python3 and network namespaces work is probed once, at start.
/// </summary>
public sealed partial class PythonWorkerFactory : IWorkerFactory
{
    /// <summary>The interpreter's own address space (libraries, arenas) on top of the program's share.</summary>
    internal const long InterpreterBaselineBytes = 64 * Bytes.MiB;
    private const string ScriptName = "p2pshare_worker.py";
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(10);

    private readonly ComputeOptions _options;
    private readonly ILogger<PythonWorkerFactory> _logger;
    private readonly string _script;
    private readonly string[] _launcher;

    public PythonWorkerFactory(IOptions<ComputeOptions> options, ILogger<PythonWorkerFactory> logger)
    {
        _options = options.Value;
        _logger = logger;
        _script = Path.Combine(AppContext.BaseDirectory, ScriptName);
        var python = _options.PythonPath;
        if (string.IsNullOrWhiteSpace(python))
        {
            Unavailable = "Python tasks are switched off (Compute:PythonPath is empty)";
            _launcher = [];
        }
        else if (!File.Exists(_script))
        {
            Unavailable = $"the Python sandbox worker is missing: {_script}";
            _launcher = [];
        }
        else if (Probe([python, "-I", "-c", "import sys; print(sys.version_info[0])"]) is { } problem)
        {
            Unavailable = $"{python} does not run ({problem}); install python3 or set Compute:PythonPath";
            _launcher = [];
        }
        else
        {
            string[] isolated = ["unshare", "--user", "--map-root-user", "--net", "--", python];
            NetworkIsolated = _options.PythonNetworkNamespace && Probe([.. isolated, "-I", "-c", "pass"]) is null;
            _launcher = NetworkIsolated ? isolated : [python];
            Version = Probe([python, "-I", "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"], capture: true);
            LogProbed(python, Version ?? "?", NetworkIsolated);
        }
    }

    public string Language => TaskLanguages.Python;

    public string? Unavailable { get; }

    /// <summary>Workers run in an empty network namespace (no interfaces but a down loopback).</summary>
    public bool NetworkIsolated { get; }

    /// <summary>The interpreter's version, e.g. 3.11.2.</summary>
    public string? Version { get; }

    public async Task<IWorker> StartAsync(CancellationToken cancellationToken) => await StartWorkerAsync(cancellationToken).ConfigureAwait(false);

    public async Task<WorkerProcess> StartWorkerAsync(CancellationToken cancellationToken)
    {
        if (Unavailable is not null) throw new InvalidOperationException(Unavailable);
        var memoryLimit = _options.WorkerHeapLimitBytes + InterpreterBaselineBytes;
        string[] arguments = [.. _launcher.Skip(1), "-I", "-B", _script, memoryLimit.ToString(CultureInfo.InvariantCulture)];
        var environment = new Dictionary<string, string> { ["PYTHONHASHSEED"] = "0", ["PYTHONIOENCODING"] = "utf-8" };
        var worker = await WorkerProcess.StartAsync(_launcher[0], arguments, memoryLimit, environment, _logger, cancellationToken).ConfigureAwait(false);
        LogStarted(worker.ProcessId, worker.StartupTime.TotalMilliseconds);
        return worker;
    }

    /// <summary>Runs a command to completion; null when it exited 0 (or its first output line, with <paramref name="capture"/>), else why not.</summary>
    private static string? Probe(string[] command, bool capture = false)
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
                return capture ? null : $"no answer within {ProbeTimeout.TotalSeconds:0} s";
            }

            if (capture) return process.ExitCode == 0 ? stdout.Result.Trim() : null;
            return process.ExitCode == 0 ? null : $"exit code {process.ExitCode}: {FirstLine(stderr.Result)}";
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return capture ? null : e.Message;
        }
    }

    private static string FirstLine(string text)
    {
        var line = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "";
        return line.Length > 200 ? line[..200] : line;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Python tasks: {Python} {Version}; network namespace per worker: {Isolated}")]
    private partial void LogProbed(string python, string version, bool isolated);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Python worker {Pid} ready in {Ms:0} ms")]
    private partial void LogStarted(int pid, double ms);
}
