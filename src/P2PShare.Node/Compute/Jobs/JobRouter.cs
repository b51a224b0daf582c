using P2PShare.Peers;
using P2PShare.Telemetry;
using P2PShare.Tracker;

namespace P2PShare.Compute;

/// <summary>
/// Where a job's next attempt runs, and sending it there. A confidential task goes to its origin and
/// a pinned one to its peer; any other to the tracker's least-loaded pick, skipping peers that
/// refuse it (busy, stopping) or already lost an attempt of it. On the first attempt every failure
/// goes to the submitter; on a retry an empty cluster is waited out for <see cref="NoPeerPatience"/>.
/// </summary>
/// <remarks>
/// Owned by the job's grain and awaited in its turns: its awaits keep the grain's context (Orleans'
/// ORLEANS0014 rule), so the job's record is never touched from another thread.
/// </remarks>
internal sealed class JobRouter(IGrainFactory grains, P2PShareMetrics metrics, TimeProvider time, ILogger logger)
{
    /// <summary>How long a retry keeps looking for a live peer before the job ends PeerLost.</summary>
    public static readonly TimeSpan NoPeerPatience = TimeSpan.FromSeconds(30);

    /// <summary>How often a retry asks the tracker again while no peer can take the task.</summary>
    private static readonly TimeSpan EmptyClusterRecheck = TimeSpan.FromSeconds(1);

    /// <summary>Sends the job's next attempt and adds it to the record; false when, on a retry, no live peer took it.</summary>
    public async Task<bool> SendNextAsync(SupervisedJob job, bool firstAttempt)
    {
        var spec = job.FullSpec ?? throw new InvalidOperationException("the task is not known here");
        var number = job.State.Attempts.Count + 1;
        // Peers that lost an earlier attempt are skipped unless nobody else can take it.
        var lostOn = job.State.Attempts.Where(a => a.Status == JobStatus.PeerLost).Select(a => a.Peer);
        if (await SendAsync(new JobAssignment(job.JobId, number, job.State.Origin, spec), lostOn, firstAttempt) is not { } sent) return false;
        job.Add(number, sent.Peer, sent.Info);
        if (number > 1) JobLog.LogRetried(logger, job.JobId, number, sent.Peer);
        return true;
    }

    /// <returns>The peer that took the attempt and its first record of it; null when, on a retry, no live peer took it.</returns>
    private async Task<(string Peer, JobInfo Info)?> SendAsync(JobAssignment assignment, IEnumerable<string> lostOn, bool firstAttempt)
    {
        var spec = assignment.Spec;
        if ((spec.Confidential ? assignment.Origin : spec.PinnedPeer) is { } fixedPeer)
        {
            try
            {
                var info = await ExecuteAsync(fixedPeer, assignment);
                metrics.Routed(spec.Confidential ? RoutingOutcome.Origin : RoutingOutcome.Pinned);
                return (fixedPeer, info);
            }
            catch (PeerUnavailableException) when (!firstAttempt)
            {
                return null;
            }
        }

        var tracker = grains.GetTracker();
        var skipped = new List<string>(lostOn);
        var giveUpAt = time.GetUtcNow() + NoPeerPatience;
        while (true)
        {
            string pick;
            try
            {
                pick = await PickAsync(tracker, new PickRequest([.. skipped], spec.Language));
            }
            catch (NoPeersAvailableException) when (!firstAttempt && time.GetUtcNow() < giveUpAt)
            {
                // Peers that were skipped may be back (restarted) by now; so may the tracker's view.
                skipped.Clear();
                await Task.Delay(EmptyClusterRecheck, time);
                continue;
            }
            catch (NoPeersAvailableException) when (!firstAttempt)
            {
                return null;
            }

            try
            {
                var info = await ExecuteAsync(pick, assignment);
                metrics.Routed(RoutingOutcome.LeastLoaded);
                return (pick, info);
            }
            catch (PeerUnavailableException ex)
            {
                metrics.Routed(RoutingOutcome.PeerRefused);
                JobLog.LogSkipped(logger, assignment.JobId, pick, ex.Message);
                skipped.Add(pick);
            }
        }
    }

    private async Task<string> PickAsync(ITrackerGrain tracker, PickRequest request)
    {
        try
        {
            return await tracker.PickPeerAsync(request);
        }
        catch (NoPeersAvailableException)
        {
            metrics.Routed(RoutingOutcome.NoPeer);
            throw;
        }
    }

    private Task<JobInfo> ExecuteAsync(string peer, JobAssignment assignment) =>
        PeerCall.RunAsync(peer, () => grains.GetGrain<IPeerGrain>(peer).ExecuteAsync(assignment));
}
