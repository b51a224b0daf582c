using System.Security.Cryptography;
using System.Text;
using P2PShare.Compute.Protocol;

namespace P2PShare.Compute;

/// <summary>A program ready to send to a worker.</summary>
/// <param name="Hash">SHA-256 of the program text, lowercase hex; workers cache loaded programs by it.</param>
/// <param name="Assembly">The emitted script assembly. Never loaded by the peer.</param>
/// <param name="Function">The resolved top-level method to call.</param>
/// <param name="FromCache">True when the compiler was not run for this call.</param>
public sealed record CompiledProgram(string Hash, byte[] Assembly, string Function, bool FromCache);

/// <summary>
/// Compiles user programs (C# script syntax: top-level methods) to assembly bytes, checked against
/// the deny-list, and resolves the function to call. Roslyn and the deny-list run in
/// <c>p2pshare-compiler</c> processes (<see cref="CompilerPool"/>), never in the peer: the peer does not
/// load Roslyn or what it emits (loading is what made Roslyn scripting leak). Outcomes, refusals
/// included, are cached by the program's text in a bounded LRU (the text counts towards its bytes),
/// so a repeat skips the compiler and the SHA-256 of the text, which a cached task would otherwise
/// pay for every time: the text comes deserialized, a new string per task, so only its content can be the key.
/// Thread-safe; one per silo.
/// </summary>
/// <remarks>
/// The bounds: at most <see cref="ComputeOptions.CompilerProcesses"/> compiles at once (the rest
/// queue); each within <see cref="TimeLimit"/>, after which its process is killed and the text ends
/// <c>CompileError: compilation took longer than 10 s</c>; each within the compiler's heap limit and,
/// behind the kernel wall, its cgroup (all its memory), past which it ends <c>CompileError:
/// compilation ran out of memory (...)</c>. A program text crafted to keep Roslyn busy costs one
/// compiler process's core for the time limit, never the silo's threads or memory.
/// </remarks>
public sealed partial class ProgramCompiler : IAsyncDisposable, IDisposable
{
    public const int DefaultMaxCachedPrograms = 1000;
    public const long DefaultMaxCachedBytes = 64 * Bytes.MiB;
    public const int MaxProgramChars = CompilerFrames.MaxProgramChars;
    private const int EntryOverheadBytes = 512;
    private const string CompilerFile = "p2pshare-compiler.dll";

    private readonly ILogger<ProgramCompiler> _logger;
    private readonly int _maxEntries;
    private readonly long _maxBytes;
    private readonly CompilerPool _pool;
    private readonly object _gate = new();
    private readonly Dictionary<string, LinkedListNode<CacheEntry>> _cache = new(StringComparer.Ordinal); // by program text
    private readonly LinkedList<CacheEntry> _lru = new();
    private long _cachedBytes;
    private long _compilations;

    /// <summary>Compiler processes behind <paramref name="sandbox"/>'s wall (or plain ones with <c>Compute:Isolation=none</c>).</summary>
    public ProgramCompiler(IOptions<ComputeOptions> options, KernelSandbox sandbox, ILogger<ProgramCompiler> logger)
        : this(logger, DefaultMaxCachedPrograms, DefaultMaxCachedBytes, options.Value.CompileTimeout,
            new CompilerLaunch(DefaultCompilerPath, options.Value.CompilerHeapLimitBytes, sandbox), options.Value.CompilerProcesses)
    {
    }

    /// <summary>Plain compiler processes with the default limits, for tests of what compiles.</summary>
    internal ProgramCompiler(ILogger<ProgramCompiler> logger)
        : this(logger, DefaultMaxCachedPrograms, DefaultMaxCachedBytes)
    {
    }

