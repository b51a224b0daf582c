using System.Buffers;
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
/// exactly one <see cref="WorkerResponseHeader"/> echoing the request's sequence number, one request at
/// a time. Its stdout carries nothing else.
/// </summary>
/// <remarks>
/// The peer trusts nothing a worker writes (it runs strangers' code): it reads with a
/// <see cref="FrameLimit"/> fitted to what the request can legitimately produce, checked before
/// anything is allocated, and any frame that breaks the rules throws <see cref="WorkerProtocolException"/>.
/// </remarks>
internal static class WorkerFrames
{
    /// <summary>The most a peer sends a worker in one frame (the worker's own guard against a corrupt prefix).</summary>
    public const int MaxFrameBytes = 512 * 1024 * 1024;

    /// <summary>Workers cut error messages to this many characters; the peer refuses longer ones.</summary>
    public const int MaxErrorChars = 4096;

    /// <summary>Room for a response header's fixed parts: property names, the sequence, the kind.</summary>
    public const int HeaderSlackBytes = 1024;

    /// <summary>
    /// Room for the note a worker appends to output it truncated ("[output truncated at N bytes]").
    /// </summary>
    public const int OutputNoteBytes = 64;

    /// <summary>The most one character can cost in a JSON string (<c>\u00XX</c>; a surrogate pair is 12 bytes for 2 chars).</summary>
    public const int JsonEscapeFactor = 6;

    // Reads grow their buffer as bytes actually arrive, so a large claimed length costs nothing until sent.
    private const int FirstChunkBytes = 64 * 1024;

