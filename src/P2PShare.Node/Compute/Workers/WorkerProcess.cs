using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using P2PShare.Compute.Protocol;

namespace P2PShare.Compute;

/// <summary>Starts sandbox workers: <c>dotnet p2pshare-worker.dll</c> with a capped heap, in an empty folder.</summary>
public sealed partial class WorkerProcessFactory(IOptions<ComputeOptions> options, ILogger<WorkerProcessFactory> logger) : IWorkerFactory
{
    /// <summary>How long a new worker may take to say hello; generous because the machine may be busy.</summary>
    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    public async Task<IWorker> StartAsync(CancellationToken cancellationToken) =>
        await StartWorkerAsync(cancellationToken).ConfigureAwait(false);

    /// <summary>Like <see cref="StartAsync"/>, typed, for callers that want <see cref="WorkerProcess.StartupTime"/>.</summary>
    public async Task<WorkerProcess> StartWorkerAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        var workerPath = o.WorkerPath ?? Path.Combine(AppContext.BaseDirectory, "p2pshare-worker.dll");
        if (!File.Exists(workerPath)) throw new InvalidOperationException($"the sandbox worker is missing: {workerPath} (Compute:WorkerPath)");
        var worker = await WorkerProcess.StartAsync(DotnetHost(), [workerPath], o.WorkerHeapLimitBytes, DotnetEnvironment(o.WorkerHeapLimitBytes),
            inheritEnvironment: true, logger, cancellationToken).ConfigureAwait(false);
        LogStarted(worker.ProcessId, worker.StartupTime.TotalMilliseconds);
        return worker;
    }

    private static Dictionary<string, string> DotnetEnvironment(long heapLimitBytes) => new()
    {
        ["DOTNET_GCHeapHardLimit"] = "0x" + heapLimitBytes.ToString("x", CultureInfo.InvariantCulture),
        ["DOTNET_gcServer"] = "0",
        ["DOTNET_TieredPGO"] = "0",
        // No diagnostics IPC socket per worker, and no core dumps of hostile programs.
        ["DOTNET_EnableDiagnostics"] = "0",
        ["DOTNET_DbgEnableMiniDump"] = "0",
    };

    private static string DotnetHost()
    {
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self).Equals("dotnet", StringComparison.OrdinalIgnoreCase)) return self;
        return Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Worker {Pid} ready in {Ms:0} ms")]
    private partial void LogStarted(int pid, double ms);
}

/// <summary>
/// One warm worker process, driven over its stdin/stdout (see <see cref="WorkerFrames"/>). Runs one
/// request at a time. Whatever ends the process mid-run (crash, stack overflow, heap cap, <see cref="Kill"/>)
/// completes <see cref="RunAsync"/> with a failure result, never an exception:
/// killed by <see cref="Kill"/> → Crashed "worker killed" (the scheduler knows whether that meant a
/// timeout or a cancel and maps it); cancelling RunAsync's token kills too and completes with Cancelled.
/// A worker that failed once is unhealthy for good and must be replaced.
/// </summary>
public sealed partial class WorkerProcess : IWorker
{
    private const int SigKill = 9;
    private const int SigCont = 18; // Linux x64
    private const int SigStop = 19;
    private const int StderrTailChars = 4096;
    private static readonly TimeSpan ExitGrace = TimeSpan.FromSeconds(5);

    private readonly Process _process;
    private readonly Stream _stdin;
    private readonly Stream _stdout;
    private readonly string _workDir;
    private readonly long _heapLimitBytes;
    private readonly ILogger _logger;
    private readonly HashSet<string> _loaded = new(StringComparer.Ordinal);
    private readonly StringBuilder _stderrTail = new();
    private readonly TaskCompletionSource _stderrClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _busy;
    private volatile bool _failed;
    private volatile bool _killed;
    private volatile bool _cancelled;
    private volatile bool _sawStackOverflow;
    private volatile bool _sawOutOfMemory;
    private volatile string? _unhandled;

    private WorkerProcess(Process process, string workDir, long heapLimitBytes, ILogger logger)
    {
        _process = process;
        _workDir = workDir;
        _heapLimitBytes = heapLimitBytes;
        _logger = logger;
        _stdin = process.StandardInput.BaseStream;
        _stdout = process.StandardOutput.BaseStream;
        ProcessId = process.Id;
    }

    /// <summary>
    /// The process that runs programs: the one started, or, under a launcher that forks (a PID
    /// namespace), its child that said hello. Signals go to it; CPU time is its.
    /// </summary>
    public int ProcessId { get; private set; }

    public bool IsHealthy => !_failed && !_killed && !HasExited;

    public int ProgramsLoaded
    {
        get
        {
            lock (_loaded) return _loaded.Count;
        }
    }

