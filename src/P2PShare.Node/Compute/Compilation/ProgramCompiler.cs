using System.Collections.Immutable;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace P2PShare.Compute;

/// <summary>A program ready to send to a worker.</summary>
/// <param name="Hash">SHA-256 of the program text, lowercase hex; workers cache loaded programs by it.</param>
/// <param name="Assembly">The emitted script assembly. Never loaded by the peer.</param>
/// <param name="Function">The resolved top-level method to call.</param>
/// <param name="FromCache">True when the compiler was not run for this call.</param>
public sealed record CompiledProgram(string Hash, byte[] Assembly, string Function, bool FromCache);

/// <summary>
/// Compiles user programs (C# script syntax: top-level methods) to assembly bytes, checks them against
/// <see cref="SandboxPolicy"/> and resolves the function to call. The peer never loads what it emits:
/// loading is what made Roslyn scripting leak (every <c>CSharpScript</c> run loads an assembly that
/// never unloads). Outcomes, refusals included, are cached by the program's SHA-256 in a bounded LRU,
/// so a repeat skips Roslyn. Thread-safe; one per silo.
/// </summary>
/// <remarks>
/// Roslyn and the deny-list run on <see cref="CompileThreads"/> threads of their own, never on the
/// thread pool the silo's grains run on, so a program text crafted to keep Roslyn busy cannot slow
/// memory, file or other task calls; at most that many compile at once (the rest queue), and each is
/// answered <c>CompileError: compilation took longer than 10 s</c> after <see cref="TimeLimit"/> (and
/// cancelled, which Roslyn notices late). Not bounded yet: the memory Roslyn uses is the silo's, and a
/// compile Roslyn does not stop keeps its thread (and the queue behind it) until it ends; both need a
/// compiler process that can be killed (issue 13 item 5).
/// </remarks>
public sealed partial class ProgramCompiler : IDisposable
{
    /// <summary>How long Roslyn and the deny-list may take over one program text.</summary>
    public static readonly TimeSpan DefaultTimeLimit = TimeSpan.FromSeconds(10);

    /// <summary>Programs compiled at once; one core of two stays for everything else.</summary>
    public const int CompileThreads = 1;

    public const int DefaultMaxCachedPrograms = 1000;
    public const long DefaultMaxCachedBytes = 64 * Bytes.MiB;
    public const int MaxProgramChars = 1024 * 1024;
    private const int MaxDiagnosticsShown = 20;
    private const int EntryOverheadBytes = 512;

    private static readonly string[] DefaultUsings =
        ["System", "System.Linq", "System.Collections.Generic", "System.Text", "System.Threading.Tasks"];

    // What programs compile against. Anything reachable here is also judged by SandboxPolicy.
    private static readonly string[] ReferenceAssemblies =
    [
        "System.Private.CoreLib", "System.Runtime", "System.Console", "System.Linq", "System.Collections",
        "System.Collections.Concurrent", "System.Runtime.Numerics", "System.Text.RegularExpressions",
        "System.Memory", "System.Threading",
    ];

    // Metadata references are immutable and expensive (each maps a file and caches symbols): one set per process.
    private static readonly Lazy<ImmutableArray<MetadataReference>> References = new(LoadReferences);

    private static readonly CSharpParseOptions ParseOptions =
        CSharpParseOptions.Default.WithKind(SourceCodeKind.Script).WithLanguageVersion(LanguageVersion.Latest);

    private static readonly CSharpCompilationOptions CompilationOptions = new(
        OutputKind.DynamicallyLinkedLibrary,
        usings: DefaultUsings,
        optimizationLevel: OptimizationLevel.Release,
        allowUnsafe: false,
        concurrentBuild: false, // a task's compile should not take both cores from the silo
        deterministic: true);

    private readonly ILogger<ProgramCompiler> _logger;
    private readonly int _maxEntries;
    private readonly long _maxBytes;
    private readonly object _gate = new();
    private readonly Dictionary<string, LinkedListNode<CacheEntry>> _cache = new(StringComparer.Ordinal);
    private readonly LinkedList<CacheEntry> _lru = new();
    private readonly System.Collections.Concurrent.BlockingCollection<Action> _queue = new();
    private readonly Thread[] _threads;
    private long _cachedBytes;
    private long _compilations;

    public ProgramCompiler(ILogger<ProgramCompiler> logger)
        : this(logger, DefaultMaxCachedPrograms, DefaultMaxCachedBytes)
    {
    }

