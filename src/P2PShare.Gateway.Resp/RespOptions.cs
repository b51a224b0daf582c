using System.ComponentModel.DataAnnotations;
using P2PShare.Configuration;

namespace P2PShare.Resp;

/// <summary>
/// The Redis-protocol endpoint: RESP2 over TCP, serving this peer's memory store. Off unless a port
/// is set. The limits bound what one client can make the peer hold or do; each has a default that
/// fits the memory store's own limits.
/// </summary>
public sealed class RespOptions : IValidatableObject
{
    public const string Section = "Resp";
    public const string DefaultAddress = "127.0.0.1";
    public const int DefaultMaxConnections = 1024;
    public const int DefaultMaxArguments = 65_536;
    public const long DefaultMaxRequestBytes = 64 * Bytes.MiB;
    public const int DefaultMaxInlineBytes = 64 * 1024;
    public const long DefaultMaxBufferedBytes = 512 * Bytes.MiB;
    public const int DefaultOutputBufferBytes = 64 * 1024;
    public static readonly TimeSpan DefaultIdleTimeout = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan DefaultRequestTimeout = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan DefaultWriteTimeout = TimeSpan.FromSeconds(30);

    /// <summary>TCP port of the endpoint (Redis' own is 6379); null: no endpoint. 0 picks a free port (tests).</summary>
    [Port(AllowZero = true, ErrorMessage = "Resp:Port (--resp-port) must be 1..65535, not {0}")]
    public int? Port { get; set; }

    /// <summary>
    /// Address the endpoint binds to. Loopback by default: the endpoint has no authentication, so
    /// anyone who reaches it can read and write this peer's memory.
    /// </summary>
    [IpAddress(ErrorMessage = "Resp:Address (--resp-bind) '{0}' is not an IP address")]
    public string Address { get; set; } = DefaultAddress;

    /// <summary>Connections served at once; one more is told <c>-ERR max number of clients reached</c> and closed.</summary>
    [Range(1, 1_000_000, ErrorMessage = "Resp:MaxConnections must be 1..1000000")]
    public int MaxConnections { get; set; } = DefaultMaxConnections;

    /// <summary>Most arguments (command name included) in one request; a longer array is a protocol error.</summary>
    [Range(2, 16 * 1024 * 1024, ErrorMessage = "Resp:MaxArguments must be 2..16777216")]
    public int MaxArguments { get; set; } = DefaultMaxArguments;

    /// <summary>
    /// Largest bulk string (one argument) in bytes; a larger declared length is refused before
    /// anything is read or allocated. Null: the memory store's largest value (<c>Memory:MaxValueBytes</c>)
    /// or longest key, whichever is larger.
    /// </summary>
    [Range(1L, long.MaxValue, ErrorMessage = "Resp:MaxBulkBytes must be positive")]
    public long? MaxBulkBytes { get; set; }

    /// <summary>Largest request (all its arguments and framing) in bytes; raised to fit one largest bulk string.</summary>
    [Range(1024L, int.MaxValue, ErrorMessage = "Resp:MaxRequestBytes must be 1024..2147483647")]
    public long MaxRequestBytes { get; set; } = DefaultMaxRequestBytes;

    /// <summary>Longest inline command (a plain text line such as <c>PING</c>, as telnet sends it).</summary>
    [Range(16, 1024 * 1024, ErrorMessage = "Resp:MaxInlineBytes must be 16..1048576")]
    public int MaxInlineBytes { get; set; } = DefaultMaxInlineBytes;

    /// <summary>
    /// Bytes of large requests (over 64 KiB) held at once over all connections, counted as they
    /// arrive. A request that would pass it is refused with an error and its connection closed.
    /// </summary>
    [Range(1024L * 1024, long.MaxValue, ErrorMessage = "Resp:MaxBufferedBytes must be at least 1 MiB")]
    public long MaxBufferedBytes { get; set; } = DefaultMaxBufferedBytes;

    /// <summary>
    /// Reply bytes a connection collects before it sends them and waits for the client to take them;
    /// until then it reads no more requests (a client that sends without reading is held back, not buffered).
    /// </summary>
    [Range(1024, 16 * 1024 * 1024, ErrorMessage = "Resp:OutputBufferBytes must be 1024..16777216")]
    public int OutputBufferBytes { get; set; } = DefaultOutputBufferBytes;

    /// <summary>How long a connection may sit between requests before it is closed.</summary>
    [TimeSpanAtLeast("00:00:00.100", ErrorMessage = "Resp:IdleTimeout must be at least 00:00:00.100")]
    public TimeSpan IdleTimeout { get; set; } = DefaultIdleTimeout;

    /// <summary>How long a request may take to arrive once its first byte has; then the connection is closed (slow senders).</summary>
    [TimeSpanAtLeast("00:00:00.100", ErrorMessage = "Resp:RequestTimeout must be at least 00:00:00.100")]
    public TimeSpan RequestTimeout { get; set; } = DefaultRequestTimeout;

    /// <summary>How long the client may leave replies untaken before the connection is closed (slow readers).</summary>
    [TimeSpanAtLeast("00:00:00.100", ErrorMessage = "Resp:WriteTimeout must be at least 00:00:00.100")]
    public TimeSpan WriteTimeout { get; set; } = DefaultWriteTimeout;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (MaxBulkBytes is { } bulk && bulk > MaxBufferedBytes)
            yield return new ValidationResult("Resp:MaxBulkBytes must be at most Resp:MaxBufferedBytes");
    }
}
