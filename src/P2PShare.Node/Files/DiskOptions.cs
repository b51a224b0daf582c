using System.ComponentModel.DataAnnotations;
using P2PShare.Configuration;

namespace P2PShare.Files;

/// <summary>Per-peer disk sharing limits. Section <c>Disk</c>.</summary>
public sealed class DiskOptions
{
    public const string Section = "Disk";
    public const long DefaultQuotaBytes = 10 * Bytes.GiB;
    public const long DefaultMaxFileBytes = 4 * Bytes.GiB;
    public const int DefaultChunkBytes = (int)Bytes.MiB;
    public const int MinChunkBytes = 4096;
    public const int MaxChunkBytes = 16 * 1024 * 1024;
    public static readonly TimeSpan DefaultSessionIdleTimeout = TimeSpan.FromMinutes(5);

    /// <summary>Total bytes of stored files plus uploads in progress.</summary>
    [Positive(ErrorMessage = "Disk:QuotaBytes must be positive")]
    public long QuotaBytes { get; set; } = DefaultQuotaBytes;

    /// <summary>Largest single file.</summary>
    [Positive(ErrorMessage = "Disk:MaxFileBytes must be positive")]
    public long MaxFileBytes { get; set; } = DefaultMaxFileBytes;

    /// <summary>Largest chunk a client may send or ask for in one call.</summary>
    [Range(MinChunkBytes, MaxChunkBytes, ErrorMessage = "Disk:ChunkBytes must be 4096..16777216")]
    public int ChunkBytes { get; set; } = DefaultChunkBytes;

    /// <summary>An upload or download with no call for this long is dropped and its temp space freed.</summary>
    [Positive(ErrorMessage = "Disk:SessionIdleTimeout must be positive")]
    public TimeSpan SessionIdleTimeout { get; set; } = DefaultSessionIdleTimeout;
}
