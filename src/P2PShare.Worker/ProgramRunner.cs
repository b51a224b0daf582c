using System.Reflection;
using System.Runtime.Loader;
using System.Text.Json;
using System.Text.Json.Serialization;
using P2PShare.Compute.Protocol;

namespace P2PShare.Worker;

/// <summary>
/// Loads script assemblies (once per program hash, each in its own collectible load context) and runs
/// one function of a fresh submission per request. The peer recycles the whole process after a number
/// of programs, so contexts are never unloaded here.
/// </summary>
internal sealed class ProgramRunner
{
    private static readonly JsonSerializerOptions ResultJson = new()
    {
        IncludeFields = true, // tuples and plain field-bag classes are common in scripts
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        MaxDepth = 256,
    };

    private static readonly JsonSerializerOptions ArgsJson = new()
    {
        IncludeFields = true,
        PropertyNameCaseInsensitive = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    private readonly Dictionary<string, Type> _submissions = new(StringComparer.Ordinal);
    private readonly TextWriter _stderr = Console.Error;

    public async Task<(WorkerResponseHeader Header, ReadOnlyMemory<byte> Result)> RunAsync(WorkerRequestHeader request, ReadOnlyMemory<byte> assembly)
    {
        var output = new CappedTextWriter(Math.Max(0, request.MaxOutputBytes));
        Console.SetOut(output);
        Console.SetError(output);
        try
        {
            var outcome = await RunCapturedAsync(request, assembly);
            return outcome.Kind == WorkerOutcome.None
                ? (new WorkerResponseHeader(request.Sequence, WorkerOutcome.None, null, output.ToString()), outcome.Result)
                : (new WorkerResponseHeader(request.Sequence, outcome.Kind, Cut(outcome.Error), output.ToString()), ReadOnlyMemory<byte>.Empty);
        }
        catch (OutOfMemoryException)
        {
            return (new WorkerResponseHeader(request.Sequence, WorkerOutcome.OutOfMemory, "out of memory: the program exceeded the worker's heap limit", ""),
                ReadOnlyMemory<byte>.Empty);
        }
        finally
        {
            Console.SetOut(TextWriter.Null);
            Console.SetError(_stderr);
        }
    }

    private async Task<Outcome> RunCapturedAsync(WorkerRequestHeader request, ReadOnlyMemory<byte> assembly)
    {
        if (!_submissions.TryGetValue(request.Hash, out var submissionType))
        {
            if (assembly.IsEmpty) return Outcome.Fail(WorkerOutcome.Crashed, $"protocol error: program {request.Hash} was never sent to this worker");
            submissionType = Load(request.Hash, assembly);
            _submissions[request.Hash] = submissionType;
        }

        var methods = submissionType
            .GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly)
            .Where(m => m.Name == request.Function && !m.IsSpecialName)
            .ToList();
        if (methods.Count == 0) return Outcome.Fail(WorkerOutcome.InvalidArguments, $"no function '{request.Function}' in the program");
        var method = methods[0];
        if (method.ContainsGenericParameters) return Outcome.Fail(WorkerOutcome.InvalidArguments, $"function '{request.Function}' is generic");

        var args = ConvertArguments(method, request.ArgsJson, out var argsError);
        if (argsError is not null) return Outcome.Fail(WorkerOutcome.InvalidArguments, argsError);

        object? value;
        try
        {
            var submission = await CreateSubmissionAsync(submissionType);
            var returned = method.Invoke(method.IsStatic ? null : submission, args);
            value = await AwaitResultAsync(method.ReturnType, returned);
        }
        catch (Exception e) when (Unwrap(e) is OutOfMemoryException)
        {
            return Outcome.Fail(WorkerOutcome.OutOfMemory, "out of memory: the program exceeded the worker's heap limit");
        }
        catch (Exception e)
        {
            var thrown = Unwrap(e);
            return Outcome.Fail(WorkerOutcome.Exception, $"{thrown.GetType().Name}: {thrown.Message}");
        }

        return Serialize(value, request.MaxResultBytes);
    }

