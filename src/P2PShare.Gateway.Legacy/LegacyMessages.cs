using System.Text.Json;

namespace P2PShare.Legacy;

/// <summary>A request the client got wrong: answered with <c>{"type":"ERROR","error":...}</c>, connection kept.</summary>
public sealed class LegacyProtocolException(string message) : Exception(message);

/// <summary>One parsed seed-protocol message, with typed access to its fields.</summary>
public sealed class LegacyRequest(JsonElement root, string type, string remote)
{
    public JsonElement Root { get; } = root;

    /// <summary>The message type, upper-cased (the original's are all upper case).</summary>
    public string Type { get; } = type;

    /// <summary>The client's address, <c>ip:port</c>.</summary>
    public string Remote { get; } = remote;

    public bool Has(string name) => Root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null;

    public JsonElement? Field(string name) =>
        Root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public string RequiredString(string name) =>
        OptionalString(name) ?? throw new LegacyProtocolException($"{Type} needs '{name}' (a string)");

    public string? OptionalString(string name) => Field(name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } v => v.GetString(),
        { } v => throw WrongType(name, "a string", v),
    };

    public bool OptionalBool(string name, bool fallback) => Field(name) switch
    {
        null => fallback,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        { } v => throw WrongType(name, "true or false", v),
    };

    public long? OptionalInteger(string name, long min, long max)
    {
        if (Field(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out var n))
        {
            // 5.0 is an integer too, as Python's json writes it for float(5).
            if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out var d) && d == Math.Floor(d) && Math.Abs(d) < 1e15) n = (long)d;
            else throw WrongType(name, "an integer", v);
        }

        if (n < min || n > max) throw new LegacyProtocolException($"'{name}' must be between {min} and {max}, not {n}");
        return n;
    }

    public double? OptionalNumber(string name, double min, double max)
    {
        if (Field(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out var d) || !double.IsFinite(d)) throw WrongType(name, "a number", v);
        if (d < min || d > max) throw new LegacyProtocolException($"'{name}' must be between {min} and {max}, not {d}");
        return d;
    }

    public int RequiredPort(string name = "port") =>
        (int)(OptionalInteger(name, 1, 65535) ?? throw new LegacyProtocolException($"{Type} needs '{name}' (an integer 1-65535)"));

    private LegacyProtocolException WrongType(string name, string expected, JsonElement actual) =>
        new($"'{name}' of {Type} must be {expected}, not {Describe(actual.ValueKind)}");

    internal static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "nothing",
    };
}

/// <summary>
/// A reply: its <c>type</c> and a writer for the rest of its fields, and optionally one last string
/// field too large to build in memory (<see cref="Streamed"/>), written to the connection in pieces.
/// </summary>
public sealed class LegacyReply(string type, Action<Utf8JsonWriter>? fields = null, int sizeHint = 512, ILegacyStreamedField? streamed = null)
{
    public string Type { get; } = type;

    /// <summary>The last field, streamed after the others; the server disposes it once written or abandoned.</summary>
    public ILegacyStreamedField? Streamed { get; } = streamed;

    /// <summary>Roughly how many bytes the reply takes, so a large one is written without regrowing its buffer.</summary>
    public int SizeHint { get; } = sizeHint;

    public void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", Type);
        fields?.Invoke(writer);
        // A placeholder the server cuts the streamed value into: the frame ends with `"name":""}`.
        if (Streamed is { } streamed) writer.WriteString(streamed.Name, "");
        writer.WriteEndObject();
    }

    public static LegacyReply Error(string message) => new("ERROR", w => w.WriteString("error", message));

    /// <summary>The original's STATUS replies: <c>{"type":"STATUS","status":...}</c> plus fields.</summary>
    public static LegacyReply Status(string status, Action<Utf8JsonWriter>? fields = null) => new("STATUS", w =>
    {
        w.WriteString("status", status);
        fields?.Invoke(w);
    });

    public static LegacyReply Pong { get; } = new("PONG");
}

/// <summary>
/// A JSON string value whose length is known up front (the frame's length prefix comes first) and
/// whose bytes are produced while they are sent, e.g. a file in base64.
/// </summary>
public interface ILegacyStreamedField : IAsyncDisposable
{
    /// <summary>The field's name (JSON-safe, written unescaped).</summary>
    string Name { get; }

    /// <summary>Bytes of the value between its quotes; exactly this many are written.</summary>
    long Length { get; }

    /// <exception cref="IOException">The value could not be produced in full; the connection must be closed.</exception>
    Task WriteToAsync(Stream stream, CancellationToken cancellationToken);
}

/// <summary>Answers the messages of one port (peer or tracker).</summary>
public interface ILegacyHandler
{
    /// <exception cref="LegacyProtocolException">The request is malformed; the message says how.</exception>
    Task<LegacyReply> HandleAsync(LegacyRequest request, CancellationToken cancellationToken);
}
