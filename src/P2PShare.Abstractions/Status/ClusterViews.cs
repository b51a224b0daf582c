using System.Collections.Immutable;
using P2PShare.Compute;
using P2PShare.Tracker;

namespace P2PShare.Status;

/// <summary>
/// One peer as the tracker sees it, flattened for scripts and pages: a row of <c>p2pshare peers --json</c>,
/// of <c>GET /api/status</c> and of <c>p2pshare watch</c>, so all three show the same numbers.
/// </summary>
/// <param name="Endpoints">
/// Listeners the peer runs besides its gateway, by name → <c>ip:port</c> (see
/// <see cref="LoadReport.Endpoints"/>); empty when none. Gateways name their own entries.
/// </param>
public sealed record PeerView(
    string Name,
    string Gateway,
    string Silo,
    double CpuLoad,
    int Slots,
    int RunningTasks,
    int QueuedTasks,
    long MemoryUsed,
    long MemoryQuota,
    long MemoryKeys,
    long DiskUsed,
    long DiskQuota,
    long DiskFiles,
    DateTime StartedUtc,
    DateTime LastReportUtc,
    IReadOnlyList<string> Runtimes,
    IReadOnlyDictionary<string, string> Endpoints,
    string? Sandbox = null)
{
    public static PeerView From(PeerStatus s) => new(
        s.Name, s.Report.Gateway, s.Report.Silo?.ToString() ?? "", s.Report.CpuLoad,
        s.Report.Slots, s.Report.RunningTasks, s.Report.QueuedTasks,
        s.Report.MemoryUsed, s.Report.MemoryQuota, s.Report.MemoryKeys,
        s.Report.DiskUsed, s.Report.DiskQuota, s.Report.DiskFiles,
        s.Report.StartedUtc, s.LastReportUtc,
        s.Report.Runtimes.IsDefault ? [] : [.. s.Report.Runtimes],
        // Null in a report from a peer that predates the field.
        s.Report.Endpoints ?? ImmutableDictionary<string, string>.Empty,
        s.Report.Sandbox);

    /// <summary>The tracker's peers in name order; an empty list when it knows none.</summary>
    public static IReadOnlyList<PeerView> FromAll(ImmutableArray<PeerStatus> statuses) =>
        statuses.IsDefault ? [] : statuses.Select(From).OrderBy(p => p.Name, StringComparer.Ordinal).ToList();
}

/// <summary>Totals over the live peers.</summary>
public sealed record ClusterSummary(
    int Peers,
    long MemoryUsed,
    long MemoryQuota,
    long DiskUsed,
    long DiskQuota,
    int RunningTasks,
    int QueuedTasks,
    int Slots)
{
    public static ClusterSummary Of(IReadOnlyList<PeerView> peers) => new(
        peers.Count,
        peers.Sum(p => p.MemoryUsed),
        peers.Sum(p => p.MemoryQuota),
        peers.Sum(p => p.DiskUsed),
        peers.Sum(p => p.DiskQuota),
        peers.Sum(p => p.RunningTasks),
        peers.Sum(p => p.QueuedTasks),
        peers.Sum(p => p.Slots));
}

/// <summary>
/// One attempt of a job as a status view lists it: where and how it ran, without its program,
/// arguments, result or output (a page is no place for them, and they can be large).
/// </summary>
public sealed record JobRow(
    string JobId,
    int Attempt,
    string Status,
    string ExecutedBy,
    string Origin,
    string Submitter,
    bool Confidential,
    string? Function,
    DateTime SubmittedUtc,
    DateTime? StartedUtc,
    DateTime? FinishedUtc,
    double QueueMs,
    double RunMs,
    string? ErrorKind,
    string? Error)
{
    /// <summary>Longest error text kept; the whole message stays available through <c>job get</c>.</summary>
    public const int MaxErrorChars = 200;

    public static JobRow From(JobInfo j) => new(
        j.JobId, j.Attempt, j.Status.ToString(), j.ExecutedBy, j.Origin, j.Submitter, j.Confidential, j.Function,
        j.SubmittedUtc, j.StartedUtc, j.FinishedUtc, Math.Round(j.QueueMs, 1), Math.Round(j.RunMs, 1),
        j.ErrorKind == TaskErrorKind.None ? null : j.ErrorKind.ToString(), Shorten(j.Error));

    private static string? Shorten(string? error)
    {
        if (error is null) return null;
        var line = error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "";
        return line.Length <= MaxErrorChars ? line : line[..(MaxErrorChars - 1)] + "…";
    }
}

/// <summary>
/// The whole cluster at one moment: what <c>GET /api/status</c> returns and <c>p2pshare watch</c> shows.
/// </summary>
/// <param name="GeneratedUtc">When it was read; ages (e.g. of a peer's last report) are relative to it.</param>
/// <param name="Peers">Exactly what <c>p2pshare peers --json</c> lists: the tracker's live peers.</param>
/// <param name="Jobs">The most recent job attempts of every live peer, newest first.</param>
/// <param name="PeersWithoutJobs">Live peers that did not list their jobs in time (their jobs are missing).</param>
public sealed record ClusterStatus(
    DateTime GeneratedUtc,
    ClusterSummary Cluster,
    IReadOnlyList<PeerView> Peers,
    IReadOnlyList<JobRow> Jobs,
    IReadOnlyList<string> PeersWithoutJobs);
