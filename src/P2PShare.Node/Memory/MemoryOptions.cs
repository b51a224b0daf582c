using System.ComponentModel.DataAnnotations;
using P2PShare.Configuration;

namespace P2PShare.Memory;

/// <summary>Per-peer memory sharing limits. Section <c>Memory</c>.</summary>
public sealed class MemoryOptions
{
    public const string Section = "Memory";
    public const long DefaultQuotaBytes = 256 * Bytes.MiB;
    public const int DefaultMaxKeyBytes = 512;
    public const int MaxKeyBytesLimit = 64 * 1024;
    public const long DefaultMaxValueBytes = 16 * Bytes.MiB;

    /// <summary>A value travels in one grain call, so it must fit one Orleans message.</summary>
    public const long MaxValueBytesLimit = 64 * Bytes.MiB;

    public static readonly TimeSpan DefaultExpirySweepInterval = TimeSpan.FromSeconds(1);

    /// <summary>Total bytes of keys (UTF-8) plus values the peer stores. A write past it fails.</summary>
    [Positive(ErrorMessage = "Memory:QuotaBytes must be positive")]
    public long QuotaBytes { get; set; } = DefaultQuotaBytes;

    /// <summary>Longest key, in UTF-8 bytes.</summary>
    [Range(1, MaxKeyBytesLimit, ErrorMessage = "Memory:MaxKeyBytes must be 1..65536")]
    public int MaxKeyBytes { get; set; } = DefaultMaxKeyBytes;

    /// <summary>Largest single value.</summary>
    [Positive(ErrorMessage = "Memory:MaxValueBytes must be positive")]
    [Range(long.MinValue, MaxValueBytesLimit, ErrorMessage = "Memory:MaxValueBytes must be at most 64 MiB (one message)")]
    public long MaxValueBytes { get; set; } = DefaultMaxValueBytes;

    /// <summary>How often expired keys are swept so their bytes return to the quota.</summary>
    [Positive(ErrorMessage = "Memory:ExpirySweepInterval must be positive")]
    public TimeSpan ExpirySweepInterval { get; set; } = DefaultExpirySweepInterval;
}
