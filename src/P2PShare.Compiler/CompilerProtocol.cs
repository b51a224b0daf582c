using System.Text.Json.Serialization;

// Compiled into both the compiler and the peer (linked source), so the two sides cannot drift apart.
namespace P2PShare.Compute.Protocol;

/// <summary>
/// What a peer and its compiler process say to each other, in <see cref="WorkerFrames"/> frames on the
/// compiler's stdin and stdout: first a <see cref="WorkerHello"/> (Roslyn is warm by then), then one
/// <see cref="CompileResponseHeader"/> per <see cref="CompileRequestHeader"/>, one at a time.
/// </summary>
/// <remarks>
/// The compiler runs Roslyn over strangers' text, so the peer believes nothing it says beyond these
/// limits, checked before anything is allocated; anything else is a protocol violation and the
/// process is killed.
/// </remarks>
internal static class CompilerFrames
{
    /// <summary>Longest program text, in characters; the peer refuses longer ones before any compiler sees them.</summary>
    public const int MaxProgramChars = 1024 * 1024;

    /// <summary>The compiler cuts diagnostics to this many characters; the peer refuses longer ones.</summary>
    public const int MaxDetailChars = 64 * 1024;

    /// <summary>Largest assembly a program may compile to.</summary>
    public const int MaxAssemblyBytes = 64 * 1024 * 1024;

    /// <summary>A request: the program text as UTF-8 in the body (at most 3 bytes a character).</summary>
    public static readonly FrameLimit Request = new(1024, 3 * MaxProgramChars);

    /// <summary>
    /// A response: the detail and the function names travel JSON-escaped in the header (the names come
    /// from the program text, with a few dozen bytes of JSON around each), the assembly raw in the body.
    /// </summary>
    public static readonly FrameLimit Response = new(
        WorkerFrames.HeaderSlackBytes + WorkerFrames.JsonEscapeFactor * (MaxDetailChars + MaxProgramChars) + 64 * (MaxProgramChars / 8),
        MaxAssemblyBytes);
}

/// <summary>Compile the program text in the frame body.</summary>
/// <param name="Sequence">Unique per request to a compiler; its response must echo it.</param>
/// <param name="Name">The assembly's name (from the text's hash).</param>
internal sealed record CompileRequestHeader(long Sequence, string Name);

/// <summary>A top-level method the program defines, for choosing the function to call.</summary>
internal sealed record CompiledFunction(string Name, int Overloads, bool IsGeneric);

/// <summary>
/// A compile's outcome; the frame body is the assembly when <see cref="Kind"/> is <see cref="CompileOutcome.Compiled"/>, else empty.
/// </summary>
/// <param name="Detail">The diagnostics or the refusal, as the user sees them after <c>Kind: </c>.</param>
internal sealed record CompileResponseHeader(long Sequence, int Kind, string? Detail, IReadOnlyList<CompiledFunction> Functions);

/// <summary>Outcomes a compiler reports; the values equal <c>TaskErrorKind</c>'s.</summary>
internal static class CompileOutcome
{
    public const int Compiled = 0;
    public const int CompileError = 1;
    public const int NotAllowed = 2;
    // Roslyn hit the heap limit; the compiler says so and exits (its state is not to be trusted after).
    public const int OutOfMemory = 6;
}

// As strict as the worker's protocol: a header with an unknown, missing or repeated property is not one the other side wrote.
[JsonSourceGenerationOptions(
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    RespectRequiredConstructorParameters = true,
    RespectNullableAnnotations = true,
    AllowDuplicateProperties = false)]
[JsonSerializable(typeof(CompileRequestHeader))]
[JsonSerializable(typeof(CompileResponseHeader))]
internal sealed partial class CompilerProtocolJson : JsonSerializerContext;
