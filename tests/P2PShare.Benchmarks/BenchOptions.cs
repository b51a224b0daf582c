using P2PShare.Connecting;

namespace P2PShare.Benchmarks;

/// <summary>What p2pshare-bench runs and how big; every size has a full and a --quick default.</summary>
internal sealed record BenchOptions
{
    public static readonly string[] All = ["compile", "file", "tasks", "batch", "open", "balance", "fairness", "mem", "redis", "legacy"];

    /// <summary>The tasks scenario's variants: routed C# at every submitter count, the others at the first.</summary>
    public static readonly string[] AllVariants = ["routed", "confidential", "python"];

    public const int DefaultTasks = 3000;
    public const int QuickTasks = 200;
    public static readonly int[] DefaultSubmitters = [16, 64];
    public static readonly int[] QuickSubmitters = [4];
    public const double DefaultTasksSeconds = 90;
    public const double QuickTasksSeconds = 60;
    public const double DefaultOpenRate = 5000;
    public const double QuickOpenRate = 50;
    public const double DefaultOpenSeconds = 5;
    public const double QuickOpenSeconds = 1;
    public const int DefaultBatchSize = 10_000;
    public const int QuickBatchSize = 500;
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
    public int[] Submitters { get; init; } = DefaultSubmitters;
    public List<string> Variants { get; init; } = [.. AllVariants];
    /// <summary>No new task of a tasks run starts after this many seconds (profile.sh raises it to outlast its traces).</summary>
    public double TasksSeconds { get; init; } = DefaultTasksSeconds;
    public double OpenRate { get; init; } = DefaultOpenRate;
    public double OpenSeconds { get; init; } = DefaultOpenSeconds;
    public int BatchSize { get; init; } = DefaultBatchSize;
    public double MemSeconds { get; init; } = DefaultMemSeconds;
    public int FileMiB { get; init; } = DefaultFileMiB;
    public string TimeSlicing { get; init; } = DefaultTimeSlicing;
    public int? RedisPort { get; init; }
    public int? RedisPid { get; init; }
    public int? RespPort { get; init; }
    public string? Cli { get; init; }
    public string? PidDir { get; init; }
    /// <summary>The original system's peer port: the legacy scenario also runs against it and prints the ratio.</summary>
    public string? Legacy { get; init; }
}