    internal ProgramCompiler(ILogger<ProgramCompiler> logger, int maxEntries, long maxBytes, TimeSpan? timeLimit = null,
        CompilerLaunch? launch = null, int processes = ComputeOptions.DefaultCompilerProcesses)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEntries, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1);
        _logger = logger;
        _maxEntries = maxEntries;
        _maxBytes = maxBytes;
        TimeLimit = timeLimit ?? ComputeOptions.DefaultCompileTimeout;
        Launch = launch ?? new CompilerLaunch(DefaultCompilerPath, ComputeOptions.DefaultCompilerHeapLimitBytes, null);
        _pool = new CompilerPool(processes, ct => CompilerProcess.StartAsync(Launch, logger, ct), logger);
    }

    /// <summary>p2pshare-compiler.dll next to the peer's own assemblies (it ships there, like the worker).</summary>
    public static string DefaultCompilerPath => Path.Combine(AppContext.BaseDirectory, CompilerFile);

    /// <summary>Starts <paramref name="count"/> compiler processes in the background, ahead of the first program.</summary>
    public void Warm(int count) => _pool.Warm(count);

    /// <summary>How long one compile may take before its process is killed and it ends CompileError.</summary>
    public TimeSpan TimeLimit { get; }

    internal CompilerLaunch Launch { get; }

    /// <summary>The compiler processes alive now (the processes running Roslyn), for tests.</summary>
    internal IReadOnlyList<int> CompilerProcessIds => _pool.ProcessIds;

    /// <summary>Times a compiler was actually asked (cache misses), for tests and metrics.</summary>
    public long CompilationsRun => Interlocked.Read(ref _compilations);

    public (int Programs, long Bytes) CacheUsage
    {
        get
        {
            lock (_gate) return (_cache.Count, _cachedBytes);
        }
    }

    /// <summary>
    /// Compiles <paramref name="program"/> (or takes it from the cache) and resolves <paramref name="function"/>:
    /// null means <c>main</c>, or the only top-level method. Throws <see cref="TaskRejectedException"/>
    /// with CompileError, NotAllowed or InvalidArguments.
    /// </summary>
    public CompiledProgram Compile(string program, string? function) => CompileAsync(program, function).GetAwaiter().GetResult();

    /// <inheritdoc cref="Compile"/>
    /// <remarks>A cached program answers at once; a new one waits for a compiler process.</remarks>
    public async Task<CompiledProgram> CompileAsync(string program, string? function)
    {
        ArgumentNullException.ThrowIfNull(program);
        if (program.Length > MaxProgramChars)
            throw new TaskRejectedException(TaskErrorKind.InvalidArguments, $"the program is longer than {MaxProgramChars} characters");

        var entry = Lookup(program);
        var fromCache = entry is not null;
        if (entry is null)
        {
            (entry, var cacheable) = await CompileUncachedAsync(Hash(program), program).ConfigureAwait(false);
            if (cacheable) Store(entry);
        }

        if (entry.Rejection is { } rejection) throw new TaskRejectedException(rejection.Kind, rejection.Detail);
        return new CompiledProgram(entry.Hash, entry.Assembly!, ResolveFunction(entry.Functions, function), fromCache);
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    public ValueTask DisposeAsync() => _pool.DisposeAsync();

    internal static string TooLong(TimeSpan limit) => $"compilation took longer than {limit.TotalSeconds:0.###} s";

    public static string Hash(string program) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(program)));

    private async Task<(CacheEntry Entry, bool Cacheable)> CompileUncachedAsync(string hash, string program)
    {
        Interlocked.Increment(ref _compilations);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        CompileVerdict verdict;
        try
        {
            verdict = await _pool.CompileAsync($"p2pshare-{hash[..16]}", program, TimeLimit).ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or System.ComponentModel.Win32Exception)
        {
            LogNoCompiler(e.Message);
            return (CacheEntry.Rejected(program, hash, TaskErrorKind.CompileError, $"no compiler could be started: {e.Message}"), false);
        }

        if (verdict.Kind == TaskErrorKind.None)
        {
            LogCompiled(hash[..12], verdict.Assembly!.Length, watch.Elapsed.TotalMilliseconds);
            var functions = verdict.Functions.Select(f => new FunctionInfo(f.Name, f.Overloads, f.IsGeneric)).ToList();
            return (new CacheEntry(program, hash, verdict.Assembly, functions, null), true);
        }

        if (verdict.Cacheable && verdict.Detail == TooLong(TimeLimit)) LogTooLong(hash[..12], TimeLimit.TotalSeconds);
        return (CacheEntry.Rejected(program, hash, verdict.Kind, verdict.Detail ?? verdict.Kind.ToString()), verdict.Cacheable);
    }

    private static string ResolveFunction(IReadOnlyList<FunctionInfo> functions, string? requested)
    {
        // Built only on the way to a refusal: this runs for every task, cached ones included.
        string Defined() => functions.Count == 0 ? "the program defines no functions" : $"the program defines: {string.Join(", ", functions.Select(f => f.Name))}";
        FunctionInfo? chosen;
        if (!string.IsNullOrWhiteSpace(requested))
        {
            chosen = Find(functions, requested)
                ?? throw new TaskRejectedException(TaskErrorKind.InvalidArguments, $"no function '{requested}'; {Defined()}");
        }
        else
        {
            chosen = Find(functions, "main") ?? (functions.Count == 1 ? functions[0] : null)
                ?? throw new TaskRejectedException(TaskErrorKind.InvalidArguments,
                    functions.Count == 0 ? Defined() : $"no function 'main' and more than one to choose from; name one: {string.Join(", ", functions.Select(f => f.Name))}");
        }

        if (chosen.Overloads > 1)
            throw new TaskRejectedException(TaskErrorKind.InvalidArguments, $"function '{chosen.Name}' is overloaded; give the function to call a name of its own");
        if (chosen.IsGeneric)
            throw new TaskRejectedException(TaskErrorKind.InvalidArguments, $"function '{chosen.Name}' is generic; JSON arguments cannot choose its type parameters");
        return chosen.Name;
    }

    private static FunctionInfo? Find(IReadOnlyList<FunctionInfo> functions, string name)
    {
        for (var i = 0; i < functions.Count; i++)
            if (functions[i].Name == name) return functions[i];
        return null;
    }

    private CacheEntry? Lookup(string program)
    {
        lock (_gate)
        {
            if (!_cache.TryGetValue(program, out var node)) return null;
            _lru.Remove(node);
            _lru.AddFirst(node);
            return node.Value;
        }
    }

    private void Store(CacheEntry entry)
    {
        lock (_gate)
        {
            if (_cache.ContainsKey(entry.Program)) return; // another thread compiled the same text meanwhile
            _cache[entry.Program] = _lru.AddFirst(entry);
            _cachedBytes += entry.Size;
            while (_lru.Count > _maxEntries || (_cachedBytes > _maxBytes && _lru.Count > 1))
            {
                var oldest = _lru.Last!;
                _lru.RemoveLast();
                _cache.Remove(oldest.Value.Program);
                _cachedBytes -= oldest.Value.Size;
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Compiling program {Hash} took longer than {Seconds} s; its compiler process was killed")]
    private partial void LogTooLong(string hash, double seconds);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Compiled program {Hash} to {Bytes} bytes in {Ms:0.0} ms")]
    private partial void LogCompiled(string hash, long bytes, double ms);

    [LoggerMessage(Level = LogLevel.Error, Message = "No compiler process could be started: {Reason}")]
    private partial void LogNoCompiler(string reason);

    private sealed record FunctionInfo(string Name, int Overloads, bool IsGeneric);

    private sealed record Rejection(TaskErrorKind Kind, string Detail);

    private sealed record CacheEntry(string Program, string Hash, byte[]? Assembly, IReadOnlyList<FunctionInfo> Functions, Rejection? Rejection)
    {
        public long Size => (Assembly?.Length ?? 0) + (Program.Length * 2L) + (Rejection?.Detail.Length * 2 ?? 0) + EntryOverheadBytes;

        public static CacheEntry Rejected(string program, string hash, TaskErrorKind kind, string detail) => new(program, hash, null, [], new Rejection(kind, detail));
    }
}