    /// <summary>From starting the process until it answered its first frame.</summary>
    public TimeSpan StartupTime { get; private set; }

    private bool HasExited
    {
        get
        {
            try
            {
                return _process.HasExited;
            }
            catch (InvalidOperationException)
            {
                return true;
            }
        }
    }

    /// <summary>
    /// Starts <paramref name="fileName"/> with <paramref name="arguments"/> in a new empty folder and
    /// waits for its hello frame. The process must speak <see cref="WorkerFrames"/> on stdin/stdout;
    /// the .NET worker and the Python worker both do.
    /// </summary>
    /// <param name="inheritEnvironment">False: the process sees only <paramref name="environment"/>, none of the peer's.</param>
    internal static async Task<WorkerProcess> StartAsync(string fileName, IEnumerable<string> arguments, long heapLimitBytes,
        IReadOnlyDictionary<string, string> environment, bool inheritEnvironment, ILogger logger, CancellationToken cancellationToken)
    {
        var workDir = Path.Combine(Path.GetTempPath(), "p2pshare-workers", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(workDir);
        var start = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workDir,
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            CreateNoWindow = true,
        };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        if (!inheritEnvironment) start.Environment.Clear();
        foreach (var (key, value) in environment) start.Environment[key] = value;

        var watch = Stopwatch.StartNew();
        var process = new Process { StartInfo = start };
        try
        {
            process.Start();
        }
        catch
        {
            process.Dispose();
            TryDeleteFolder(workDir);
            throw;
        }

        var worker = new WorkerProcess(process, workDir, heapLimitBytes, logger);
        process.ErrorDataReceived += (_, e) => worker.OnStderr(e.Data);
        process.BeginErrorReadLine();
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(WorkerProcessFactory.StartTimeout);
            using var kill = timeout.Token.Register(worker.Kill);
            var hello = await WorkerFrames.ReadAsync<WorkerHello>(worker._stdout, CancellationToken.None).ConfigureAwait(false);
            if (hello is null)
            {
                cancellationToken.ThrowIfCancellationRequested();
                await worker.WaitForEndAsync().ConfigureAwait(false);
                throw new InvalidOperationException($"the sandbox worker did not start: {worker.DescribeExit()}");
            }

            worker.Adopt(hello.Value.Header.ProcessId);
        }
        catch
        {
            await worker.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        worker.StartupTime = watch.Elapsed;
        return worker;
    }

