using P2PShare.Connecting;

namespace P2PShare.Benchmarks;

/// <summary>What p2pshare-bench runs and how big; every size has a full and a --quick default.</summary>
internal sealed record BenchOptions
{
    public static readonly string[] All = ["compile", "file", "tasks", "balance", "fairness", "mem", "redis", "legacy"];

    public const int DefaultTasks = 3000;
    public const int QuickTasks = 200;
    public const int DefaultSubmitters = 16;
    public const int QuickSubmitters = 4;
    public const double DefaultMemSeconds = 5;
    public const double QuickMemSeconds = 1;
    public const int DefaultFileMiB = 1024;
    public const int QuickFileMiB = 16;
    public const string DefaultTimeSlicing = "on";

    /// <summary>The local cluster's three gateways, as deploy/local/cluster.sh starts them.</summary>
    public static IReadOnlyList<HostPort> DefaultGateways { get; } =
        [.. Enumerable.Range(0, 3).Select(k => new HostPort("127.0.0.1", 30000 + k))];

    public List<HostPort> Gateways { get; init; } = [];
    public List<string> Scenarios { get; init; } = [.. All];
    public bool Quick { get; init; }
    public int Tasks { get; init; } = DefaultTasks;
    public int Submitters { get; init; } = DefaultSubmitters;
    public double MemSeconds { get; init; } = DefaultMemSeconds;
    public int FileMiB { get; init; } = DefaultFileMiB;
    public string TimeSlicing { get; init; } = DefaultTimeSlicing;
    public int? RedisPort { get; init; }
    public int? RedisPid { get; init; }
    public int? RespPort { get; init; }
    public string? Cli { get; init; }
    public string? PidDir { get; init; }
    public string? Legacy { get; init; }
}
