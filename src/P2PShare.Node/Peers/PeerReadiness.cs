using System.Diagnostics;
using P2PShare.Compute;
using P2PShare.Tracker;

namespace P2PShare.Peers;

/// <summary>What a readiness probe learns; <see cref="Reason"/> names the first check that failed.</summary>
/// <param name="SiloStatus">This silo's status in the cluster's membership (active, joining, shutting down...).</param>
/// <param name="TrackerHost">The peer hosting the tracker, when it answered.</param>
/// <param name="TrackerMs">How long the tracker took to answer.</param>
public sealed record ReadinessReport(
    bool Ready,
    string Peer,
    string SiloStatus,
    bool Registered,
    bool TrackerReachable,
    string? TrackerHost,
    double? TrackerMs,
    bool WorkersHealthy,
    string? Reason);

/// <summary>
/// Whether this peer can do its share now: its silo is an active cluster member and registered with
/// the tracker, the tracker answers within <see cref="TrackerTimeout"/>, and its worker pool can take
/// tasks. Backs <c>/readyz</c>; a peer that is not ready should get no traffic from a load balancer.
/// </summary>
public sealed class PeerReadiness(
    ILocalSiloDetails silo,
    IClusterMembershipService membership,
    IGrainFactory grains,
    ComputeScheduler scheduler,
    Tracker.LoadReporter reporter,
    TimeProvider time)
{
    public static readonly TimeSpan TrackerTimeout = TimeSpan.FromSeconds(2);

    public async Task<ReadinessReport> CheckAsync(CancellationToken cancellationToken)
    {
        var status = membership.CurrentSnapshot.GetSiloStatus(silo.SiloAddress);
        var registered = reporter.Registered.IsCompletedSuccessfully;
        var workersHealthy = scheduler.CanAccept;
        var reasons = new List<string>();
        if (status != SiloStatus.Active) reasons.Add($"this peer's silo is {Describe(status)}, not an active cluster member");
        else if (!registered) reasons.Add("this peer has not registered with the tracker yet");

        string? trackerHost = null;
        double? trackerMs = null;
        if (status == SiloStatus.Active)
        {
            var started = Stopwatch.GetTimestamp();
            try
            {
                trackerHost = await grains.GetTracker().GetHostAsync().WaitAsync(TrackerTimeout, time, cancellationToken).ConfigureAwait(false);
                trackerMs = Math.Round(Stopwatch.GetElapsedTime(started).TotalMilliseconds, 1);
            }
            catch (TimeoutException)
            {
                reasons.Add($"the tracker did not answer within {TrackerTimeout.TotalSeconds:0} s");
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                reasons.Add($"the tracker is unreachable: {FirstLine(ex.Message)}");
            }
        }
        else
        {
            reasons.Add("the tracker was not asked");
        }

        // A peer refusing tasks because it cannot build the sandbox says so, with what is missing.
        if (!workersHealthy) reasons.Add(scheduler.UnavailableReason ?? "the worker pool cannot take tasks");
        return new ReadinessReport(
            reasons.Count == 0, silo.Name, Describe(status), registered, trackerHost is not null, trackerHost, trackerMs,
            workersHealthy, reasons.Count == 0 ? null : reasons[0]);
    }

    private static string Describe(SiloStatus status) => status switch
    {
        SiloStatus.None => "not yet known",
        SiloStatus.ShuttingDown => "shutting down",
        _ => status.ToString().ToLowerInvariant(),
    };

    private static string FirstLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? text;
}
