using System.Diagnostics;
using System.Globalization;
using P2PShare.Compute.Protocol;

namespace P2PShare.Compute;

/// <summary>What a compiler process answered, or what the peer concluded when it did not.</summary>
/// <param name="Kind">None (compiled), CompileError, NotAllowed or OutOfMemory.</param>
/// <param name="Cacheable">False for the compiler's own faults (a crash, a broken protocol): the text may compile next time.</param>
internal sealed record CompileVerdict(TaskErrorKind Kind, string? Detail, byte[]? Assembly, IReadOnlyList<CompiledFunction> Functions, bool Cacheable = true);

/// <summary>How compiler processes are started: behind the kernel wall (a sandbox) or plainly, and with what heap.</summary>
/// <param name="Sandbox">The wall; null starts them as the peer's user with an empty environment.</param>
/// <param name="Host">What runs <paramref name="CompilerPath"/>; null: the .NET host. Tests put impostors here.</param>
internal sealed record CompilerLaunch(string CompilerPath, long HeapLimitBytes, KernelSandbox? Sandbox, string? Host = null);

/// <summary>
/// One warm <c>p2pshare-compiler</c> process, driven over its stdin/stdout (<see cref="CompilerFrames"/>),
/// one compile at a time. Roslyn does not stop when asked, so the time limit is enforced by killing
/// the process (its whole sandbox); its heap is capped by <c>DOTNET_GCHeapHardLimit</c> and, behind
/// the wall, all of its memory by its cgroup. Nothing it writes is believed beyond the frame limits.
/// A process that timed out, ran out of memory, crashed or broke the protocol is dead and replaced.
/// </summary>
internal sealed partial class CompilerProcess : IAsyncDisposable
{
    private const string SandboxFolder = "/compiler";
    private static readonly TimeSpan ExitGrace = TimeSpan.FromSeconds(5);

    private readonly Process _process;
    private readonly Stream _stdin;
    private readonly Stream _stdout;
    private readonly SandboxLease? _lease;
    private readonly long _heapLimitBytes;
    private readonly ILogger _logger;
    private readonly WorkerStderr _stderr = new();
    // Starts at random: a text that reaches the compiler's output cannot simply guess the number to echo.
    private long _nextSequence = Random.Shared.NextInt64(1L << 52);
    private volatile bool _dead;

    private CompilerProcess(Process process, SandboxLease? lease, long heapLimitBytes, ILogger logger)
    {
        _process = process;
        _lease = lease;
        _heapLimitBytes = heapLimitBytes;
        _logger = logger;
        _stdin = process.StandardInput.BaseStream;
        _stdout = process.StandardOutput.BaseStream;
        ProcessId = process.Id;
    }

    /// <summary>The process that runs Roslyn (behind the wall: the descendant of bwrap that said hello).</summary>
    public int ProcessId { get; private set; }

    /// <summary>The started process (the launcher behind the wall, else the compiler itself).</summary>
    public int LauncherProcessId => _process.Id;

    public bool IsHealthy => !_dead && !HasExited;

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

