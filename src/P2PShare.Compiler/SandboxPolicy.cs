using System.Collections.Frozen;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace P2PShare.Compute;

/// <summary>
/// The deny-list checked on Roslyn's semantic model before a program runs. Every name, member access,
/// creation, invocation, attribute and expression type is resolved to symbols (candidates included, so
/// a call that fails overload resolution is still judged by what it tried to reach) and refused when it
/// touches files, network, processes, reflection, interop, unsafe code (pointers and the unchecked
/// vector and memory APIs), threads, timers, the environment, <c>dynamic</c> or assembly loading. This is defence in depth: the wall is the worker process, which
/// is killed on timeout and heap-capped; the list makes hostile programs fail early and clearly.
/// </summary>
internal static class SandboxPolicy
{
    private const string FileSystem = "file system";
    private const string Network = "network";
    private const string Processes = "processes";
    private const string Reflection = "reflection";
    private const string Interop = "native interop";
    private const string Unsafe = "unsafe code";
    private const string Threads = "threads";
    private const string Timers = "timers";
    private const string Environment = "environment";
    private const string AssemblyLoading = "assembly loading";
    private const string Runtime = "runtime internals";
    private const string Console = "console input or control";

    // Whole namespaces (and everything below them).
    private static readonly (string Namespace, string Reason)[] DeniedNamespaces =
    [
        ("System.IO", FileSystem),
        ("System.Net", Network),
        ("System.Reflection", Reflection),
        ("System.Runtime.InteropServices", Interop),
        ("System.Runtime.Loader", AssemblyLoading),
        ("System.Runtime.Serialization", Reflection),
        ("System.Resources", AssemblyLoading),
        ("System.Security", "security"),
        ("System.Timers", Timers),
        ("Microsoft", "platform APIs"),
    ];

    private static readonly FrozenDictionary<string, string> DeniedSystemTypes = new Dictionary<string, string>
    {
        ["Environment"] = Environment,
        ["AppContext"] = Environment,
        ["AppDomain"] = AssemblyLoading,
        ["ResolveEventHandler"] = AssemblyLoading,
        ["AssemblyLoadEventHandler"] = AssemblyLoading,
        ["Activator"] = Reflection,
        ["GC"] = Runtime,
        ["TypedReference"] = Reflection,
        ["ArgIterator"] = Reflection,
        ["RuntimeArgumentHandle"] = Reflection,
        ["RuntimeTypeHandle"] = Reflection,
        ["RuntimeMethodHandle"] = Reflection,
        ["RuntimeFieldHandle"] = Reflection,
        ["ModuleHandle"] = Reflection,
        ["LocalDataStoreSlot"] = Threads,
    }.ToFrozenDictionary();

    private static readonly FrozenDictionary<string, string> DeniedCompilerServicesTypes = new Dictionary<string, string>
    {
        ["Unsafe"] = Unsafe,
        ["RuntimeHelpers"] = Runtime,
        ["ModuleInitializerAttribute"] = "module initializers",
        ["UnsafeAccessorAttribute"] = Reflection,
        ["UnsafeAccessorKind"] = Reflection,
        ["UnsafeAccessorTypeAttribute"] = Reflection,
        ["DisableRuntimeMarshallingAttribute"] = Interop,
        ["SkipLocalsInitAttribute"] = Unsafe,
    }.ToFrozenDictionary();

    // System.Threading is denied except these synchronisation and cancellation types.
    private static readonly FrozenSet<string> AllowedThreadingTypes = new[]
    {
        "CancellationToken", "CancellationTokenSource", "CancellationTokenRegistration", "Interlocked", "Volatile",
        "Monitor", "Lock", "SemaphoreSlim", "ManualResetEventSlim", "CountdownEvent", "ReaderWriterLockSlim",
        "SpinWait", "SpinLock", "LazyInitializer", "LazyThreadSafetyMode",
    }.ToFrozenSet();

    // System.Threading.Tasks: awaiting is fine, starting work on other threads is not.
    private static readonly FrozenSet<string> AllowedTaskTypes = new[]
    {
        "Task", "Task`1", "ValueTask", "ValueTask`1", "TaskCompletionSource", "TaskCompletionSource`1", "TaskStatus",
        "TaskCanceledException", "TaskCreationOptions", "TaskContinuationOptions", "ConfigureAwaitOptions",
    }.ToFrozenSet();

    private static readonly FrozenSet<string> DeniedTaskMembers = new[] { "Run", "Factory", "Start", "RunSynchronously" }.ToFrozenSet();

    private static readonly FrozenSet<string> AllowedConsoleMembers = new[] { "Write", "WriteLine" }.ToFrozenSet();

