using P2PShare.Compute;
using P2PShare.Peers;
using P2PShare.Tracker;

namespace P2PShare.Status;

/// <summary>
/// Reads a <see cref="ClusterStatus"/>: the tracker's peers, then each live peer's recent jobs in
/// parallel. Every call has a deadline, so a dead or stuck peer costs one timeout, never a hang;
/// its jobs are left out and it is named in <see cref="ClusterStatus.PeersWithoutJobs"/>.
/// </summary>
public sealed class ClusterStatusReader(IGrainFactory grains, TimeProvider time)
{
    /// <summary>How long the tracker may take to list the peers.</summary>
    public static readonly TimeSpan TrackerTimeout = TimeSpan.FromSeconds(2);

    /// <summary>How long one peer may take to list its jobs.</summary>
    public static readonly TimeSpan PeerTimeout = TimeSpan.FromMilliseconds(1500);

    /// <param name="jobs">Most job attempts to return, cluster-wide (newest first).</param>
    /// <exception cref="TimeoutException">The tracker did not answer within <see cref="TrackerTimeout"/>.</exception>
    public async Task<ClusterStatus> ReadAsync(int jobs, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(jobs);
        var statuses = await grains.GetTracker().GetPeersAsync().WaitAsync(TrackerTimeout, time, cancellationToken).ConfigureAwait(false);
        var generated = time.GetUtcNow().UtcDateTime;
        var peers = PeerView.FromAll(statuses);
        var lists = jobs == 0
            ? peers.Select(_ => (JobListing?)new JobListing([])).ToArray()
            : await Task.WhenAll(peers.Select(p => ListJobsAsync(p.Name, jobs, cancellationToken))).ConfigureAwait(false);
        var rows = lists
            .Where(l => l is not null)
            .SelectMany(l => l!.Jobs)
            .OrderByDescending(j => j.SubmittedUtc)
            .ThenBy(j => j.JobId, StringComparer.Ordinal)
            .Take(jobs)
            .Select(JobRow.From)
            .ToList();
        var silent = peers.Where((_, i) => lists[i] is null).Select(p => p.Name).ToList();
        return new ClusterStatus(generated, ClusterSummary.Of(peers), peers, rows, silent);
    }

    private async Task<JobListing?> ListJobsAsync(string peer, int limit, CancellationToken cancellationToken)
    {
        try
        {
            return await grains.GetGrain<IPeerGrain>(peer).ListJobsAsync(limit).WaitAsync(PeerTimeout, time, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Dead, cut off, or too slow: the page shows the others and names this one.
            return null;
        }
    }
}
