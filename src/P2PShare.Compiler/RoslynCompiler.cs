using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using P2PShare.Compute;
using P2PShare.Compute.Protocol;

namespace P2PShare.Compiler;

/// <summary>
/// Compiles one program text (C# script syntax: top-level methods) to assembly bytes and checks it
/// against <see cref="SandboxPolicy"/>. Runs only inside the compiler process, whose heap the peer
/// caps and whose life the peer ends at the compile time limit: Roslyn does not stop when asked.
/// </summary>
internal sealed class RoslynCompiler
{
    private const int MaxDiagnosticsShown = 20;

    private static readonly string[] DefaultUsings =
        ["System", "System.Linq", "System.Collections.Generic", "System.Text", "System.Threading.Tasks"];

    // What programs compile against. Anything reachable here is also judged by SandboxPolicy.
    private static readonly string[] ReferenceAssemblies =
    [
        "System.Private.CoreLib", "System.Runtime", "System.Console", "System.Linq", "System.Collections",
        "System.Collections.Concurrent", "System.Runtime.Numerics", "System.Text.RegularExpressions",
        "System.Memory", "System.Threading",
    ];

    private static readonly CSharpParseOptions ParseOptions =
        CSharpParseOptions.Default.WithKind(SourceCodeKind.Script).WithLanguageVersion(LanguageVersion.Latest);

    private static readonly CSharpCompilationOptions CompilationOptions = new(
        OutputKind.DynamicallyLinkedLibrary,
        usings: DefaultUsings,
        optimizationLevel: OptimizationLevel.Release,
        allowUnsafe: false,
        concurrentBuild: false, // one core per compile: the concurrency bound counts processes
        deterministic: true);

    // Metadata references are immutable and expensive (each maps a file and caches symbols): one set per process.
    private readonly ImmutableArray<MetadataReference> _references = LoadReferences();

    public (CompileResponseHeader Header, byte[] Assembly) Compile(long sequence, string name, string program)
    {
        var tree = CSharpSyntaxTree.ParseText(program, ParseOptions);
        var compilation = CSharpCompilation.CreateScriptCompilation(name, tree, _references, CompilationOptions, returnType: typeof(object));

        // Refusal first: a denied API often also fails to compile (its assembly is not referenced),
        // and "NotAllowed: X" tells the user more than "type not found".
        var model = compilation.GetSemanticModel(tree);
        if (SandboxPolicy.FindViolation(tree, model, CancellationToken.None) is { } violation)
            return (Rejected(sequence, CompileOutcome.NotAllowed, violation), []);

        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        if (errors.Count > 0) return (Rejected(sequence, CompileOutcome.CompileError, Describe(errors)), []);

        var functions = compilation.ScriptClass!.GetMembers()
            .OfType<IMethodSymbol>()
            .Where(m => m.MethodKind == MethodKind.Ordinary && !m.IsImplicitlyDeclared)
            .GroupBy(m => m.Name, StringComparer.Ordinal)
            .Select(g => new CompiledFunction(g.Key, g.Count(), g.Any(m => m.IsGenericMethod)))
            .ToList();

        using var assembly = new MemoryStream();
        var emitted = compilation.Emit(assembly);
        if (!emitted.Success)
            return (Rejected(sequence, CompileOutcome.CompileError, Describe(emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToList())), []);
        if (assembly.Length > CompilerFrames.MaxAssemblyBytes)
            return (Rejected(sequence, CompileOutcome.CompileError, $"the compiled program is larger than {CompilerFrames.MaxAssemblyBytes / (1024 * 1024)} MiB"), []);
        return (new CompileResponseHeader(sequence, CompileOutcome.Compiled, null, functions), assembly.ToArray());
    }

    private static CompileResponseHeader Rejected(long sequence, int kind, string detail) => new(sequence, kind, Cut(detail), []);

    internal static string Cut(string text) => text.Length <= CompilerFrames.MaxDetailChars ? text : text[..(CompilerFrames.MaxDetailChars - 3)] + "...";

    private static string Describe(List<Diagnostic> errors)
    {
        var shown = errors.OrderBy(d => d.Location.SourceSpan.Start).Take(MaxDiagnosticsShown).Select(d => d.ToString());
        var text = string.Join("\n", shown);
        return errors.Count > MaxDiagnosticsShown ? $"{text}\n... and {errors.Count - MaxDiagnosticsShown} more errors" : text;
    }

    private static ImmutableArray<MetadataReference> LoadReferences()
    {
        // The list can name an assembly twice; the first wins.
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
}
