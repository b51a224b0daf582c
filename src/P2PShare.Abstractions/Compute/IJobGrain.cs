namespace P2PShare.Compute;

/// <summary>
/// The supervisor and record of one job, keyed by job id. It sends each attempt to a peer, follows
/// it, and re-runs a non-confidential task on another live peer when its peer dies or is cut off
/// (up to <see cref="TaskSpec.MaxRetries"/>). Its record is grain state: in <c>postgres</c> mode
/// it lives in PostgreSQL, so a job can be read after the silo that supervised it died.
/// </summary>
[Alias("P2PShare.IJobGrain")]
public interface IJobGrain : IGrainWithStringKey
{
    /// <summary>Starts the job: sends its first attempt and returns the job (Queued). Called by the origin peer.</summary>
    /// <exception cref="InvalidArgumentException">The task is malformed.</exception>
    /// <exception cref="NoPeersAvailableException">No live peer can take it.</exception>
    [Alias("Start")]
    Task<JobInfo> StartAsync(string origin, TaskSpec task);

    /// <summary>
    /// Takes over a task the origin ran on the fast path and that outlived the promotion threshold:
    /// records it (in storage) and follows its running attempt from now on, as if it had started it.
    /// The same adoption twice is taken once. Called by the origin peer only.
    /// </summary>
    [Alias("Adopt")]
    Task<JobInfo> AdoptAsync(JobAdoption adoption);

    /// <exception cref="NotFoundException">No job has this id.</exception>
    [Alias("Get")]
    Task<JobInfo> GetAsync();

    /// <summary>Returns when the job is terminal or after <paramref name="maxWait"/>, whichever is first.</summary>
    /// <exception cref="NotFoundException">No job has this id.</exception>
    [Alias("Wait")]
    Task<JobInfo> WaitAsync(TimeSpan maxWait);

    /// <summary>Removes a queued job or kills a running one. A finished job is returned unchanged.</summary>
    /// <exception cref="NotFoundException">No job has this id.</exception>
    [Alias("Cancel")]
    Task<JobInfo> CancelAsync();

    /// <summary>
    /// Called by the supervising peer's sweep: drops a finished job's result (its record then reads as
    /// expired), or, once it has read as expired for a retention period too, the record itself. A job
    /// that has not finished is left alone.
    /// </summary>
    [Alias("Expire")]
    Task ExpireAsync(string reason);
}

public static class JobGrainExtensions
{
    /// <summary>The job with this id; <see cref="InvalidArgumentException"/> for a malformed id.</summary>
    public static IJobGrain GetJob(this IGrainFactory grains, string jobId) =>
        grains.GetGrain<IJobGrain>(JobIds.Validate(jobId));
}