    // What a program may ask a System.Type (from typeof or GetType()) without reflecting over members.
    private static readonly FrozenSet<string> AllowedTypeMembers = new[]
    {
        "Name", "FullName", "Namespace", "ToString", "Equals", "GetHashCode", "op_Equality", "op_Inequality",
        "IsArray", "IsValueType", "IsClass", "IsInterface", "IsEnum", "IsPrimitive", "IsGenericType", "IsAbstract",
        "IsSealed", "IsAssignableFrom", "IsAssignableTo", "IsInstanceOfType", "IsSubclassOf", "BaseType",
        "GetElementType", "GetGenericArguments", "GenericTypeArguments", "GetEnumNames", "GetEnumUnderlyingType",
    }.ToFrozenSet();

    private static readonly FrozenSet<string> AllowedMemberInfoMembers = new[] { "Name", "ToString", "Equals", "GetHashCode" }.ToFrozenSet();

    // The one member of System.Runtime.InteropServices a program may use: the span it returns is bounds-checked.
    private static readonly FrozenSet<string> AllowedCollectionsMarshalMembers = new[] { "AsSpan" }.ToFrozenSet();

    private static readonly FrozenSet<string> DeniedDelegateMembers = new[] { "DynamicInvoke", "CreateDelegate", "Method" }.ToFrozenSet();

    private static readonly string[] DefaultUsings = ["System", "System.Linq", "System.Collections.Generic", "System.Text", "System.Threading.Tasks"];

    private static readonly SymbolDisplayFormat QualifiedTypeName = new(
        typeQualificationStyle: SymbolDisplayTypeQualificationStyle.NameAndContainingTypesAndNamespaces,
        genericsOptions: SymbolDisplayGenericsOptions.None);

    /// <summary>The first forbidden use in the program, as <c>API (reason) at (line,col)</c>; null when it is clean.</summary>
    public static string? FindViolation(SyntaxTree tree, SemanticModel model, CancellationToken cancellationToken = default)
    {
        var root = tree.GetCompilationUnitRoot(cancellationToken);
        foreach (var directive in root.GetReferenceDirectives())
            return $"#r (assembly loading) at {Position(directive)}";
        foreach (var directive in root.GetLoadDirectives())
            return $"#load (file system) at {Position(directive)}";

        // Namespaces in scope, to judge names that do not resolve (their assembly is not referenced).
        var usings = root.Usings.Where(u => u.Alias is null && u.StaticKeyword.IsKind(SyntaxKind.None) && u.Name is not null)
            .Select(u => u.Name!.ToString()).Concat(DefaultUsings).Prepend("").ToList();
        foreach (var node in root.DescendantNodesAndSelf())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if ((CheckSyntax(node) ?? CheckSemantics(node, model, usings, cancellationToken)) is { } violation)
                return $"{violation} at {Position(node)}";
        }