    internal ProgramCompiler(ILogger<ProgramCompiler> logger, int maxEntries, long maxBytes, TimeSpan? timeLimit = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEntries, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1);
        _logger = logger;
        _maxEntries = maxEntries;
        _maxBytes = maxBytes;
        TimeLimit = timeLimit ?? DefaultTimeLimit;
        _threads = new Thread[CompileThreads];
        for (var i = 0; i < _threads.Length; i++)
        {
            _threads[i] = new Thread(RunQueue) { IsBackground = true, Name = $"p2pshare-compile-{i}" };
            _threads[i].Start();
        }
    }

    /// <summary>How long one compile may take before it ends CompileError.</summary>
    public TimeSpan TimeLimit { get; }

    /// <summary>Times Roslyn was actually run (cache misses), for tests and metrics.</summary>
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
    /// <remarks>A cached program answers at once; a new one waits for a compile thread.</remarks>
    public async Task<CompiledProgram> CompileAsync(string program, string? function)
    {
        ArgumentNullException.ThrowIfNull(program);
        if (program.Length > MaxProgramChars)
            throw new TaskRejectedException(TaskErrorKind.InvalidArguments, $"the program is longer than {MaxProgramChars} characters");

        var hash = Hash(program);
        var entry = Lookup(hash);
        var fromCache = entry is not null;
        if (entry is null)
        {
            entry = await OnCompileThreadAsync(hash, program).ConfigureAwait(false);
            Store(entry);
        }

        if (entry.Rejection is { } rejection) throw new TaskRejectedException(rejection.Kind, rejection.Detail);
        return new CompiledProgram(hash, entry.Assembly!, ResolveFunction(entry.Functions, function), fromCache);
    }

    public void Dispose() => _queue.CompleteAdding();

    private async Task<CacheEntry> OnCompileThreadAsync(string hash, string program)
    {
        var started = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var done = new TaskCompletionSource<CacheEntry>(TaskCreationOptions.RunContinuationsAsynchronously);
        _queue.Add(() =>
        {
            started.TrySetResult(Stopwatch.GetTimestamp());
            using var limit = new CancellationTokenSource(TimeLimit);
            try
            {
                done.TrySetResult(CompileUncached(hash, program, limit.Token));
            }
            catch (OperationCanceledException) when (limit.IsCancellationRequested)
            {
                LogTooLong(hash[..12], TimeLimit.TotalSeconds);
                done.TrySetResult(CacheEntry.Rejected(hash, TaskErrorKind.CompileError, TooLong(TimeLimit)));
            }
            catch (Exception ex)
            {
                done.TrySetException(ex);
            }
        });

        // The limit counts from the start of the compile, not from the time spent queued. Roslyn
        // checks its cancellation token only now and then (a lambda-binding bomb ran 2 minutes past
        // it), so the caller stops waiting at the limit while the compile thread finishes on its own.
        var start = await started.Task.ConfigureAwait(false);
        var left = TimeLimit - Stopwatch.GetElapsedTime(start);
        try
        {
            return await done.Task.WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            LogTooLong(hash[..12], TimeLimit.TotalSeconds);
            return CacheEntry.Rejected(hash, TaskErrorKind.CompileError, TooLong(TimeLimit));
        }
    }

    internal static string TooLong(TimeSpan limit) => $"compilation took longer than {limit.TotalSeconds:0.###} s";

    private void RunQueue()
    {
        foreach (var work in _queue.GetConsumingEnumerable()) work();
    }

    public static string Hash(string program) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(program)));

    private CacheEntry CompileUncached(string hash, string program, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _compilations);
        var watch = Stopwatch.StartNew();
        var tree = CSharpSyntaxTree.ParseText(program, ParseOptions, cancellationToken: cancellationToken);
        var compilation = CSharpCompilation.CreateScriptCompilation(
            $"p2pshare-{hash[..16]}", tree, References.Value, CompilationOptions, returnType: typeof(object));

        // Refusal first: a denied API often also fails to compile (its assembly is not referenced),
        // and "NotAllowed: X" tells the user more than "type not found".
        var model = compilation.GetSemanticModel(tree);
        if (SandboxPolicy.FindViolation(tree, model, cancellationToken) is { } violation)
            return CacheEntry.Rejected(hash, TaskErrorKind.NotAllowed, violation);

        var errors = compilation.GetDiagnostics(cancellationToken).Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        if (errors.Count > 0) return CacheEntry.Rejected(hash, TaskErrorKind.CompileError, Describe(errors));

        var functions = compilation.ScriptClass!.GetMembers()
            .OfType<IMethodSymbol>()
            .Where(m => m.MethodKind == MethodKind.Ordinary && !m.IsImplicitlyDeclared)
            .GroupBy(m => m.Name, StringComparer.Ordinal)
            .Select(g => new FunctionInfo(g.Key, g.Count(), g.Any(m => m.IsGenericMethod)))
            .ToImmutableArray();

        using var assembly = new MemoryStream();
        var emitted = compilation.Emit(assembly, cancellationToken: cancellationToken);
        if (!emitted.Success)
            return CacheEntry.Rejected(hash, TaskErrorKind.CompileError, Describe(emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToList()));

        LogCompiled(hash[..12], assembly.Length, watch.Elapsed.TotalMilliseconds);
        return new CacheEntry(hash, assembly.ToArray(), functions, null);
    }

    private static string ResolveFunction(ImmutableArray<FunctionInfo> functions, string? requested)
    {
        var defined = functions.IsEmpty ? "the program defines no functions" : $"the program defines: {string.Join(", ", functions.Select(f => f.Name))}";
        FunctionInfo? chosen;
        if (!string.IsNullOrWhiteSpace(requested))
        {
            chosen = functions.FirstOrDefault(f => f.Name == requested)
                ?? throw new TaskRejectedException(TaskErrorKind.InvalidArguments, $"no function '{requested}'; {defined}");
        }
        else
        {
            chosen = functions.FirstOrDefault(f => f.Name == "main") ?? (functions.Length == 1 ? functions[0] : null)
                ?? throw new TaskRejectedException(TaskErrorKind.InvalidArguments,
                    functions.IsEmpty ? defined : $"no function 'main' and more than one to choose from; name one: {string.Join(", ", functions.Select(f => f.Name))}");
        }

        if (chosen.Overloads > 1)
            throw new TaskRejectedException(TaskErrorKind.InvalidArguments, $"function '{chosen.Name}' is overloaded; give the function to call a name of its own");
        if (chosen.IsGeneric)
            throw new TaskRejectedException(TaskErrorKind.InvalidArguments, $"function '{chosen.Name}' is generic; JSON arguments cannot choose its type parameters");
        return chosen.Name;
    }

    private static string Describe(List<Diagnostic> errors)
    {
        var shown = errors.OrderBy(d => d.Location.SourceSpan.Start).Take(MaxDiagnosticsShown).Select(d => d.ToString());
        var text = string.Join("\n", shown);
        return errors.Count > MaxDiagnosticsShown ? $"{text}\n... and {errors.Count - MaxDiagnosticsShown} more errors" : text;
    }

    private CacheEntry? Lookup(string hash)
    {
        lock (_gate)
        {
            if (!_cache.TryGetValue(hash, out var node)) return null;
            _lru.Remove(node);
            _lru.AddFirst(node);
            return node.Value;
        }
    }

    private void Store(CacheEntry entry)
    {
        lock (_gate)
        {
            if (_cache.ContainsKey(entry.Hash)) return; // another thread compiled the same text meanwhile
            _cache[entry.Hash] = _lru.AddFirst(entry);
            _cachedBytes += entry.Size;
            while (_lru.Count > _maxEntries || (_cachedBytes > _maxBytes && _lru.Count > 1))
            {
                var oldest = _lru.Last!;
                _lru.RemoveLast();
                _cache.Remove(oldest.Value.Hash);
                _cachedBytes -= oldest.Value.Size;
            }
        }
    }

    private static ImmutableArray<MetadataReference> LoadReferences()
    {
        // The list can name an assembly twice (e.g. the test host adds CoreLib again); the first wins.
        var trusted = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var path in ((string?)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            trusted.TryAdd(Path.GetFileNameWithoutExtension(path), path);
        var references = ImmutableArray.CreateBuilder<MetadataReference>(ReferenceAssemblies.Length);
        foreach (var name in ReferenceAssemblies)
        {
            if (!trusted.TryGetValue(name, out var path))
                throw new InvalidOperationException($"the runtime assembly {name} is not among the trusted platform assemblies");
            references.Add(MetadataReference.CreateFromFile(path));
        }

        return references.MoveToImmutable();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Compiling program {Hash} took longer than {Seconds} s; it was stopped")]
    private partial void LogTooLong(string hash, double seconds);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Compiled program {Hash} to {Bytes} bytes in {Ms:0.0} ms")]
    private partial void LogCompiled(string hash, long bytes, double ms);

    private sealed record FunctionInfo(string Name, int Overloads, bool IsGeneric);

    private sealed record Rejection(TaskErrorKind Kind, string Detail);

    private sealed record CacheEntry(string Hash, byte[]? Assembly, ImmutableArray<FunctionInfo> Functions, Rejection? Rejection)
    {
        public long Size => (Assembly?.Length ?? 0) + (Rejection?.Detail.Length * 2 ?? 0) + EntryOverheadBytes;

        public static CacheEntry Rejected(string hash, TaskErrorKind kind, string detail) => new(hash, null, [], new Rejection(kind, detail));
    }
}
