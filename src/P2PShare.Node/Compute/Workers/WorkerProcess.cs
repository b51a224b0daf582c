using System.Buffers.Binary;
using System.Collections.Frozen;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using P2PShare.Compute.Protocol;

namespace P2PShare.Compute;

/// <summary>
/// Starts C# workers: <c>dotnet p2pshare-worker.dll</c> with a capped heap, behind the kernel wall
/// (<see cref="KernelSandbox"/>: only the .NET runtime and the worker's own files visible, read-only)
/// or, with <c>Compute:Isolation=none</c>, as the peer's user in an empty folder.
/// </summary>
public sealed partial class WorkerProcessFactory : IWorkerFactory
{
    /// <summary>How long a new worker may take to say hello; generous because the machine may be busy.</summary>
    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private const string SandboxWorkerFolder = "/worker";
    private readonly IOptions<ComputeOptions> _options;
    private readonly ILogger<WorkerProcessFactory> _logger;
    private readonly KernelSandbox _sandbox;

    public WorkerProcessFactory(IOptions<ComputeOptions> options, ILogger<WorkerProcessFactory> logger, KernelSandbox? sandbox = null)
    {
        _options = options;
        _logger = logger;
        _sandbox = sandbox ?? new KernelSandbox(options, Microsoft.Extensions.Logging.Abstractions.NullLogger<KernelSandbox>.Instance);
    }

    /// <summary>The wall workers start behind.</summary>
    public KernelSandbox Sandbox => _sandbox;

    public string? Unavailable => _sandbox.Refusal is { } why ? $"refusing tasks: {why}" : null;

    public async Task<IWorker> StartAsync(CancellationToken cancellationToken) =>
        await StartWorkerAsync(cancellationToken).ConfigureAwait(false);

