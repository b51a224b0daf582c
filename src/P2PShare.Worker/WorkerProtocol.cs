using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Serialization;

// Compiled into both the worker and the peer (linked source), so the two sides cannot drift apart.
namespace P2PShare.Compute.Protocol;

/// <summary>
/// The pipe protocol between a peer and its worker processes, over the worker's stdin and stdout.
/// Every message is a frame: a 4-byte little-endian payload length, then the payload. A payload is a
/// 4-byte little-endian header length, a UTF-8 JSON header, then raw bytes (the rest of the payload):
/// the program's assembly in a request (empty when the worker already holds that program), the result
/// JSON in a response. Raw bytes travel unescaped, so a 16 MiB result costs 16 MiB on the pipe.
/// The worker's first frame is a <see cref="WorkerHello"/>; after that it answers each request with
/// exactly one <see cref="WorkerResponseHeader"/>, one request at a time. Its stdout carries nothing else.
/// </summary>
internal static class WorkerFrames
{
    /// <summary>Guards against a corrupt length prefix: no legitimate frame comes near this.</summary>
    public const int MaxFrameBytes = 512 * 1024 * 1024;

    public static async Task WriteAsync<T>(Stream stream, T header, ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(header, typeof(T), WorkerProtocolJson.Default);
        var prefix = new byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(prefix, checked(4 + json.Length + body.Length));
        BinaryPrimitives.WriteInt32LittleEndian(prefix.AsSpan(4), json.Length);
        await stream.WriteAsync(prefix, cancellationToken).ConfigureAwait(false);
        await stream.WriteAsync(json, cancellationToken).ConfigureAwait(false);
        if (!body.IsEmpty) await stream.WriteAsync(body, cancellationToken).ConfigureAwait(false);
        await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads one frame; null at a clean end of stream (the other side closed the pipe).</summary>
    public static async Task<(T Header, byte[] Payload, int BodyOffset)?> ReadAsync<T>(Stream stream, CancellationToken cancellationToken)
        where T : class
    {
        var prefix = new byte[4];
        var got = await stream.ReadAtLeastAsync(prefix, 4, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        if (got == 0) return null;
        if (got < 4) throw new EndOfStreamException("the pipe closed inside a frame");
        var length = BinaryPrimitives.ReadInt32LittleEndian(prefix);
        if (length is < 4 or > MaxFrameBytes) throw new InvalidDataException($"bad frame length {length}");
        var payload = new byte[length];
        await stream.ReadExactlyAsync(payload, cancellationToken).ConfigureAwait(false);
        var headerLength = BinaryPrimitives.ReadInt32LittleEndian(payload);
        if (headerLength < 0 || headerLength > length - 4) throw new InvalidDataException($"bad header length {headerLength}");
        var header = (T?)JsonSerializer.Deserialize(payload.AsSpan(4, headerLength), typeof(T), WorkerProtocolJson.Default)
            ?? throw new InvalidDataException("empty frame header");
        return (header, payload, 4 + headerLength);
    }
}

/// <summary>The worker's first frame: it is up and reading requests.</summary>
internal sealed record WorkerHello(int ProcessId);

/// <summary>A run request; the frame body is the assembly, or empty if the worker already loaded <see cref="Hash"/>.</summary>
internal sealed record WorkerRequestHeader(string Hash, string Function, string ArgsJson, int MaxResultBytes, int MaxOutputBytes);

/// <summary>
/// A run's outcome; the frame body is the result JSON when <see cref="Kind"/> is None.
/// <see cref="Kind"/> uses the numeric values of <c>TaskErrorKind</c>.
/// </summary>
internal sealed record WorkerResponseHeader(int Kind, string? Error, string Output);

/// <summary>Outcomes a worker reports itself; values equal <c>TaskErrorKind</c>'s (a test checks).</summary>
internal static class WorkerOutcome
{
    public const int None = 0;
    public const int InvalidArguments = 3;
    public const int Exception = 4;
    public const int OutOfMemory = 6;
    public const int Crashed = 7;
    public const int ResultTooLarge = 8;
}

[JsonSerializable(typeof(WorkerHello))]
[JsonSerializable(typeof(WorkerRequestHeader))]
[JsonSerializable(typeof(WorkerResponseHeader))]
internal sealed partial class WorkerProtocolJson : JsonSerializerContext;