    public async Task<ExecutionResult> RunAsync(ExecutionRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (Interlocked.Exchange(ref _busy, 1) == 1) throw new InvalidOperationException("a worker runs one request at a time");
        try
        {
            if (!IsHealthy) return ExecutionResult.Failure(TaskErrorKind.Crashed, "the worker is not running");
            using var cancel = cancellationToken.Register(() =>
            {
                _cancelled = true;
                Kill();
            });
            if (cancellationToken.IsCancellationRequested) return ExecutionResult.Failure(TaskErrorKind.Cancelled, "cancelled before it started");

            bool send;
            lock (_loaded) send = !_loaded.Contains(request.ProgramHash);
            var header = new WorkerRequestHeader(request.ProgramHash, request.Function, request.ArgsJson, request.MaxResultBytes, request.MaxOutputBytes);
            try
            {
                // The streams are never cancelled: killing the process is what ends a run early, and
                // the pipe closing is how we learn it.
                await WorkerFrames.WriteAsync(_stdin, header, send ? request.Assembly : ReadOnlyMemory<byte>.Empty, CancellationToken.None).ConfigureAwait(false);
                if (send)
                    lock (_loaded) _loaded.Add(request.ProgramHash);
                var frame = await WorkerFrames.ReadAsync<WorkerResponseHeader>(_stdout, CancellationToken.None).ConfigureAwait(false);
                if (frame is { } f)
                {
                    var kind = (TaskErrorKind)f.Header.Kind;
                    if (kind == TaskErrorKind.None)
                        return new ExecutionResult(TaskErrorKind.None, Encoding.UTF8.GetString(f.Payload, f.BodyOffset, f.Payload.Length - f.BodyOffset), null, f.Header.Output);
                    if (kind == TaskErrorKind.Crashed) _failed = true; // the worker itself says it is confused
                    return ExecutionResult.Failure(kind, f.Header.Error ?? kind.ToString(), f.Header.Output);
                }
            }
            catch (Exception e) when (e is IOException or EndOfStreamException or InvalidDataException or ObjectDisposedException or System.Text.Json.JsonException)
            {
                if (!_killed) LogProtocolFailure(ProcessId, e.Message);
            }

            return await EndedAsync().ConfigureAwait(false);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    public void Pause() => Signal(SigStop);

    public void Resume() => Signal(SigCont);

    public void Kill()
    {
        _killed = true;
        KillProcess();
    }

    /// <summary>Takes the process that said hello as the one to signal: the started one, or its direct child.</summary>
    private void Adopt(int helloPid)
    {
        if (helloPid == _process.Id) return;
        if (ParentOf(helloPid) != _process.Id)
            throw new InvalidOperationException($"the sandbox worker said hello as process {helloPid}, neither the started process {_process.Id} nor its child");
        ProcessId = helloPid;
    }

    private static int? ParentOf(int pid)
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

    private void KillProcess()
    {
        // The program's process first, so that its launcher reaps it and exits by itself.
        if (ProcessId != _process.Id && !HasExited) SendSignal(ProcessId, SigKill);
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or NotSupportedException)
        {
            // Already gone.
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!HasExited) Kill();
        await WaitForEndAsync().ConfigureAwait(false);
        _process.Dispose();
        TryDeleteFolder(_workDir);
    }

    // The pipe closed or spoke nonsense: the run is over and so is this worker. Explain why.
    private async Task<ExecutionResult> EndedAsync()
    {
        _failed = true;
        // A dying runtime may still be writing its reason (a stack overflow prints the whole stack)
        // after the pipe broke: let it finish and exit before judging, and kill it only if it lingers.
        await WaitForEndAsync().ConfigureAwait(false);
        if (!HasExited) KillProcess(); // alive but incoherent: don't reuse it
        if (_cancelled) return ExecutionResult.Failure(TaskErrorKind.Cancelled, "cancelled; the worker was killed");
        if (_sawStackOverflow) return ExecutionResult.Failure(TaskErrorKind.Crashed, $"stack overflow; {DescribeExit()}");
        if (_sawOutOfMemory)
            return ExecutionResult.Failure(TaskErrorKind.OutOfMemory, $"out of memory: the worker's heap limit of {Bytes.Format(_heapLimitBytes)} was exceeded");
        if (_killed) return ExecutionResult.Failure(TaskErrorKind.Crashed, "worker killed");
        return ExecutionResult.Failure(TaskErrorKind.Crashed, $"the worker crashed: {DescribeExit()}");
    }

    private async Task WaitForEndAsync()
    {
        using var grace = new CancellationTokenSource(ExitGrace);
        try
        {
            await _process.WaitForExitAsync(grace.Token).ConfigureAwait(false);
            await _stderrClosed.Task.WaitAsync(grace.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or InvalidOperationException)
        {
            // Bounded: a worker that will not die after SIGKILL is beyond what we can do here.
        }
    }

    private string DescribeExit()
    {
        string code;
        try
        {
            code = _process.HasExited ? $"worker exited with code {_process.ExitCode}" : "worker did not exit";
        }
        catch (InvalidOperationException)
        {
            code = "worker exited";
        }

        string tail;
        lock (_stderrTail) tail = _unhandled ?? LastLines(_stderrTail.ToString(), 3);
        return tail.Length == 0 ? code : $"{code}: {tail}";
    }

    private void OnStderr(string? line)
    {
        if (line is null)
        {
            _stderrClosed.TrySetResult();
            return;
        }

        // The first line of a stack overflow report is the one that matters, and it scrolls out of a tail.
        if (line.Contains("Stack overflow", StringComparison.OrdinalIgnoreCase)) _sawStackOverflow = true;
        if (_unhandled is null && line.StartsWith("Unhandled exception.", StringComparison.Ordinal)) _unhandled = line.Length > 300 ? line[..300] : line;
        if (line.Contains("OutOfMemory", StringComparison.Ordinal) || line.Contains("Out of memory", StringComparison.OrdinalIgnoreCase)
            || line.StartsWith("MemoryError", StringComparison.Ordinal)) _sawOutOfMemory = true;
        lock (_stderrTail)
        {
            _stderrTail.AppendLine(line);
            if (_stderrTail.Length > StderrTailChars) _stderrTail.Remove(0, _stderrTail.Length - StderrTailChars);
        }
    }

    private static string LastLines(string text, int count)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var last = string.Join(" | ", lines.Skip(Math.Max(0, lines.Length - count)));
        return last.Length > 500 ? last[^500..] : last;
    }

    private void Signal(int signal)
    {
        if (HasExited) return;
        if (SendSignal(ProcessId, signal) != 0)
            LogSignalFailed(ProcessId, signal, Marshal.GetLastPInvokeError());
    }

    private static void TryDeleteFolder(string path)
    {
        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Worker {Pid} broke the protocol or died: {Reason}")]
    private partial void LogProtocolFailure(int pid, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not signal worker {Pid} with {Signal}: errno {Errno}")]
    private partial void LogSignalFailed(int pid, int signal, int errno);
}
