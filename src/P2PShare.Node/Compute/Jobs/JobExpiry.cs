namespace P2PShare.Compute;

/// <summary>
/// The end of a supervised job's record: a finished job expires after <see cref="ComputeOptions.JobRetention"/>
/// (or earlier when its peer keeps too many results, <see cref="RetainedJobs"/>), keeping only its
/// status and why it expired; one retention later it is forgotten and its id is unknown. A running
/// job never expires. Runs in the grain's turns, like the rest of the job.
/// </summary>
internal sealed class JobExpiry(SupervisedJob job, RetainedJobs retained, TimeSpan retention, ILogger logger, Action deactivate)
{
    private string JobId => job.JobId;

    /// <summary>Tells the per-silo sweep about a job whose grain was activated again.</summary>
    public void Track()
    {
        if (job.Expired) retained.Expired(JobId, job.State.ExpiredUtc!.Value);
        else if (job.Terminal) retained.Finished(JobId, job.State.Current!);
    }

    /// <summary>The sweep's call: expire a finished job, or forget one that expired a retention ago.</summary>
    public async Task ExpireAsync(string reason)
    {
        if (!job.Known || (job.Expired && job.ForgottenAfter(retention)))
        {
            if (job.Known) await job.ClearAsync();
            retained.Forgotten(JobId);
            deactivate();
            return;
        }

        if (!job.Terminal) return;
        if (!job.Expired)
        {
            await job.ExpireAsync(reason);
            JobLog.LogExpired(logger, JobId, reason);
        }

        retained.Expired(JobId, job.State.ExpiredUtc!.Value);
        deactivate();
    }

    /// <summary>
    /// Unknown ids are not found; finished jobs older than the retention (found so by a read before
    /// the sweep) or dropped by the sweep have expired.
    /// </summary>
    public async Task ThrowIfUnknownAsync()
    {
        if (job.Known && !job.Expired && !job.ExpiredAfter(retention)) return;
        if (job.Known && !job.Expired) await ExpireAsync(retained.RetentionReason);
        if (job.Known && !job.ForgottenAfter(retention)) throw new ExpiredException("job", JobId, job.State.ExpiredReason ?? retained.RetentionReason);
        await ExpireAsync(retained.RetentionReason);
        throw new NotFoundException("job", JobId);
    }
}
