using Orleans.Placement;
using P2PShare.Peers;
using P2PShare.Telemetry;

namespace P2PShare.Compute;

/// <summary>
/// Supervises one job: sends each attempt to a peer, follows it with long polls, and when the peer
/// dies, is cut off or shuts down before the attempt ends, re-runs a non-confidential task on
/// another live peer (up to <see cref="TaskSpec.MaxRetries"/> times). A confidential or pinned task
/// is never moved: it ends <see cref="JobStatus.PeerLost"/>; one lost on two peers ends Failed. The
/// record is grain state written at start, at every new attempt and at the end; a 1-minute reminder
/// brings the grain back on a live silo if its own silo dies while nobody is asking about the job.
/// </summary>
/// <remarks>
/// Placed on the submitting silo (the origin), so a confidential task's program only lives there.
/// Reentrant: a wait or a read must never queue behind the long poll. All state changes happen in
/// grain turns, so interleaving never runs two of them at once. Its parts: <see cref="SupervisedJob"/>,
/// <see cref="JobRouter"/>, <see cref="AttemptCalls"/>, <see cref="JobReminders"/>.
/// </remarks>
[PreferLocalPlacement, Reentrant]
public sealed class JobGrain(
    [PersistentState("job", StorageNames.Jobs)] IPersistentState<JobState> state,
    JobService jobs,
    IGrainFactory grains,
    PeerLiveness liveness,
    P2PShareMetrics metrics,
    RetainedJobs retained,
    IOptions<ComputeOptions> options,
    TimeProvider time,
    ILogger<JobGrain> logger) : Grain, IJobGrain, IRemindable
{
    private static readonly TimeSpan ErrorBackoff = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan CancelGrace = TimeSpan.FromSeconds(3);

    private readonly JobRouter _router = new(grains, metrics, time, logger);
    private readonly AttemptCalls _calls = new(grains, liveness, time, logger);
    private readonly CancellationTokenSource _deactivating = new();
    private Task? _following;
    private SupervisedJob? _job;
    private JobReminders? _reminders;
    private JobExpiry? _expiry;

    // Made on first use: they need the grain's id, which field initializers cannot reach.
    private SupervisedJob Job => _job ??= new(state, JobId, time);

    private JobReminders Reminders => _reminders ??= new(this, JobId, time, logger);

    private JobExpiry Expiry => _expiry ??= new(Job, retained, options.Value.JobRetention, logger, DeactivateOnIdle);

    private JobState S => Job.State;

    private string JobId => this.GetPrimaryKeyString();

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (!Job.Known) return Task.CompletedTask;
        Reminders.MayExist();
        Job.Resume();
        Expiry.Track();
        if (Job.Terminal) Job.TryMarkEnded();
        else EnsureFollowing();
        return Task.CompletedTask;
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _deactivating.Cancel();
        return Task.CompletedTask;
    }

    public async Task<JobInfo> StartAsync(string origin, TaskSpec task)
    {
        // The same start twice (a retried call whose answer was lost) starts nothing new.
        if (Job.Known) return Job.Info();

        jobs.Check(task);
        var retries = task.MaxRetries ?? options.Value.MaxRetries;
        if (retries is < 0 or > ComputeOptions.MaxRetriesLimit)
            throw new InvalidArgumentException($"max retries must be 0..{ComputeOptions.MaxRetriesLimit}, not {retries}");
        Job.Begin(origin, task with { MaxRetries = retries });

        try
        {
            if (!await _router.SendNextAsync(Job, firstAttempt: true)) throw new InvalidOperationException("the first attempt was not sent");
        }
        catch
        {
            // Nothing was stored; a failed submission leaves no job behind.
            Job.Forget();
            DeactivateOnIdle();
            throw;
        }

        await Job.WriteAsync();
        metrics.TaskSubmitted(task);
        EnsureFollowing();
        return Job.Info();
    }

    public async Task<JobInfo> AdoptAsync(JobAdoption adoption)
    {
        // The same adoption twice (a retried call whose answer was lost) adopts once.
        if (Job.Known) return Job.Info();
        Job.Adopt(adoption);
        await Job.WriteAsync();
        Expiry.Track();
        EnsureFollowing();
        return Job.Info();
    }

    public async Task<JobInfo> GetAsync()
    {
        if (!Job.Known && await FromOriginAsync(TimeSpan.Zero) is { } fast) return fast;
        await ThrowIfUnknownAsync();
        EnsureFollowing();
        await RefreshAsync();
        return Job.Info();
    }

    public async Task<JobInfo> WaitAsync(TimeSpan maxWait)
    {
        if (!Job.Known && await FromOriginAsync(maxWait < CallLimits.MaxWait ? maxWait : CallLimits.MaxWait) is { } fast) return fast;
        await ThrowIfUnknownAsync();
        EnsureFollowing();
        if (Job.Terminal || maxWait <= TimeSpan.Zero) return Job.Info();
        if (await Job.EndedWithinAsync(maxWait < CallLimits.MaxWait ? maxWait : CallLimits.MaxWait) is { } ended) return ended;
        await RefreshAsync();
        return Job.Info();
    }

    public async Task<JobInfo> CancelAsync()
    {
        if (!Job.Known && await AtOriginAsync(origin => origin.CancelJobAsync(JobId)) is { } fast) return fast;
        await ThrowIfUnknownAsync();
        if (Job.Terminal) return Job.Info();
        S.CancelRequested = true;
        var attempt = Job.Last;
        if (await _calls.CancelAsync(JobId, attempt) is { IsTerminal: true } info && info.Attempt == attempt.Number) await FinishAsync(info);
        EnsureFollowing();
        return await Job.EndedWithinAsync(CancelGrace) ?? Job.Info();
    }

    public Task ExpireAsync(string reason) => Expiry.ExpireAsync(reason);

    public Task ReceiveReminder(string reminderName, TickStatus status)
    {
        Reminders.MayExist();
        if (!Job.Known || Job.Terminal) return Reminders.ForgetAsync();
        EnsureFollowing();
        return Task.CompletedTask;
    }

    // ---- supervision ----

    private void EnsureFollowing()
    {
        if (Job.Terminal || _following is { IsCompleted: false }) return;
        _following = FollowAsync();
    }

    private async Task FollowAsync()
    {
        await Reminders.KeepAsync(() => Job.Terminal, _deactivating.Token);
        while (!Job.Terminal && !_deactivating.IsCancellationRequested)
        {
            // Keeps the activation (and the poll) alive while the job runs, however long it runs.
            DelayDeactivation(JobReminders.Period * 2);
            var attempt = Job.Last;
            try
            {
                var outcome = await _calls.PollAsync(JobId, attempt, _deactivating.Token);
                switch (outcome)
                {
                    case { Info: { } info } when info.Attempt == attempt.Number:
                        if (info.Status == JobStatus.PeerLost) await AttemptLostAsync(attempt, info.Error ?? $"{attempt.Peer} lost it");
                        else if (info.IsTerminal) await FinishAsync(info);
                        else Job.Observe(info);
                        break;
                    case { Lost: { } reason }:
                        await AttemptLostAsync(attempt, reason);
                        break;
                    default:
                        await Task.Delay(ErrorBackoff, time);
                        break;
                }
            }
            catch (Exception ex) when (!_deactivating.IsCancellationRequested)
            {
                // Storage or the cluster hiccuped; the state in memory is still right, so try again.
                JobLog.LogPollFailed(logger, JobId, attempt.Peer, ex.Message);
                await Task.Delay(ErrorBackoff, time);
            }
        }
    }

    /// <summary>
    /// The long poll only answers when the attempt ends; a reader also wants to see it start, so a
    /// read asks the peer directly. Failures are left to the follower, which handles them.
    /// </summary>
    private async Task RefreshAsync()
    {
        if (Job.Terminal || S.Attempts.Count == 0) return;
        var attempt = Job.Last;
        try
        {
            var info = await _calls.LookAsync(JobId, attempt);
            if (info.Attempt != attempt.Number || Job.Last.Number != attempt.Number) return;
            if (info.IsTerminal && info.Status != JobStatus.PeerLost) await FinishAsync(info);
            else Job.Observe(info);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
        }
    }

    private async Task FinishAsync(JobInfo info)
    {
        if (Job.Terminal) return;
        Job.Finish(info);
        await EndAsync();
    }

    private async Task AttemptLostAsync(JobAttempt attempt, string reason)
    {
        if (Job.Terminal || Job.Last.Number != attempt.Number) return;
        JobLog.LogAttemptLost(logger, JobId, attempt.Number, attempt.Peer, reason);
        Job.Lose(attempt, reason);
        if (S.CancelRequested)
        {
            Job.End(JobStatus.Cancelled, TaskErrorKind.Cancelled, $"Cancelled: cancelled while {reason}");
            await EndAsync();
            return;
        }

        var end = Job.EndInsteadOfRerun(reason);
        if (end is null)
        {
            if (await _router.SendNextAsync(Job, firstAttempt: false))
            {
                await Job.WriteAsync();
                return;
            }

            end = SupervisedJob.Lost($"{reason}; no live peer took it within {JobRouter.NoPeerPatience.TotalSeconds:0} s");
        }

        Job.End(end.Value.Status, end.Value.Kind, end.Value.Error);
        await EndAsync();
    }

    private async Task EndAsync()
    {
        await Job.WriteAsync();
        if (Job.TryMarkEnded()) metrics.JobEnded(S.Current!);
        retained.Finished(JobId, S.Current!);
        JobLog.LogEnded(logger, JobId, S.Current!.Status, S.Attempts.Count);
        await Reminders.ForgetAsync();
    }

    private Task ThrowIfUnknownAsync() => Expiry.ThrowIfUnknownAsync();

    // ---- jobs run on the fast path ----

    /// <summary>A fast-path job's record, kept by its origin in memory (this grain has none); null when the origin has none.</summary>
    private Task<JobInfo?> FromOriginAsync(TimeSpan maxWait) => AtOriginAsync(origin => origin.FindJobAsync(JobId, maxWait));

    /// <summary>
    /// Asks the job's origin, which keeps the jobs it ran on the fast path. When it has no record (or
    /// is gone), storage may: in <c>postgres</c> mode finished fast jobs are written there in batches,
    /// possibly after this activation read its empty state, so it is read again.
    /// </summary>
    private async Task<JobInfo?> AtOriginAsync(Func<IPeerGrain, Task<JobInfo?>> call)
    {
        var origin = JobIds.OriginOf(JobId);
        if (liveness.IsLive(origin))
        {
            try
            {
                if (await PeerCall.RunAsync(origin, () => call(grains.GetGrain<IPeerGrain>(origin))) is { } found) return found;
            }
            catch (PeerUnavailableException)
            {
            }
        }

        if (Job.Known) return null; // promoted meanwhile: this grain answers
        await state.ReadStateAsync();
        if (!Job.Known) return null;
        Job.Resume();
        Expiry.Track();
        if (Job.Terminal) Job.TryMarkEnded();
        else EnsureFollowing();
        return null;
    }
}