        return null;
    }

    private static string? CheckSyntax(SyntaxNode node) => node switch
    {
        PointerTypeSyntax or FunctionPointerTypeSyntax => $"pointers ({Unsafe})",
        FixedStatementSyntax => $"fixed ({Unsafe})",
        UnsafeStatementSyntax => $"unsafe ({Unsafe})",
        MakeRefExpressionSyntax or RefTypeExpressionSyntax or RefValueExpressionSyntax => $"System.TypedReference ({Reflection})",
        _ when node.IsKind(SyntaxKind.ArgListExpression) => $"__arglist ({Reflection})",
        MemberDeclarationSyntax member when member.Modifiers.Any(SyntaxKind.UnsafeKeyword) => $"unsafe ({Unsafe})",
        LocalFunctionStatementSyntax local when local.Modifiers.Any(SyntaxKind.UnsafeKeyword) => $"unsafe ({Unsafe})",
        ExternAliasDirectiveSyntax => $"extern alias ({AssemblyLoading})",
        _ => null,
    };

    private static string? CheckSemantics(SyntaxNode node, SemanticModel model, IReadOnlyList<string> usings, CancellationToken cancellationToken)
    {
        // Attributes are judged before an extern modifier so `[DllImport] static extern` names DllImport.
        if (node is MemberDeclarationSyntax or LocalFunctionStatementSyntax)
        {
            var modifiers = node is LocalFunctionStatementSyntax local ? local.Modifiers : ((MemberDeclarationSyntax)node).Modifiers;
            if (modifiers.Any(SyntaxKind.ExternKeyword))
            {
                var attributes = node.DescendantNodes(n => n == node || n is AttributeListSyntax).OfType<AttributeSyntax>();
                foreach (var attribute in attributes)
                    if (CheckSemantics(attribute, model, usings, cancellationToken) is { } viaAttribute) return viaAttribute;
                return $"extern ({Interop})";
            }
        }

        var info = model.GetSymbolInfo(node, cancellationToken);
        if (info.Symbol is { } symbol && CheckSymbol(symbol) is { } bySymbol) return bySymbol;
        foreach (var candidate in info.CandidateSymbols)
            if (CheckSymbol(candidate) is { } byCandidate) return byCandidate;
        if (info.Symbol is null or ITypeSymbol { TypeKind: TypeKind.Error } && info.CandidateSymbols.IsEmpty
            && node is NameSyntax or MemberAccessExpressionSyntax && UnresolvedName(node, usings) is { } byName)
        {
            return byName;
        }

        if (node is ExpressionSyntax)
        {
            var type = model.GetTypeInfo(node, cancellationToken);
            if (type.Type is { } t && CheckType(t) is { } byType) return byType;
            if (type.ConvertedType is { } c && CheckType(c) is { } byConverted) return byConverted;
        }

        return null;
    }

    private static string? CheckSymbol(ISymbol symbol) => symbol switch
    {
        ITypeSymbol type => CheckType(type),
        IMethodSymbol method when TakesPointers(method) => $"{MethodName(method)} ({Unsafe})",
        IMethodSymbol { MethodKind: MethodKind.Constructor or MethodKind.StaticConstructor } ctor => CheckType(ctor.ContainingType),
        IMethodSymbol method => CheckMember(method.ReducedFrom ?? method) ?? CheckTypes(method.TypeArguments),
        IPropertySymbol or IFieldSymbol or IEventSymbol => CheckMember(symbol),
        ILocalSymbol local => CheckType(local.Type),
        IParameterSymbol parameter => CheckType(parameter.Type),
        _ => null,
    };

    // A pointer argument needs an unsafe context the compiler refuses anyway; naming the API
    // (Buffer.MemoryCopy, new Span(void*, int), Vector128.Load(T*)) says more than "pointers".
    private static bool TakesPointers(IMethodSymbol method) =>
        (method.ReducedFrom ?? method).Parameters.Any(p => p.Type is IPointerTypeSymbol or IFunctionPointerTypeSymbol);

    private static string MethodName(IMethodSymbol method)
    {
        var type = method.ContainingType.OriginalDefinition.ToDisplayString(QualifiedTypeName);
        return method.MethodKind == MethodKind.Constructor ? $"new {type}" : $"{type}.{(method.ReducedFrom ?? method).Name}";
    }

    private static string? CheckTypes(IEnumerable<ITypeSymbol> types)
    {
        foreach (var type in types)
            if (CheckType(type) is { } violation) return violation;
        return null;
    }

    private static string? CheckMember(ISymbol member)
    {
        var type = member.ContainingType;
        if (type is null) return null;
        var ns = type.ContainingNamespace?.ToDisplayString() ?? "";
        var name = $"{type.OriginalDefinition.ToDisplayString(QualifiedTypeName)}.{member.Name}";
        if (ns == "System")
        {
            switch (type.MetadataName)
            {
                case "Type" when !AllowedTypeMembers.Contains(member.Name):
                    return $"{name} ({Reflection})";
                case "Type":
                    return null;
                case "Console" when !AllowedConsoleMembers.Contains(member.Name):
                    return $"{name} ({Console})";
                case "Delegate" or "MulticastDelegate" when DeniedDelegateMembers.Contains(member.Name):
                    return $"{name} ({Reflection})";
            }
        }
        else if (ns == "System.Reflection" && type.MetadataName == "MemberInfo" && AllowedMemberInfoMembers.Contains(member.Name))
        {
            return null; // typeof(T).Name binds to MemberInfo.Name
        }
        else if (ns == "System.Threading.Tasks" && type.MetadataName is "Task" or "Task`1" && DeniedTaskMembers.Contains(member.Name))
        {
            return $"{name} ({Threads})";
        }
        else if (IsVectorNamespace(ns) && member.Name.EndsWith("Unsafe", StringComparison.Ordinal))
        {
            // LoadUnsafe/StoreUnsafe(ref T, offset) read and write past the end of an array with no unsafe keyword.
            return $"{name} ({Unsafe})";
        }
        else if (IsCollectionsMarshal(type))
        {
            return AllowedCollectionsMarshalMembers.Contains(member.Name) ? null : $"{name} ({Interop})";
        }

        return CheckType(type) is { } byType ? $"{name} ({ReasonOf(byType)})" : null;
    }

    private static string? CheckType(ITypeSymbol type)
    {
        switch (type)
        {
            case IDynamicTypeSymbol:
                return "dynamic (dynamic typing)";
            case IPointerTypeSymbol or IFunctionPointerTypeSymbol:
                return $"pointers ({Unsafe})";
            case IArrayTypeSymbol array:
                return CheckType(array.ElementType);
            case INamedTypeSymbol named:
                if (named.IsTupleType) return CheckTypes(named.TupleElements.Select(e => e.Type));
                if (CheckTypes(named.TypeArguments) is { } argument) return argument;
                var outer = named;
                while (outer.ContainingType is { } containing) outer = containing;
                return Reason(outer) is { } reason ? $"{named.OriginalDefinition.ToDisplayString(QualifiedTypeName)} ({reason})" : null;
            default:
                return null;
        }
    }

    private static bool IsVectorNamespace(string ns) =>
        ns is "System.Numerics" or "System.Runtime.Intrinsics" || ns.StartsWith("System.Runtime.Intrinsics.", StringComparison.Ordinal);

    private static bool IsCollectionsMarshal(INamedTypeSymbol type) =>
        type.MetadataName == "CollectionsMarshal" && type.ContainingNamespace?.ToDisplayString() == "System.Runtime.InteropServices";

    private static string? Reason(INamedTypeSymbol type)
    {
        if (type.TypeKind == TypeKind.Error) return null; // judged by its spelling, see UnresolvedName
        if (IsCollectionsMarshal(type)) return null; // the name alone; its members are judged one by one in CheckMember
        var ns = type.ContainingNamespace is { IsGlobalNamespace: false } n ? n.ToDisplayString() : "";
        return Reason(ns, type.MetadataName);
    }

    private static string? Reason(string ns, string name)
    {
        foreach (var (denied, reason) in DeniedNamespaces)
            if (ns == denied || ns.StartsWith(denied + ".", StringComparison.Ordinal)) return reason;

        switch (ns)
        {
            case "System":
                return DeniedSystemTypes.GetValueOrDefault(name);
            case "System.Runtime":
                return Runtime; // GCSettings, ControlledExecution, MemoryFailPoint, ...
            case "System.Runtime.CompilerServices":
                return DeniedCompilerServicesTypes.GetValueOrDefault(name);
            case "System.Threading":
                if (AllowedThreadingTypes.Contains(name)) return null;
                return name is "Timer" or "PeriodicTimer" or "TimerCallback" ? Timers : Threads;
            case "System.Threading.Tasks":
                return AllowedTaskTypes.Contains(name) ? null : Threads;
            case "System.Diagnostics":
                if (name == "Stopwatch") return null;
                return name.StartsWith("Process", StringComparison.Ordinal) ? Processes : "diagnostics";
        }

        if (ns.StartsWith("System.Threading.", StringComparison.Ordinal)) return Threads;
        if (ns.StartsWith("System.Diagnostics.", StringComparison.Ordinal) && ns != "System.Diagnostics.CodeAnalysis") return "diagnostics";
        return null;
    }

    /// <summary>
    /// A name the compiler cannot resolve because its assembly is not referenced (System.Net.Http,
    /// System.Diagnostics.Process, Parallel, ...) is judged by its spelling, tried under each namespace
    /// in scope, so the user hears "NotAllowed" rather than "type not found".
    /// </summary>
    private static string? UnresolvedName(SyntaxNode node, IReadOnlyList<string> usings)
    {
        var text = node.ToString();
        if (text.Length > 512 || !text.All(c => char.IsLetterOrDigit(c) || c is '.' or '_')) return null;
        foreach (var scope in usings)
        {
            var parts = (scope.Length == 0 ? text : $"{scope}.{text}").Split('.');
            for (var i = 2; i <= parts.Length; i++)
            {
                var prefix = string.Join('.', parts[..i]);
                var ns = string.Join('.', parts[..(i - 1)]);
                var reason = DeniedNamespaces.FirstOrDefault(d => prefix == d.Namespace).Reason ?? GuessedReason(ns, parts[i - 1]);
                if (reason is not null) return $"{string.Join('.', parts)} ({reason})";
            }
        }

        return null;
    }

    // Only what is denied by name: the catch-all rules (everything in System.Threading but ...) would
    // turn every typo into a NotAllowed under the default usings.
    private static string? GuessedReason(string ns, string name)
    {
        if (DeniedNamespaces.Any(d => ns == d.Namespace || ns.StartsWith(d.Namespace + ".", StringComparison.Ordinal)))
            return Reason(ns, name);
        return ns switch
        {
            "System" => DeniedSystemTypes.GetValueOrDefault(name),
            "System.Threading.Tasks" when name.StartsWith("Parallel", StringComparison.Ordinal) => Threads,
            "System.Diagnostics" when name.StartsWith("Process", StringComparison.Ordinal) => Processes,
            _ => null,
        };
    }

    private static string ReasonOf(string violation)
    {
        var open = violation.LastIndexOf('(');
        return open >= 0 && violation.EndsWith(')') ? violation[(open + 1)..^1] : violation;
    }

    private static string Position(SyntaxNode node)
    {
        var start = node.GetLocation().GetLineSpan().StartLinePosition;
        return $"({start.Line + 1},{start.Character + 1})";
    }
}