    /// <summary>Starts a compiler and waits for its hello, which it sends once Roslyn is warm.</summary>
    public static async Task<CompilerProcess> StartAsync(CompilerLaunch launch, ILogger logger, CancellationToken cancellationToken)
    {
        if (!File.Exists(launch.CompilerPath)) throw new InvalidOperationException($"the compiler is missing: {launch.CompilerPath}");
        var host = launch.Host ?? WorkerProcessFactory.DotnetHost();
        var environment = WorkerProcessFactory.DotnetEnvironment(launch.HeapLimitBytes);
        environment["PATH"] = "/usr/bin";
        SandboxLease? lease = null;
        ProcessStartInfo start;
        if (launch.Sandbox is null || launch.Sandbox.Mode == WorkerIsolation.None)
        {
            start = new ProcessStartInfo(host)
            {
                WorkingDirectory = Path.GetTempPath(),
                UseShellExecute = false,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                CreateNoWindow = true,
            };
            start.ArgumentList.Add(launch.CompilerPath);
            // Nothing of the peer's environment (in postgres mode it holds the database's connection string).
            start.Environment.Clear();
            foreach (var (key, value) in environment) start.Environment[key] = value;
        }
        else
        {
            host = Path.GetFullPath(host.Contains('/') ? host : KernelSandbox.Which(host) ?? host);
            lease = launch.Sandbox.Lease(new SandboxRequest(host, [SandboxFolder + "/" + Path.GetFileName(launch.CompilerPath)],
                SandboxBinds(host, launch.CompilerPath), environment, launch.HeapLimitBytes));
            start = lease.StartInfo(Path.GetTempPath());
        }

        var watch = Stopwatch.StartNew();
        var process = new Process { StartInfo = start };
        try
        {
            if (lease is null) process.Start();
            else await lease.Sandbox.StartAsync(process).ConfigureAwait(false);
        }
        catch
        {
            process.Dispose();
            lease?.Dispose();
            throw;
        }

        var compiler = new CompilerProcess(process, lease, launch.HeapLimitBytes, logger);
        _ = Task.Run(() => compiler._stderr.DrainAsync(process.StandardError.BaseStream));
        try
        {
            var hello = WorkerFrames.ReadAsync<WorkerHello>(compiler._stdout, FrameLimit.Hello, CancellationToken.None);
            if (await Task.WhenAny(hello, Task.Delay(WorkerProcessFactory.StartTimeout, cancellationToken)).ConfigureAwait(false) != hello)
            {
                compiler.Kill();
                cancellationToken.ThrowIfCancellationRequested();
                throw new InvalidOperationException($"the compiler did not start within {WorkerProcessFactory.StartTimeout.TotalSeconds:0} s");
            }

            WorkerFrame<WorkerHello>? frame;
            try
            {
                frame = await hello.ConfigureAwait(false);
            }
            catch (Exception e) when (e is WorkerProtocolException or IOException)
            {
                compiler.Kill();
                throw new InvalidOperationException($"the compiler broke the protocol in its hello: {e.Message}");
            }

            if (frame is null)
            {
                await compiler.WaitForEndAsync().ConfigureAwait(false);
                throw new InvalidOperationException($"the compiler did not start: {compiler.DescribeExit()}");
            }

            compiler.Adopt(frame.Header.ProcessId);
        }
        catch
        {
            await compiler.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        compiler.StartupTime = watch.Elapsed;
        return compiler;
    }

    /// <summary>
    /// Compiles <paramref name="program"/>; never throws for what the compiler does: a compile past
    /// <paramref name="timeLimit"/> kills the process and ends CompileError "took longer", a death
    /// says why.
    /// </summary>
    public async Task<CompileVerdict> CompileAsync(string name, string program, TimeSpan timeLimit)
    {
        if (!IsHealthy) return Fault("the compiler is not running");
        var sequence = ++_nextSequence;
        var body = System.Text.Encoding.UTF8.GetBytes(program);
        var answer = ExchangeAsync(new CompileRequestHeader(sequence, name), body);
        var finished = await Task.WhenAny(answer, Task.Delay(timeLimit)).ConfigureAwait(false) == answer;
        if (!finished)
        {
            // Roslyn checks its cancellation token only now and then (a lambda-binding bomb ran two
            // minutes past it): the process, with everything it allocated, is what stops it.
            Kill();
            _ = answer.ContinueWith(t => t.Exception, TaskScheduler.Default); // observed; the pipe broke
            return new CompileVerdict(TaskErrorKind.CompileError, ProgramCompiler.TooLong(timeLimit), null, []);
        }

        WorkerFrame<CompileResponseHeader>? frame;
        try
        {
            frame = await answer.ConfigureAwait(false);
        }
        catch (WorkerProtocolException e)
        {
            Kill();
            LogViolation(ProcessId, e.Violation);
            return Fault($"the compiler broke the protocol ({e.Violation})");
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            frame = null;
        }

        if (frame is null) return await DiedAsync().ConfigureAwait(false);
        try
        {
            return Check(frame, sequence);
        }
        catch (WorkerProtocolException e)
        {
            Kill();
            LogViolation(ProcessId, e.Violation);
            return Fault($"the compiler broke the protocol ({e.Violation})");
        }
    }

    private async Task<WorkerFrame<CompileResponseHeader>?> ExchangeAsync(CompileRequestHeader header, byte[] body)
    {
        await WorkerFrames.WriteAsync(_stdin, header, body, CancellationToken.None, CompilerProtocolJson.Default).ConfigureAwait(false);
        return await WorkerFrames.ReadAsync<CompileResponseHeader>(_stdout, CompilerFrames.Response, CancellationToken.None, CompilerProtocolJson.Default)
            .ConfigureAwait(false);
    }

    /// <summary>Believes nothing: the answer must be to this request, of a kind a compiler may report, within the caps.</summary>
    private CompileVerdict Check(WorkerFrame<CompileResponseHeader> frame, long sequence)
    {
        var (answered, kind, detail, functions) = frame.Header;
        if (answered != sequence) throw new WorkerProtocolException($"an answer to request {answered} while request {sequence} was outstanding");
        if (detail is { Length: > CompilerFrames.MaxDetailChars })
            throw new WorkerProtocolException($"a detail of {detail.Length} characters; the limit is {CompilerFrames.MaxDetailChars}");
        switch (kind)
        {
            case CompileOutcome.Compiled:
                if (frame.Body.Length == 0) throw new WorkerProtocolException("a compiled program without an assembly");
                if (detail is not null) throw new WorkerProtocolException("a compiled program with a detail");
                if (functions.Any(f => f is null || string.IsNullOrEmpty(f.Name) || f.Overloads < 1))
                    throw new WorkerProtocolException("a function without a name or overloads");
                return new CompileVerdict(TaskErrorKind.None, null, frame.Body, functions);
            case CompileOutcome.CompileError or CompileOutcome.NotAllowed:
                if (frame.Body.Length != 0 || functions.Count != 0) throw new WorkerProtocolException("a refusal with an assembly");
                if (string.IsNullOrEmpty(detail)) throw new WorkerProtocolException("a refusal without a detail");
                return new CompileVerdict((TaskErrorKind)kind, detail, null, []);
            case CompileOutcome.OutOfMemory:
                _dead = true; // it exits: its Roslyn state is not to be trusted after
                return OutOfMemory($"the compiler's heap limit of {Bytes.Format(_heapLimitBytes)}");
            default:
                throw new WorkerProtocolException($"outcome {kind} is not one a compiler may report");
        }
    }

    private static CompileVerdict OutOfMemory(string limit) =>
        new(TaskErrorKind.CompileError, $"compilation ran out of memory ({limit})", null, []);

    private static CompileVerdict Fault(string detail) => new(TaskErrorKind.CompileError, detail, null, [], Cacheable: false);

    // The pipe closed mid-compile: the process is dead or dying. Say why.
    private async Task<CompileVerdict> DiedAsync()
    {
        _dead = true;
        await WaitForEndAsync().ConfigureAwait(false);
        if (!HasExited) Kill();
        if (_lease?.Cgroup is { WasOutOfMemory: true })
            return OutOfMemory($"the compiler's memory limit of {Bytes.Format(_lease.MemoryLimitBytes)}");
        bool outOfMemory;
        lock (_stderr) outOfMemory = _stderr.SawOutOfMemory;
        if (outOfMemory) return OutOfMemory($"the compiler's heap limit of {Bytes.Format(_heapLimitBytes)}");
        LogDied(ProcessId, DescribeExit());
        return Fault($"the compiler crashed ({DescribeExit()})");
    }

    public void Kill()
    {
        _dead = true;
        _lease?.Cgroup?.KillAll();
        if (ProcessId != _process.Id && !HasExited) _ = Native.Kill(ProcessId, Native.SigKill);
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
        _lease?.Dispose();
    }

    private void Adopt(int helloPid)
    {
        if (_lease is not null)
        {
            ProcessId = Native.FindDescendantByInnerPid(_process.Id, helloPid)
                ?? throw new InvalidOperationException($"the sandboxed compiler said hello as process {helloPid}, which is not in its sandbox");
            return;
        }

        if (helloPid != _process.Id)
            throw new InvalidOperationException($"the compiler said hello as process {helloPid}, not the started process {_process.Id}");
    }

    private Task WaitForEndAsync() => _stderr.WaitForEndAsync(_process, ExitGrace);

    private string DescribeExit()
    {
        string code;
        try
        {
            code = _process.HasExited ? $"exit code {_process.ExitCode.ToString(CultureInfo.InvariantCulture)}" : "still running";
        }
        catch (InvalidOperationException)
        {
            code = "exited";
        }

        string tail;
        lock (_stderr) tail = _stderr.Unhandled ?? _stderr.Tail().Trim();
        if (tail.Length > 300) tail = tail[..300];
        return tail.Length == 0 ? code : $"{code}: {tail}";
    }

    /// <summary>The .NET installation where it is not under /usr already, and the compiler's own files only (not the peer's folder).</summary>
    private static List<(string Source, string Target)> SandboxBinds(string host, string compilerPath)
    {
        var binds = new List<(string, string)>();
        var root = Path.GetDirectoryName(new FileInfo(host).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? host)!;
        if (!root.StartsWith("/usr/", StringComparison.Ordinal)) binds.Add((root, root));
        var folder = Path.GetDirectoryName(Path.GetFullPath(compilerPath))!;
        var name = Path.GetFileNameWithoutExtension(compilerPath);
        foreach (var file in new[] { name + ".dll", name + ".runtimeconfig.json", name + ".deps.json" }
                     .Concat(Directory.EnumerateFiles(folder, "Microsoft.CodeAnalysis*.dll").Select(Path.GetFileName).OfType<string>()))
        {
            var source = Path.Combine(folder, file);
            if (File.Exists(source)) binds.Add((source, SandboxFolder + "/" + file));
        }

        return binds;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Compiler {Pid} broke the protocol and was killed: {Violation}")]
    private partial void LogViolation(int pid, string violation);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Compiler {Pid} died mid-compile: {Exit}")]
    private partial void LogDied(int pid, string exit);
}