    /// <summary>An error message within what the peer accepts (a program's exception text can be any length).</summary>
    internal static string? Cut(string? error)
    {
        if (error is null || error.Length <= WorkerFrames.MaxErrorChars) return error;
        var keep = WorkerFrames.MaxErrorChars - 3;
        if (char.IsHighSurrogate(error[keep - 1])) keep--; // never half a character
        return error[..keep] + "...";
    }

    private static Type Load(string hash, ReadOnlyMemory<byte> assembly)
    {
        var context = new AssemblyLoadContext($"program-{hash[..Math.Min(12, hash.Length)]}", isCollectible: true);
        var loaded = context.LoadFromStream(new MemoryStream(assembly.ToArray(), writable: false));
        // Looked up by shape, not by name: "Submission#0" does not survive type-name parsing.
        return loaded.GetTypes().FirstOrDefault(t => t.GetMethod("<Factory>", BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static) is not null)
            ?? throw new InvalidOperationException("the assembly is not a script submission");
    }

    // A script assembly's entry is Submission#0.<Factory>(object[] submissionArray): slot 0 holds the
    // globals (none here), the constructor stores the new submission in slot 1, and the returned task
    // runs the script's top-level statements.
    private static async Task<object> CreateSubmissionAsync(Type submissionType)
    {
        var factory = submissionType.GetMethod("<Factory>", BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static)
            ?? throw new InvalidOperationException("the assembly is not a script submission");
        var slots = new object?[2];
        var init = (Task)factory.Invoke(null, [slots])!;
        await init;
        return slots[1] ?? throw new InvalidOperationException("the script did not create its submission");
    }

    private static object?[] ConvertArguments(MethodInfo method, string argsJson, out string? error)
    {
        error = null;
        var parameters = method.GetParameters();
        JsonElement[] given;
        try
        {
            using var doc = JsonDocument.Parse(string.IsNullOrWhiteSpace(argsJson) ? "[]" : argsJson);
            if (doc.RootElement.ValueKind != JsonValueKind.Array)
            {
                error = $"arguments must be a JSON array, not {doc.RootElement.ValueKind.ToString().ToLowerInvariant()}";
                return [];
            }

            given = doc.RootElement.EnumerateArray().Select(e => e.Clone()).ToArray();
        }
        catch (JsonException e)
        {
            error = $"arguments are not valid JSON: {e.Message}";
            return [];
        }

        var required = parameters.Count(p => !p.HasDefaultValue && !p.IsOptional);
        if (given.Length < required || given.Length > parameters.Length)
        {
            var expected = required == parameters.Length ? $"{required}" : $"{required} to {parameters.Length}";
            error = $"{Signature(method)} expects {expected} argument{(parameters.Length == 1 ? "" : "s")} but {given.Length} {(given.Length == 1 ? "was" : "were")} given";
            return [];
        }

        var args = new object?[parameters.Length];
        for (var i = 0; i < parameters.Length; i++)
        {
            if (i >= given.Length)
            {
                args[i] = parameters[i].HasDefaultValue ? parameters[i].DefaultValue : Type.Missing;
                continue;
            }

            var type = parameters[i].ParameterType;
            try
            {
                args[i] = given[i].Deserialize(type, ArgsJson);
                if (args[i] is null && type.IsValueType && Nullable.GetUnderlyingType(type) is null)
                    throw new JsonException("null is not a value of a non-nullable type");
            }
            catch (Exception e) when (e is JsonException or NotSupportedException or InvalidOperationException or ArgumentException)
            {
                error = $"{Signature(method)}: argument {i + 1} ({parameters[i].Name}) cannot be converted from {Shorten(given[i].GetRawText())} to {TypeName(type)}";
                return [];
            }
        }

        return args;
    }