    /// <summary>Like <see cref="StartAsync"/>, typed, for callers that want <see cref="WorkerProcess.StartupTime"/>.</summary>
    public async Task<WorkerProcess> StartWorkerAsync(CancellationToken cancellationToken)
    {
        var o = _options.Value;
        var workerPath = o.WorkerPath ?? Path.Combine(AppContext.BaseDirectory, "p2pshare-worker.dll");
        if (!File.Exists(workerPath)) throw new InvalidOperationException($"the sandbox worker is missing: {workerPath} (Compute:WorkerPath)");
        WorkerProcess worker;
        if (_sandbox.Mode == WorkerIsolation.None)
        {
            worker = await WorkerProcess.StartAsync(DotnetHost(), [workerPath], o.WorkerHeapLimitBytes, DotnetEnvironment(o.WorkerHeapLimitBytes),
                inheritEnvironment: true, WorkerProcess.DotnetOutcomes, _logger, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            var host = Path.GetFullPath(DotnetHost() is var h && h.Contains('/') ? h : KernelSandbox.Which(h) ?? h);
            var environment = DotnetEnvironment(o.WorkerHeapLimitBytes);
            environment["PATH"] = "/usr/bin";
            var lease = _sandbox.Lease(new SandboxRequest(host, [SandboxWorkerFolder + "/" + Path.GetFileName(workerPath)],
                SandboxBinds(host, workerPath), environment, o.WorkerHeapLimitBytes));
            worker = await WorkerProcess.StartAsync(lease, o.WorkerHeapLimitBytes, WorkerProcess.DotnetOutcomes, _logger, cancellationToken)
                .ConfigureAwait(false);
        }

        LogStarted(worker.ProcessId, worker.StartupTime.TotalMilliseconds);
        return worker;
    }

    /// <summary>
    /// The .NET installation the host belongs to (it holds host/fxr and shared/Microsoft.NETCore.App),
    /// where it is not already under /usr, and the worker's own files only: the folder they sit in is
    /// the peer's, with its assemblies and settings.
    /// </summary>
    private static List<(string Source, string Target)> SandboxBinds(string host, string workerPath)
    {
        var binds = new List<(string, string)>();
        var root = Path.GetDirectoryName(new FileInfo(host).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? host)!;
        if (!root.StartsWith("/usr/", StringComparison.Ordinal)) binds.Add((root, root));
        var folder = Path.GetDirectoryName(Path.GetFullPath(workerPath))!;
        var name = Path.GetFileNameWithoutExtension(workerPath);
        foreach (var file in new[] { name + ".dll", name + ".runtimeconfig.json", name + ".deps.json" })
        {
            var source = Path.Combine(folder, file);
            if (File.Exists(source)) binds.Add((source, SandboxWorkerFolder + "/" + file));
        }

        return binds;
    }

    internal static Dictionary<string, string> DotnetEnvironment(long heapLimitBytes) => new()
    {
        ["DOTNET_GCHeapHardLimit"] = "0x" + heapLimitBytes.ToString("x", CultureInfo.InvariantCulture),
        ["DOTNET_gcServer"] = "0",
        ["DOTNET_TieredPGO"] = "0",
        // No diagnostics IPC socket per worker, and no core dumps of hostile programs.
        ["DOTNET_EnableDiagnostics"] = "0",
        ["DOTNET_DbgEnableMiniDump"] = "0",
    };

    internal static string DotnetHost()
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
/// request at a time; a .NET worker also takes one more written ahead (<see cref="CanRunAhead"/>),
/// which it starts the moment it has answered the one before, and answers in order. Whatever ends the process mid-run (crash, stack overflow, heap cap, <see cref="Kill"/>)
/// completes <see cref="RunAsync"/> with a failure result, never an exception:
/// killed by <see cref="Kill"/> → Crashed "worker killed" (the scheduler knows whether that meant a
/// timeout or a cancel and maps it); cancelling RunAsync's token kills too and completes with Cancelled.
/// A worker that failed once is unhealthy for good and must be replaced.
/// </summary>
/// <remarks>
/// The worker runs strangers' code, so nothing it writes is believed: its stdout is read by one
/// reader for the worker's whole life, frame by frame, each within what the outstanding request can
/// legitimately produce (checked before allocating); a response must echo the request's sequence
/// number and report only an outcome this runtime may report (<see cref="DotnetOutcomes"/>,
/// <see cref="PythonOutcomes"/>). Anything else (an oversized or malformed frame, another request's
/// answer, a second answer, bytes while no request is outstanding) is a protocol violation: the
/// process is killed and the task ends Crashed "protocol violation (...)". Its stderr is read as raw
/// bytes into a fixed-size <see cref="WorkerStderr"/>.
/// </remarks>
public sealed partial class WorkerProcess : IWorker
{
    /// <summary>What the .NET worker reports: the peer compiled and checked the program, so never CompileError or NotAllowed.</summary>
    internal static readonly FrozenSet<int> DotnetOutcomes = new[]
    {
        WorkerOutcome.None, WorkerOutcome.InvalidArguments, WorkerOutcome.Exception, WorkerOutcome.OutOfMemory,
        WorkerOutcome.Crashed, WorkerOutcome.ResultTooLarge,
    }.ToFrozenSet();

    /// <summary>The Python worker also compiles the source and refuses operations (its audit hook) itself.</summary>
    internal static readonly FrozenSet<int> PythonOutcomes = DotnetOutcomes.Append(WorkerOutcome.CompileError).Append(WorkerOutcome.NotAllowed).ToFrozenSet();

    internal const string ProtocolViolation = "protocol violation";

    private const int SigKill = Native.SigKill;
    private const int SigCont = Native.SigCont;
    private const int SigStop = Native.SigStop;
    private static readonly TimeSpan ExitGrace = TimeSpan.FromSeconds(5);
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly Process _process;
    private readonly Stream _stdin;
    private readonly Stream _stdout;
    private readonly string _workDir;
    private readonly long _heapLimitBytes;
    private readonly FrozenSet<int> _reportable;
    private readonly ILogger _logger;
    private readonly SandboxLease? _sandbox;
    private readonly HashSet<string> _loaded = new(StringComparer.Ordinal);
    private readonly object _gate = new();
    private readonly WorkerStderr _stderr = new();
    // Requests written and not yet answered, oldest first: the worker answers them in this order.
    private readonly Queue<Pending> _pending = new();
    // Keeps a request's place in _pending and its bytes on stdin in the same order.
    private readonly SemaphoreSlim _writing = new(1, 1);
    private readonly bool _pipelined;
    private bool _readerDone;
    private string? _violation;
    // Starts at random: a program that reaches the protocol pipe cannot simply guess the number to echo
    // (below 2^53, so that every JSON parser reads it exactly).
    private long _nextSequence = Random.Shared.NextInt64(1L << 52);
    private int _outstanding;
    private volatile bool _failed;
    private volatile bool _killed;
    private volatile bool _cancelled;
    private bool _signalGroup;

    private WorkerProcess(Process process, string workDir, long heapLimitBytes, FrozenSet<int> reportable, ILogger logger, SandboxLease? sandbox)
    {
        // The .NET worker reads its next request only after answering the last one, so a request
        // written ahead waits in the pipe; the Python zygote is not known to, so it gets one at a time.
        _pipelined = ReferenceEquals(reportable, DotnetOutcomes);
        _process = process;
        _sandbox = sandbox;
        _workDir = workDir;
        _heapLimitBytes = heapLimitBytes;
        _reportable = reportable;
        _logger = logger;
        _stdin = process.StandardInput.BaseStream;
        // Buffered: a response's prefix, header and body usually arrive in one read instead of three.
        _stdout = new BufferedStream(process.StandardOutput.BaseStream, 64 * 1024);
        ProcessId = process.Id;
    }

    /// <summary>
    /// The process that runs programs: the one started, or, under a launcher that forks (a PID
    /// namespace), its child that said hello. Signals go to it; CPU time is its.
    /// </summary>
    public int ProcessId { get; private set; }

    public bool IsHealthy => !_failed && !_killed && !HasExited;

    public bool CanRunAhead => _pipelined;

    public int ProgramsLoaded
    {
        get
        {
            lock (_loaded) return _loaded.Count;
        }
    }

    /// <summary>From starting the process until it answered its first frame.</summary>
    public TimeSpan StartupTime { get; private set; }

    /// <summary>Bytes the worker wrote to stderr so far (all of them read; only a tail kept).</summary>
    public long StderrBytes
    {
        get
        {
            lock (_stderr) return _stderr.TotalBytes;
        }
    }

    /// <summary>The first protocol violation, if the worker broke the protocol.</summary>
    public string? Violation
    {
        get
        {
            lock (_gate) return _violation;
        }
    }

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
    /// <param name="reportableOutcomes">The outcome kinds this runtime's worker may report; any other is a protocol violation.</param>
    /// <param name="signalGroup">The process that says hello leads a process group that also holds its tasks (a zygote): signals go to the group.</param>
    internal static Task<WorkerProcess> StartAsync(string fileName, IEnumerable<string> arguments, long heapLimitBytes,
        IReadOnlyDictionary<string, string> environment, bool inheritEnvironment, FrozenSet<int> reportableOutcomes, ILogger logger,
        CancellationToken cancellationToken, bool signalGroup = false)
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

        return StartAsync(start, workDir, null, heapLimitBytes, reportableOutcomes, logger, signalGroup, cancellationToken);
    }

    /// <summary>Starts a worker behind the kernel wall; the worker owns <paramref name="sandbox"/> from here on.</summary>
    internal static Task<WorkerProcess> StartAsync(SandboxLease sandbox, long heapLimitBytes, FrozenSet<int> reportableOutcomes, ILogger logger,
        CancellationToken cancellationToken, bool signalGroup = false)
    {
        // The wrapper's own folder; the worker itself starts in its private tmpfs.
        var workDir = Path.GetTempPath();
        return StartAsync(sandbox.StartInfo(workDir), null, sandbox, heapLimitBytes, reportableOutcomes, logger, signalGroup, cancellationToken);
    }

    private static async Task<WorkerProcess> StartAsync(ProcessStartInfo start, string? workDir, SandboxLease? sandbox, long heapLimitBytes,
        FrozenSet<int> reportableOutcomes, ILogger logger, bool signalGroup, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var process = new Process { StartInfo = start };
        try
        {
            if (sandbox is null) process.Start();
            else await sandbox.Sandbox.StartAsync(process).ConfigureAwait(false);
        }
        catch
        {
            process.Dispose();
            if (workDir is not null) TryDeleteFolder(workDir);
            sandbox?.Dispose();
            throw;
        }

        var worker = new WorkerProcess(process, workDir ?? "", heapLimitBytes, reportableOutcomes, logger, sandbox) { _signalGroup = signalGroup };
        _ = Task.Run(() => worker._stderr.DrainAsync(process.StandardError.BaseStream));
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(WorkerProcessFactory.StartTimeout);
            using var kill = timeout.Token.Register(worker.Kill);
            WorkerFrame<WorkerHello>? hello;
            try
            {
                hello = await WorkerFrames.ReadAsync<WorkerHello>(worker._stdout, FrameLimit.Hello, CancellationToken.None).ConfigureAwait(false);
            }
            catch (WorkerProtocolException e) when (!worker._killed)
            {
                worker.KillProcess();
                throw new InvalidOperationException($"the sandbox worker broke the protocol in its hello: {e.Violation}");
            }

            if (hello is null || worker._killed)
            {
                cancellationToken.ThrowIfCancellationRequested();
                await worker.WaitForEndAsync().ConfigureAwait(false);
                throw new InvalidOperationException($"the sandbox worker did not start: {worker.DescribeExit()}");
            }

            worker.Adopt(hello.Header.ProcessId);
        }
        catch
        {
            await worker.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        worker.StartupTime = watch.Elapsed;
        _ = Task.Run(worker.ReadResponsesAsync);
        return worker;
    }

    public async Task<ExecutionResult> RunAsync(ExecutionRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var limit = _pipelined ? 2 : 1;
        if (Interlocked.Increment(ref _outstanding) > limit)
        {
            Interlocked.Decrement(ref _outstanding);
            throw new InvalidOperationException(_pipelined ? "a worker takes one request ahead of the one it runs, no more" : "a worker runs one request at a time");
        }


        try
        {
            if (!IsHealthy) return ExecutionResult.Failure(TaskErrorKind.Crashed, "the worker is not running");
            using var cancel = cancellationToken.Register(() =>
            {
                _cancelled = true;
                Kill();
            });
            if (cancellationToken.IsCancellationRequested) return ExecutionResult.Failure(TaskErrorKind.Cancelled, "cancelled before it started");

            // Entered synchronously when free, so two calls in a row write in the order they were made.
            await _writing.WaitAsync(CancellationToken.None).ConfigureAwait(false);
            bool send;
            lock (_loaded) send = !_loaded.Contains(request.ProgramHash);
            var pending = new Pending(Interlocked.Increment(ref _nextSequence), request.MaxResultBytes, request.MaxOutputBytes);
            var header = new WorkerRequestHeader(pending.Sequence, request.ProgramHash, request.Function, request.ArgsJson, request.MaxResultBytes, request.MaxOutputBytes);
            bool listening;
            lock (_gate)
            {
                // Armed before the request is written: the answer may come back before WriteAsync returns.
                listening = !_readerDone;
                if (listening) _pending.Enqueue(pending);
            }

            if (!listening) _writing.Release();
            if (listening)
            {
                try
                {
                    // The streams are never cancelled: killing the process is what ends a run early, and
                    // the pipe closing is how we learn it.
                    await WorkerFrames.WriteAsync(_stdin, header, send ? request.Assembly : ReadOnlyMemory<byte>.Empty, CancellationToken.None).ConfigureAwait(false);
                    if (send)
                        lock (_loaded) _loaded.Add(request.ProgramHash);
                }
                catch (Exception e) when (e is IOException or ObjectDisposedException)
                {
                    // The pipe is broken for good: the process died, and the reader fails whatever it still awaits.
                    if (!_killed) LogProtocolFailure(ProcessId, e.Message);
                    pending.Answer.TrySetResult(null);
                }
                finally
                {
                    _writing.Release();
                }

                if (await pending.Answer.Task.ConfigureAwait(false) is { } answer)
                {
                    // A worker that ran out of memory is not trusted with the next task: its heap may
                    // still hold what the program left, and a Python zygote exits after answering.
                    if (answer.ErrorKind == TaskErrorKind.OutOfMemory) _failed = true;
                    if (answer.ErrorKind == TaskErrorKind.Crashed)
                    {
                        _failed = true; // the worker itself says it is confused, or a zygote's task died
                        // A zygote's task killed by the kernel's OOM killer: the zygote only saw a SIGKILL.
                        if (_sandbox?.Cgroup is { WasOutOfMemory: true })
                        {
                            return ExecutionResult.Failure(TaskErrorKind.OutOfMemory,
                                $"out of memory: the worker's memory limit of {Bytes.Format(_sandbox.MemoryLimitBytes)} was exceeded", answer.Output);
                        }
                    }

                    return answer;
                }
            }

            if (Violation is { } violation)
            {
                _failed = true;
                await WaitForEndAsync().ConfigureAwait(false);
                return ExecutionResult.Failure(TaskErrorKind.Crashed, $"{ProtocolViolation} ({violation})");
            }

            return await EndedAsync().ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _outstanding);
        }
    }

