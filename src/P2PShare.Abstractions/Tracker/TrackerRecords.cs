using System.Collections.Immutable;

namespace P2PShare.Tracker;

/// <summary>
/// What a peer tells the tracker about itself, on a timer and whenever its load changes.
/// Every report is complete, so a freshly activated tracker is whole after one round of reports.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record LoadReport(
    [property: Id(0)] string Peer,
    [property: Id(1)] SiloAddress Silo,
    [property: Id(2)] string Gateway,
    [property: Id(3)] int Slots,
    [property: Id(4)] int RunningTasks,
    [property: Id(5)] int QueuedTasks,
    [property: Id(6)] long MemoryUsed,
    [property: Id(7)] long MemoryQuota,
    [property: Id(8)] long MemoryKeys,
    [property: Id(9)] long DiskUsed,
    [property: Id(10)] long DiskQuota,
    [property: Id(11)] long DiskFiles,
    [property: Id(12)] TimeSpan ReportInterval,
    [property: Id(13)] DateTime StartedUtc,
    [property: Id(14)] DateTime SentUtc,
    [property: Id(15)] long Sequence)
{
    /// <summary>Work per slot: (running + queued) / slots, as the peer itself sees it.</summary>
    public double CpuLoad => Slots <= 0 ? 0 : (double)(RunningTasks + QueuedTasks) / Slots;
}

/// <summary>One row of the tracker's registry.</summary>
[GenerateSerializer, Immutable]
public sealed record PeerStatus(
    [property: Id(0)] LoadReport Report,
    [property: Id(1)] DateTime LastReportUtc,
    [property: Id(2)] DateTime RegisteredUtc,
    [property: Id(3)] int AssignedSinceReport)
{
    public string Name => Report.Peer;

    /// <summary>
    /// The load the tracker routes by: the peer's reported work plus the tasks the tracker sent it
    /// since that report, so a burst of picks spreads instead of herding onto one stale minimum.
    /// </summary>
    public double EffectiveLoad => Report.Slots <= 0
        ? 0
        : (double)(Report.RunningTasks + Report.QueuedTasks + AssignedSinceReport) / Report.Slots;
}

/// <summary>What a caller needs from the peer the tracker picks.</summary>
[GenerateSerializer, Immutable]
public sealed record PickRequest(
    [property: Id(0)] ImmutableArray<string> Exclude)
{
    public static PickRequest Any { get; } = new(ImmutableArray<string>.Empty);
}