    private static async Task<object?> AwaitResultAsync(Type declared, object? returned)
    {
        if (declared == typeof(void)) return null;
        if (declared == typeof(Task))
        {
            await (Task)returned!;
            return null;
        }

        if (declared == typeof(ValueTask))
        {
            await (ValueTask)returned!;
            return null;
        }

        if (declared.IsGenericType && declared.GetGenericTypeDefinition() == typeof(ValueTask<>))
        {
            returned = declared.GetMethod(nameof(ValueTask<int>.AsTask))!.Invoke(returned, null);
            declared = typeof(Task<>).MakeGenericType(declared.GetGenericArguments());
        }

        if (declared.IsGenericType && declared.GetGenericTypeDefinition() == typeof(Task<>))
        {
            await (Task)returned!;
            return declared.GetProperty(nameof(Task<int>.Result))!.GetValue(returned);
        }

        return returned;
    }

    private static Outcome Serialize(object? value, int maxResultBytes)
    {
        if (value is null) return Outcome.Success("null"u8.ToArray());
        var buffer = new CappedStream(maxResultBytes);
        try
        {
            JsonSerializer.Serialize(buffer, value, value.GetType(), ResultJson);
        }
        catch (CappedStream.FullException)
        {
            return Outcome.Fail(WorkerOutcome.ResultTooLarge, $"the result is larger than {maxResultBytes} bytes of JSON");
        }
        catch (Exception e) when (e is JsonException or NotSupportedException or InvalidOperationException)
        {
            return Outcome.Fail(WorkerOutcome.Exception, $"{e.GetType().Name}: the result cannot be written as JSON: {e.Message}");
        }

        return Outcome.Success(buffer.ToArray());
    }

    private static Exception Unwrap(Exception e)
    {
        while (e is TargetInvocationException { InnerException: { } inner }) e = inner;
        if (e is AggregateException { InnerExceptions.Count: 1 } aggregate) return Unwrap(aggregate.InnerExceptions[0]);
        return e;
    }

    private static string Signature(MethodInfo method) =>
        $"{method.Name}({string.Join(", ", method.GetParameters().Select(p => $"{TypeName(p.ParameterType)} {p.Name}"))})";

    private static string TypeName(Type type)
    {
        if (Nullable.GetUnderlyingType(type) is { } underlying) return TypeName(underlying) + "?";
        if (type.IsArray) return TypeName(type.GetElementType()!) + "[]";
        var keyword = Type.GetTypeCode(type) switch
        {
            TypeCode.Boolean => "bool",
            TypeCode.Byte => "byte",
            TypeCode.SByte => "sbyte",
            TypeCode.Char => "char",
            TypeCode.Int16 => "short",
            TypeCode.UInt16 => "ushort",
            TypeCode.Int32 => "int",
            TypeCode.UInt32 => "uint",
            TypeCode.Int64 => "long",
            TypeCode.UInt64 => "ulong",
            TypeCode.Single => "float",
            TypeCode.Double => "double",
            TypeCode.Decimal => "decimal",
            TypeCode.String => "string",
            _ => null,
        };
        if (keyword is not null && !type.IsEnum) return keyword;
        if (type == typeof(object)) return "object";
        if (!type.IsGenericType) return type.Name;
        var name = type.Name[..type.Name.IndexOf('`', StringComparison.Ordinal)];
        return $"{name}<{string.Join(", ", type.GetGenericArguments().Select(TypeName))}>";
    }

    private static string Shorten(string json) => json.Length <= 40 ? json : json[..40] + "...";

    private readonly record struct Outcome(int Kind, string? Error, ReadOnlyMemory<byte> Result)
    {
        public static Outcome Success(ReadOnlyMemory<byte> result) => new(WorkerOutcome.None, null, result);

        public static Outcome Fail(int kind, string error) => new(kind, error, ReadOnlyMemory<byte>.Empty);
    }

    /// <summary>A memory stream that refuses to grow past a cap, so an oversized result is detected without holding it.</summary>
    private sealed class CappedStream(int maxBytes) : MemoryStream
    {
        public override void Write(byte[] buffer, int offset, int count)
        {
            Check(count);
            base.Write(buffer, offset, count);
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Check(buffer.Length);
            base.Write(buffer);
        }

        public override void WriteByte(byte value)
        {
            Check(1);
            base.WriteByte(value);
        }

        private void Check(int more)
        {
            if (Length + more > maxBytes) throw new FullException();
        }

        public sealed class FullException : Exception;
    }
}