    // The freezer stops every process of the task at once, forks included; a signal reaches one.
    public void Pause()
    {
        if (_sandbox?.Cgroup is { CanFreeze: true } group) group.Freeze();
        else Signal(SigStop);
    }

    public void Resume()
    {
        if (_sandbox?.Cgroup is { CanFreeze: true } group) group.Thaw();
        else Signal(SigCont);
    }

    public void Kill()
    {
        _killed = true;
        KillProcess();
    }

    // The only reader of the worker's stdout, for its whole life: bytes that arrive while no request
    // is outstanding are seen at once, not taken for the next request's answer.
    private async Task ReadResponsesAsync()
    {
        var prefix = new byte[4];
        try
        {
            while (true)
            {
                var got = await _stdout.ReadAtLeastAsync(prefix, 4, throwOnEndOfStream: false).ConfigureAwait(false);
                if (got == 0) break;
                Pending? pending;
                lock (_gate) _pending.TryPeek(out pending);
                if (pending is null) throw new WorkerProtocolException("it wrote to the protocol pipe while no request was outstanding");
                if (got < 4) throw new WorkerProtocolException("the pipe closed inside a frame");
                var frame = await WorkerFrames.ReadAfterPrefixAsync<WorkerResponseHeader>(
                    _stdout, BinaryPrimitives.ReadInt32LittleEndian(prefix), pending.Limit, CancellationToken.None).ConfigureAwait(false);
                var answer = Check(frame, pending);
                lock (_gate) _pending.Dequeue();
                pending.Answer.TrySetResult(answer);
            }
        }
        catch (WorkerProtocolException e) when (!_killed)
        {
            Violated(e.Violation);
        }
        catch (Exception e) when (e is WorkerProtocolException or IOException or ObjectDisposedException)
        {
            // The pipe broke or closed because the process died or was killed: the run explains why.
        }

        Pending[] orphans;
        lock (_gate)
        {
            _readerDone = true;
            orphans = [.. _pending];
            _pending.Clear();
        }

        foreach (var orphan in orphans) orphan.Answer.TrySetResult(null);
    }