    /// <param name="json">Where the header's serializer comes from: another protocol on the same frames brings its own; default the worker's.</param>
    public static async Task WriteAsync<T>(Stream stream, T header, ReadOnlyMemory<byte> body, CancellationToken cancellationToken, JsonSerializerContext? json = null)
    {
        var headerBytes = JsonSerializer.SerializeToUtf8Bytes(header, typeof(T), json ?? WorkerProtocolJson.Default);
        // One write, so one system call and one wake-up of the reader per frame (three before), from a
        // pooled buffer: a trivial task's frames must cost microseconds.
        var length = checked(8 + headerBytes.Length + body.Length);
        var buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            BinaryPrimitives.WriteInt32LittleEndian(buffer, length - 4);
            BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(4), headerBytes.Length);
            headerBytes.CopyTo(buffer.AsSpan(8));
            body.Span.CopyTo(buffer.AsSpan(8 + headerBytes.Length));
            await stream.WriteAsync(buffer.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Reads one frame within <paramref name="limit"/>; null at a clean end of stream (the other side
    /// closed the pipe between frames).
    /// </summary>
    /// <exception cref="WorkerProtocolException">The frame is over the limit, truncated or malformed.</exception>
    public static async Task<WorkerFrame<T>?> ReadAsync<T>(Stream stream, FrameLimit limit, CancellationToken cancellationToken, JsonSerializerContext? json = null)
        where T : class
    {
        var prefix = new byte[4];
        var got = await stream.ReadAtLeastAsync(prefix, 4, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        if (got == 0) return null;
        if (got < 4) throw new WorkerProtocolException("the pipe closed inside a frame");
        return await ReadAfterPrefixAsync<T>(stream, BinaryPrimitives.ReadInt32LittleEndian(prefix), limit, cancellationToken, json).ConfigureAwait(false);
    }

    /// <summary>Reads the rest of a frame whose length prefix was already read (by a reader that had to see it first to pick the limit).</summary>
    public static async Task<WorkerFrame<T>> ReadAfterPrefixAsync<T>(Stream stream, int length, FrameLimit limit, CancellationToken cancellationToken,
        JsonSerializerContext? json = null)
        where T : class
    {
        if (length < 4) throw new WorkerProtocolException($"frame length {length}");
        if (length > limit.MaxPayloadBytes) throw new WorkerProtocolException($"a frame of {length} bytes; the limit for it is {limit.MaxPayloadBytes}");
        var headerLengthBytes = await ReadExactAsync(stream, 4, cancellationToken).ConfigureAwait(false);
        var headerLength = BinaryPrimitives.ReadInt32LittleEndian(headerLengthBytes);
        if (headerLength < 2 || headerLength > length - 4) throw new WorkerProtocolException($"header length {headerLength} in a frame of {length} bytes");
        if (headerLength > limit.MaxHeaderBytes) throw new WorkerProtocolException($"a header of {headerLength} bytes; the limit for it is {limit.MaxHeaderBytes}");
        var bodyLength = length - 4 - headerLength;
        if (bodyLength > limit.MaxBodyBytes) throw new WorkerProtocolException($"a body of {bodyLength} bytes; the limit for it is {limit.MaxBodyBytes}");

        var headerBytes = await ReadExactAsync(stream, headerLength, cancellationToken).ConfigureAwait(false);
        T? header;
        try
        {
            header = (T?)JsonSerializer.Deserialize(headerBytes, typeof(T), json ?? WorkerProtocolJson.Default);
        }
        catch (JsonException e)
        {
            throw new WorkerProtocolException($"the header is not a valid {typeof(T).Name}: {Shorten(e.Message)}");
        }

        if (header is null) throw new WorkerProtocolException("the header is null");
        var body = bodyLength == 0 ? [] : await ReadExactAsync(stream, bodyLength, cancellationToken).ConfigureAwait(false);
        return new WorkerFrame<T>(header, body);
    }

    // In chunks: the buffer never gets ahead of what the other side has really written.
    private static async Task<byte[]> ReadExactAsync(Stream stream, int count, CancellationToken cancellationToken)
    {
        var buffer = new byte[Math.Min(count, FirstChunkBytes)];
        var filled = 0;
        while (true)
        {
            var got = await stream.ReadAtLeastAsync(buffer.AsMemory(filled), buffer.Length - filled, throwOnEndOfStream: false, cancellationToken)
                .ConfigureAwait(false);
            filled += got;
            if (filled < buffer.Length) throw new WorkerProtocolException("the pipe closed inside a frame");
            if (filled == count) return buffer;
            Array.Resize(ref buffer, (int)Math.Min(count, (long)buffer.Length * 2));
        }
    }

    private static string Shorten(string text) => text.Length <= 200 ? text : text[..200];
}

/// <summary>What one frame may hold; checked against the length prefix before anything is allocated.</summary>
internal readonly record struct FrameLimit(int MaxHeaderBytes, int MaxBodyBytes)
{
    /// <summary>A hello is a process id: a small header and no body.</summary>
    public static readonly FrameLimit Hello = new(256, 0);

    /// <summary>What the worker accepts from its peer.</summary>
    public static readonly FrameLimit Request = new(WorkerFrames.MaxFrameBytes / 2, WorkerFrames.MaxFrameBytes / 2);

    public long MaxPayloadBytes => 4L + MaxHeaderBytes + MaxBodyBytes;

    /// <summary>
    /// The most a response to a request with these caps can legitimately take: the output and the
    /// error travel JSON-escaped in the header, the result raw in the body.
    /// </summary>
    public static FrameLimit Response(int maxResultBytes, int maxOutputBytes)
    {
        var header = WorkerFrames.HeaderSlackBytes
            + (long)WorkerFrames.JsonEscapeFactor * (WorkerFrames.MaxErrorChars + (long)Math.Max(0, maxOutputBytes) + WorkerFrames.OutputNoteBytes);
        return new((int)Math.Min(header, int.MaxValue / 2), Math.Clamp(maxResultBytes, 0, int.MaxValue / 2));
    }
}

/// <summary>One frame read: its header and its raw body.</summary>
internal sealed record WorkerFrame<T>(T Header, byte[] Body);

/// <summary>The other side of the pipe broke the protocol; the message says how, for the task's error.</summary>
internal sealed class WorkerProtocolException(string violation) : Exception(violation)
{
    public string Violation { get; } = violation;
}

/// <summary>The worker's first frame: it is up and reading requests.</summary>
internal sealed record WorkerHello(int ProcessId);

/// <summary>A run request; the frame body is the assembly, or empty if the worker already loaded <see cref="Hash"/>.</summary>
/// <param name="Sequence">Unique per request to a worker; its response must echo it.</param>
internal sealed record WorkerRequestHeader(long Sequence, string Hash, string Function, string ArgsJson, int MaxResultBytes, int MaxOutputBytes);

/// <summary>
/// A run's outcome; the frame body is the result JSON when <see cref="Kind"/> is None, else empty.
/// <see cref="Kind"/> uses the numeric values of <c>TaskErrorKind</c>, limited to <see cref="WorkerOutcome"/>'s.
/// </summary>
/// <param name="Sequence">The request's <see cref="WorkerRequestHeader.Sequence"/>.</param>
internal sealed record WorkerResponseHeader(long Sequence, int Kind, string? Error, string Output);

/// <summary>
/// Outcomes a worker reports itself; values equal <c>TaskErrorKind</c>'s (a test checks). Kinds that
/// only the peer can know (TimedOut, Cancelled, PeerLost, Unschedulable) are never a worker's to say.
/// </summary>
internal static class WorkerOutcome
{
    public const int None = 0;
    public const int CompileError = 1;
    public const int NotAllowed = 2;
    public const int InvalidArguments = 3;
    public const int Exception = 4;
    public const int OutOfMemory = 6;
    // The worker says it is confused (a program it was never sent, a fault of its own): the peer retires it.
    public const int Crashed = 7;
    public const int ResultTooLarge = 8;
}

// Strict: a header with an unknown, missing or repeated property is not a header the other side wrote.
[JsonSourceGenerationOptions(
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    RespectRequiredConstructorParameters = true,
    RespectNullableAnnotations = true,
    AllowDuplicateProperties = false)]
[JsonSerializable(typeof(WorkerHello))]
[JsonSerializable(typeof(WorkerRequestHeader))]
[JsonSerializable(typeof(WorkerResponseHeader))]
internal sealed partial class WorkerProtocolJson : JsonSerializerContext;
