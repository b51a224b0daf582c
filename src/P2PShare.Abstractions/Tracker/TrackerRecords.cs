using System.Collections.Immutable;

namespace P2PShare.Tracker;

/// <summary>
/// What a peer tells the tracker about itself, on a timer and whenever its load changes.
/// Every report is complete, so a freshly activated tracker is whole after one round of reports.
/// <see cref="TasksAccepted"/> counts every task the peer ever took in; its growth between two
/// reports tells the tracker how many of its reservations have become visible as queued or running work.
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
    [property: Id(15)] long Sequence,
    [property: Id(16)] long TasksAccepted)
{
    /// <summary>Task languages this peer can run (<see cref="Compute.TaskLanguages"/>); C# always, Python when python3 is there.</summary>
    [Id(17)]
    public ImmutableArray<string> Runtimes { get; init; } = [Compute.TaskLanguages.CSharp];

    /// <summary>
    /// Listeners the peer runs besides Orleans (protocol gateways), by name → <c>ip:port</c>; empty
    /// when it runs none. Gateways add theirs (<c>IPeerEndpointSource</c>); the engine does not know their names.
    /// </summary>
    // Id 18 held a string field this map replaced; not reused, so peers of mixed versions cannot misread it.
    [Id(19)]
    public ImmutableDictionary<string, string> Endpoints { get; init; } = ImmutableDictionary<string, string>.Empty;

    /// <summary>
    /// How this peer walls off tasks: "kernel", "unsandboxed" (Compute:Isolation=none) or
    /// "refusing tasks: WHY" (it cannot build the wall and runs no tasks); null from older peers.
    /// </summary>
    [Id(20)]
    public string? Sandbox { get; init; }

    public bool CanRun(string language) => Runtimes.Contains(language);

    /// <summary>Work per slot: (running + queued) / slots, as the peer itself sees it.</summary>
    public double CpuLoad => Slots <= 0 ? 0 : (double)(RunningTasks + QueuedTasks) / Slots;
}

/// <summary>One row of the tracker's registry.</summary>
/// <param name="Reservations">
/// Tasks the tracker assigned to this peer that the peer has not yet acknowledged in a report
/// (through <see cref="LoadReport.TasksAccepted"/>).
/// </param>
[GenerateSerializer, Immutable]
public sealed record PeerStatus(
    [property: Id(0)] LoadReport Report,
    [property: Id(1)] DateTime LastReportUtc,
    [property: Id(2)] DateTime RegisteredUtc,
    [property: Id(3)] int Reservations)
{
    public string Name => Report.Peer;

    /// <summary>
    /// The load the tracker routes by: the peer's reported work plus the tasks assigned to it that
    /// its reports do not show yet, so a burst of picks spreads instead of herding onto one stale minimum.
    /// </summary>
    public double EffectiveLoad => Report.Slots <= 0
        ? 0
        : (double)(Report.RunningTasks + Report.QueuedTasks + Reservations) / Report.Slots;
}

/// <summary>What a caller needs from the peer the tracker picks.</summary>
/// <param name="Exclude">Peers not to pick (they already failed this task).</param>
/// <param name="Language">Only peers that advertise this runtime; null means any peer.</param>
[GenerateSerializer, Immutable]
public sealed record PickRequest(
    [property: Id(0)] ImmutableArray<string> Exclude,
    [property: Id(1)] string? Language = null)
{
    public static PickRequest Any { get; } = new(ImmutableArray<string>.Empty);
}