    /// <summary>Believes nothing: the answer must be to this request, of a kind this worker may report, within the caps.</summary>
    private ExecutionResult Check(WorkerFrame<WorkerResponseHeader> frame, Pending pending)
    {
        var (sequence, kind, error, output) = frame.Header;
        if (sequence != pending.Sequence)
            throw new WorkerProtocolException($"an answer to request {sequence} while request {pending.Sequence} was the next to answer");
        if (!_reportable.Contains(kind))
        {
            var name = Enum.IsDefined((TaskErrorKind)kind) ? $"{kind} ({(TaskErrorKind)kind})" : kind.ToString(CultureInfo.InvariantCulture);
            throw new WorkerProtocolException($"outcome {name} is not one a worker may report");
        }

        if (error is { Length: > WorkerFrames.MaxErrorChars })
            throw new WorkerProtocolException($"an error of {error.Length} characters; the limit is {WorkerFrames.MaxErrorChars}");
        var outputBytes = Encoding.UTF8.GetByteCount(output);
        if (outputBytes > (long)pending.MaxOutputBytes + WorkerFrames.OutputNoteBytes)
            throw new WorkerProtocolException($"output of {outputBytes} bytes; the limit is {pending.MaxOutputBytes}");
        if (kind != WorkerOutcome.None)
        {
            if (frame.Body.Length != 0) throw new WorkerProtocolException($"a {(TaskErrorKind)kind} answer with a result");
            return ExecutionResult.Failure((TaskErrorKind)kind, error ?? ((TaskErrorKind)kind).ToString(), output);
        }

        return new ExecutionResult(TaskErrorKind.None, ResultJson(frame.Body), null, output);
    }

    private static string ResultJson(byte[] body)
    {
        try
        {
            var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 4096 });
            while (reader.Read())
            {
            }

            if (reader.BytesConsumed == 0) throw new WorkerProtocolException("a success without a result");
            return StrictUtf8.GetString(body);
        }
        catch (Exception e) when (e is JsonException or DecoderFallbackException)
        {
            throw new WorkerProtocolException("the result is not JSON");
        }
    }

    private void Violated(string violation)
    {
        lock (_gate) _violation ??= violation;
        _failed = true;
        LogProtocolViolation(ProcessId, violation);
        KillProcess();
    }

    /// <summary>
    /// Takes the process that said hello as the one to signal: the started one, or its direct child
    /// (unshare), or, behind the kernel wall, the descendant of bwrap whose PID in the sandbox's PID
    /// namespace is the one it said (the worker cannot see its PID as the peer sees it).
    /// </summary>
    private void Adopt(int helloPid)
    {
        if (_sandbox is not null)
        {
            ProcessId = Native.FindDescendantByInnerPid(_process.Id, helloPid)
                ?? throw new InvalidOperationException($"the sandboxed worker said hello as process {helloPid}, which is not in its sandbox");
            return;
        }

        if (helloPid == _process.Id) return;
        if (helloPid <= 0 || Native.ParentOf(helloPid) != _process.Id)
            throw new InvalidOperationException($"the sandbox worker said hello as process {helloPid}, neither the started process {_process.Id} nor its child");
        ProcessId = helloPid;
    }

    private void KillProcess()
    {
        // Everything the task forked, wherever it moved in the process tree.
        _sandbox?.Cgroup?.KillAll();
        // The program's process first, so that its launcher reaps it and exits by itself; a zygote's
        // whole group, so that its task dies with it even where no cgroup or PID namespace holds them.
        if (_signalGroup && !HasExited) SendSignal(-ProcessId, SigKill);
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
        if (_sandbox is null) TryDeleteFolder(_workDir);
        else _sandbox.Dispose();
    }

    // The pipe closed: the run is over and so is this worker. Explain why.
    private async Task<ExecutionResult> EndedAsync()
    {
        _failed = true;
        // A dying runtime may still be writing its reason (a stack overflow prints the whole stack)
        // after the pipe broke: let it finish and exit before judging, and kill it only if it lingers.
        await WaitForEndAsync().ConfigureAwait(false);
        if (!HasExited) KillProcess(); // alive but incoherent: don't reuse it
        bool stackOverflow, outOfMemory;
        lock (_stderr) (stackOverflow, outOfMemory) = (_stderr.SawStackOverflow, _stderr.SawOutOfMemory);
        if (_cancelled) return ExecutionResult.Failure(TaskErrorKind.Cancelled, "cancelled; the worker was killed");
        if (_sandbox?.Cgroup is { WasOutOfMemory: true })
            return ExecutionResult.Failure(TaskErrorKind.OutOfMemory, $"out of memory: the worker's memory limit of {Bytes.Format(_sandbox.MemoryLimitBytes)} was exceeded");
        if (stackOverflow) return ExecutionResult.Failure(TaskErrorKind.Crashed, $"stack overflow; {DescribeExit()}");
        if (outOfMemory)
            return ExecutionResult.Failure(TaskErrorKind.OutOfMemory, $"out of memory: the worker's heap limit of {Bytes.Format(_heapLimitBytes)} was exceeded");
        if (_killed) return ExecutionResult.Failure(TaskErrorKind.Crashed, "worker killed");
        return ExecutionResult.Failure(TaskErrorKind.Crashed, $"the worker crashed: {DescribeExit()}");
    }

    private Task WaitForEndAsync() => _stderr.WaitForEndAsync(_process, ExitGrace);

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
        lock (_stderr) tail = _stderr.Unhandled ?? LastLines(_stderr.Tail(), 3);
        return tail.Length == 0 ? code : $"{code}: {tail}";
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
        // A zygote and the task it forked stop and go on together; if it has no group of its own, the PID alone.
        if (_signalGroup && SendSignal(-ProcessId, signal) == 0) return;
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

    private static int SendSignal(int pid, int signal) => Native.Kill(pid, signal);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Worker {Pid} died while a request was sent: {Reason}")]
    private partial void LogProtocolFailure(int pid, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Worker {Pid} broke the protocol and was killed: {Violation}")]
    private partial void LogProtocolViolation(int pid, string violation);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not signal worker {Pid} with {Signal}: errno {Errno}")]
    private partial void LogSignalFailed(int pid, int signal, int errno);

    /// <summary>The request a response is expected for, and what that response may hold.</summary>
    private sealed class Pending(long sequence, int maxResultBytes, int maxOutputBytes)
    {
        public long Sequence { get; } = sequence;

        public int MaxOutputBytes { get; } = maxOutputBytes;

        public FrameLimit Limit { get; } = FrameLimit.Response(maxResultBytes, maxOutputBytes);

        /// <summary>The checked answer; null when the pipe ended or the worker broke the protocol first.</summary>
        public TaskCompletionSource<ExecutionResult?> Answer { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
