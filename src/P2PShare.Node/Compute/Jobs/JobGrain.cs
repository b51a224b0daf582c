using Orleans.Placement;
using Orleans.Storage;
using P2PShare.Peers;
using P2PShare.Telemetry;
using P2PShare.Tracker;

namespace P2PShare.Compute;

/// <summary>What a job's grain keeps in storage.</summary>
[GenerateSerializer]
public sealed class JobState
{
    /// <summary>The peer the job was submitted on.</summary>
    [Id(0)]
    public string Origin { get; set; } = "";

    /// <summary>The task, with the program and arguments left out when it is confidential: they never leave the origin.</summary>
    [Id(1)]
    public TaskSpec? Spec { get; set; }

    /// <summary>Every attempt so far, oldest first.</summary>
    [Id(2)]
    public List<JobAttempt> Attempts { get; set; } = [];

    /// <summary>The current attempt's last known record; the job's result once terminal.</summary>
    [Id(3)]
    public JobInfo? Current { get; set; }

    [Id(4)]
    public bool CancelRequested { get; set; }
}

/// <summary>
/// Supervises one job: sends each attempt to a peer, follows it with long polls, and when the peer
/// dies, is cut off or shuts down before the attempt ends, re-runs a non-confidential task on
/// another live peer (up to <see cref="TaskSpec.MaxRetries"/> times). A confidential or pinned task
/// is never moved: it ends <see cref="JobStatus.PeerLost"/>. The record is grain state written at
/// start, at every new attempt and at the end; a 1-minute reminder brings the grain back on a live
/// silo if its own silo dies while nobody is asking about the job.
/// </summary>
/// <remarks>
/// Placed on the submitting silo (the origin), so a confidential task's program only lives there.
/// Reentrant: a wait or a read must never queue behind the long poll. All state changes happen in
/// grain turns, so interleaving never runs two of them at once.
/// </remarks>
[PreferLocalPlacement, Reentrant]
public sealed partial class JobGrain(
    [PersistentState("job", StorageNames.Jobs)] IPersistentState<JobState> state,
    JobService jobs,
    PeerLiveness liveness,
    P2PShareMetrics metrics,
    IOptions<ComputeOptions> options,
    TimeProvider time,
    ILogger<JobGrain> logger) : Grain, IJobGrain, IRemindable
{
    private const string ReminderName = "supervise";
    private static readonly TimeSpan ReminderPeriod = TimeSpan.FromMinutes(1);

    /// <summary>
    /// The backstop reminder is registered only for jobs still running after this long: most tasks end
    /// sooner, and registering and removing a reminder costs three calls to the cluster's reminder
    /// table per job (PostgreSQL round trips in postgres mode). A supervisor lost before then is
    /// replaced by the next read of the job, as always.
    /// </summary>
    private static readonly TimeSpan BackstopDelay = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(25);
    private static readonly TimeSpan PollWait = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan ErrorBackoff = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan CancelGrace = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan RefreshTimeout = TimeSpan.FromSeconds(2);

    /// <summary>How long a retry keeps looking for a live peer before the job ends PeerLost.</summary>
    private static readonly TimeSpan NoPeerPatience = TimeSpan.FromSeconds(30);

    private readonly TaskCompletionSource<JobInfo> _terminal = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim _writing = new(1, 1);
    private readonly CancellationTokenSource _deactivating = new();
    private Task? _following;

    // Whether a reminder may exist for this job: this activation registered one, or it is not the
    // job's first activation (an earlier one may have). Then the end of the job removes it.
    private bool _reminderMayExist;

    // The whole task, program included, as the origin sent it; after a reactivation elsewhere a
    // confidential task's program is gone, which is fine: it is never re-run.
    private TaskSpec? _spec;

    private JobState S => state.State;

    private string JobId => this.GetPrimaryKeyString();

    private bool Known => state.RecordExists && S.Current is not null;

    private bool Terminal => S.Current?.IsTerminal == true;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (!Known) return Task.CompletedTask;
        _reminderMayExist = true;
        _spec = S.Spec;
        if (Terminal) _terminal.TrySetResult(Info());
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
        if (Known) return Info();

        jobs.Check(task);
        var retries = task.MaxRetries ?? options.Value.MaxRetries;
        if (retries is < 0 or > ComputeOptions.MaxRetriesLimit)
            throw new InvalidArgumentException($"max retries must be 0..{ComputeOptions.MaxRetriesLimit}, not {retries}");
        _spec = task with { MaxRetries = retries };
        S.Origin = origin;
        S.Spec = task.Confidential ? _spec with { Program = "", ArgsJson = "[]" } : _spec;

        try
        {
            if (!await DispatchAsync(firstAttempt: true)) throw new InvalidOperationException("the first attempt was not sent");
        }
        catch
        {
            // Nothing was stored; a failed submission leaves no job behind.
            state.State = new JobState();
            DeactivateOnIdle();
            throw;
        }

        await WriteAsync();
        metrics.TaskSubmitted(task);
        EnsureFollowing();
        return Info();
    }

    public async Task<JobInfo> GetAsync()
    {
        await ThrowIfUnknownAsync();
        EnsureFollowing();
        await RefreshAsync();
        return Info();
    }

    public async Task<JobInfo> WaitAsync(TimeSpan maxWait)
    {
        await ThrowIfUnknownAsync();
        EnsureFollowing();
        if (Terminal || maxWait <= TimeSpan.Zero) return Info();
        try
        {
            return await _terminal.Task.WaitAsync(maxWait < MaxWait ? maxWait : MaxWait, time);
        }
        catch (TimeoutException)
        {
            await RefreshAsync();
            return Info();
        }
    }

    public async Task<JobInfo> CancelAsync()
    {
        await ThrowIfUnknownAsync();
        if (Terminal) return Info();
        S.CancelRequested = true;
        var attempt = S.Attempts[^1];
        try
        {
            var info = await PeerCall.RunAsync(attempt.Peer,
                () => GrainFactory.GetGrain<IPeerGrain>(attempt.Peer).CancelAttemptAsync(JobId, attempt.Number));
            if (info.IsTerminal && info.Attempt == attempt.Number) await FinishAsync(info);
        }
        catch (Exception ex) when (ex is PeerUnavailableException or NotFoundException)
        {
            // The attempt is gone with its peer; the follower sees that too and, the cancel being
            // requested, ends the job Cancelled instead of re-running it.
        }

        EnsureFollowing();
        try
        {
            return await _terminal.Task.WaitAsync(CancelGrace, time);
        }
        catch (TimeoutException)
        {
            return Info();
        }
    }

    public Task ReceiveReminder(string reminderName, TickStatus status)
    {
        _reminderMayExist = true;
        if (!Known || Terminal) return ForgetReminderAsync();
        EnsureFollowing();
        return Task.CompletedTask;
    }

    // ---- supervision ----

    private void EnsureFollowing()
    {
        if (Terminal || _following is { IsCompleted: false }) return;
        _following = FollowAsync();
    }

    private async Task FollowAsync()
    {
        if (_reminderMayExist) await RememberAsync();
        else _ = RememberLaterAsync();
        while (!Terminal && !_deactivating.IsCancellationRequested)
        {
            // Keeps the activation (and the poll) alive while the job runs, however long it runs.
            DelayDeactivation(ReminderPeriod * 2);
            var attempt = S.Attempts[^1];
            try
            {
                var outcome = await PollAsync(attempt);
                switch (outcome)
                {
                    case { Info: { } info } when info.Attempt == attempt.Number:
                        if (info.Status == JobStatus.PeerLost) await AttemptLostAsync(attempt, info.Error ?? $"{attempt.Peer} lost it");
                        else if (info.IsTerminal) await FinishAsync(info);
                        else Observe(info);
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
                LogPollFailed(JobId, attempt.Peer, ex.Message);
                await Task.Delay(ErrorBackoff, time);
            }
        }
    }

    private readonly record struct PollOutcome(JobInfo? Info, string? Lost);

    /// <summary>One long poll of the current attempt, raced against its peer leaving the cluster.</summary>
    private async Task<PollOutcome> PollAsync(JobAttempt attempt)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(_deactivating.Token);
        var gone = liveness.WhenGoneAsync(attempt.Peer, stop.Token);
        var poll = PeerCall.RunAsync(attempt.Peer,
            () => GrainFactory.GetGrain<IPeerGrain>(attempt.Peer).WaitAttemptAsync(JobId, attempt.Number, PollWait));
        try
        {
            var first = await Task.WhenAny(poll, gone);
            if (first == gone && !gone.IsCanceled)
            {
                _ = poll.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
                return new(null, $"peer '{attempt.Peer}' died or was cut off");
            }

            return new(await poll, null);
        }
        catch (PeerUnavailableException ex)
        {
            return new(null, ex.Message);
        }
        catch (NotFoundException)
        {
            return new(null, $"peer '{attempt.Peer}' restarted and no longer has the attempt");
        }
        catch (TimeoutException) when (!liveness.IsLive(attempt.Peer))
        {
            return new(null, $"peer '{attempt.Peer}' stopped answering and left the cluster");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogPollFailed(JobId, attempt.Peer, ex.Message);
            return default;
        }
        finally
        {
            stop.Cancel();
        }
    }

    /// <summary>
    /// The long poll only answers when the attempt ends; a reader also wants to see it start, so a
    /// read asks the peer directly. Failures are left to the follower, which handles them.
    /// </summary>
    private async Task RefreshAsync()
    {
        if (Terminal || S.Attempts.Count == 0) return;
        var attempt = S.Attempts[^1];
        try
        {
            var info = await GrainFactory.GetGrain<IPeerGrain>(attempt.Peer).WaitAttemptAsync(JobId, attempt.Number, TimeSpan.Zero)
                .WaitAsync(RefreshTimeout, time);
            if (info.Attempt != attempt.Number || S.Attempts[^1].Number != attempt.Number) return;
            if (info.IsTerminal && info.Status != JobStatus.PeerLost) await FinishAsync(info);
            else Observe(info);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
        }
    }

    /// <summary>Takes in a running attempt's progress (it started) without writing: the end is what must be stored.</summary>
    private void Observe(JobInfo info)
    {
        if (Terminal || info.IsTerminal || S.Current is not { } current || info.Status == current.Status) return;
        Adopt(info);
        S.Attempts[^1] = S.Attempts[^1] with { Status = info.Status };
    }

    private async Task FinishAsync(JobInfo info)
    {
        if (Terminal) return;
        Adopt(info);
        S.Attempts[^1] = S.Attempts[^1] with { Status = info.Status, FinishedUtc = info.FinishedUtc ?? Now() };
        await EndAsync();
    }

    private async Task AttemptLostAsync(JobAttempt attempt, string reason)
    {
        if (Terminal || S.Attempts[^1].Number != attempt.Number) return;
        LogAttemptLost(JobId, attempt.Number, attempt.Peer, reason);
        S.Attempts[^1] = attempt with { Status = JobStatus.PeerLost, FinishedUtc = Now(), Note = reason };
        var spec = S.Spec!;
        string? final = null;
        if (S.CancelRequested)
        {
            await EndWithAsync(JobStatus.Cancelled, TaskErrorKind.Cancelled, $"Cancelled: cancelled while {reason}");
            return;
        }

        if (spec.Confidential) final = $"{reason}; a confidential task never runs anywhere but its origin";
        else if (spec.PinnedPeer is not null) final = $"{reason}; the task is pinned to that peer";
        else if (S.Attempts.Count > (spec.MaxRetries ?? 0)) final = $"{reason}; no retries left after {S.Attempts.Count} attempts";

        if (final is null)
        {
            var sent = await DispatchAsync(firstAttempt: false);
            if (sent)
            {
                await WriteAsync();
                return;
            }

            final = $"{reason}; no live peer took it within {NoPeerPatience.TotalSeconds:0} s";
        }

        await EndWithAsync(JobStatus.PeerLost, TaskErrorKind.PeerLost, $"PeerLost: {final}");
    }

    private Task EndWithAsync(JobStatus status, TaskErrorKind kind, string error)
    {
        var now = Now();
        S.Current = S.Current! with
        {
            Status = status,
            FinishedUtc = now,
            ErrorKind = kind,
            Error = error,
            ResultJson = null,
        };
        return EndAsync();
    }

    private async Task EndAsync()
    {
        await WriteAsync();
        if (_terminal.TrySetResult(Info())) metrics.JobEnded(S.Current!);
        LogEnded(JobId, S.Current!.Status, S.Attempts.Count);
        await ForgetReminderAsync();
    }

    /// <summary>
    /// Sends the next attempt. On the first one, failures go to the submitter; on a retry, busy or
    /// dying peers are skipped and an empty cluster is waited out for a while.
    /// </summary>
    private async Task<bool> DispatchAsync(bool firstAttempt)
    {
        var spec = _spec ?? throw new InvalidOperationException("the task is not known here");
        var number = S.Attempts.Count + 1;
        var assignment = new JobAssignment(JobId, number, S.Origin, spec);
        var fixedPeer = spec.Confidential ? S.Origin : spec.PinnedPeer;
        if (fixedPeer is not null)
        {
            try
            {
                Record(number, fixedPeer, await SendAsync(fixedPeer, assignment));
                metrics.Routed(spec.Confidential ? RoutingOutcome.Origin : RoutingOutcome.Pinned);
                return true;
            }
            catch (PeerUnavailableException) when (!firstAttempt)
            {
                return false;
            }
        }

        var tracker = GrainFactory.GetTracker();
        var skipped = new List<string>(S.Attempts.Where(a => a.Status == JobStatus.PeerLost).Select(a => a.Peer));
        var giveUpAt = time.GetUtcNow() + NoPeerPatience;
        while (true)
        {
            string pick;
            try
            {
                pick = await PickAsync(tracker, new PickRequest([.. skipped], S.Spec!.Language));
            }
            catch (NoPeersAvailableException) when (!firstAttempt && time.GetUtcNow() < giveUpAt)
            {
                // Peers that were skipped may be back (restarted) by now; so may the tracker's view.
                skipped.Clear();
                await Task.Delay(ErrorBackoff, time);
                continue;
            }
            catch (NoPeersAvailableException) when (!firstAttempt)
            {
                return false;
            }

            try
            {
                Record(number, pick, await SendAsync(pick, assignment));
                metrics.Routed(RoutingOutcome.LeastLoaded);
                return true;
            }
            catch (PeerUnavailableException ex)
            {
                metrics.Routed(RoutingOutcome.PeerRefused);
                LogSkipped(JobId, pick, ex.Message);
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

    private Task<JobInfo> SendAsync(string peer, JobAssignment assignment) =>
        PeerCall.RunAsync(peer, () => GrainFactory.GetGrain<IPeerGrain>(peer).ExecuteAsync(assignment));

    private void Record(int number, string peer, JobInfo info)
    {
        S.Attempts.Add(new JobAttempt(number, peer, info.Status, Now(), null, null));
        Adopt(info);
        if (number > 1) LogRetried(JobId, number, peer);
    }

    /// <summary>Takes a peer's record of the current attempt; the submission time stays the job's.</summary>
    private void Adopt(JobInfo info) =>
        S.Current = S.Current is { } previous ? info with { SubmittedUtc = previous.SubmittedUtc } : info;

    private JobInfo Info() => S.Current! with
    {
        JobId = JobId,
        Origin = S.Origin,
        Attempt = S.Attempts.Count,
        Attempts = [.. S.Attempts],
    };

    /// <summary>Unknown ids, and finished jobs older than <see cref="ComputeOptions.JobRetention"/>, are not found.</summary>
    private async Task ThrowIfUnknownAsync()
    {
        if (Known && !(Terminal && S.Current!.FinishedUtc + options.Value.JobRetention < Now())) return;
        if (Known)
        {
            await _writing.WaitAsync();
            try
            {
                await state.ClearStateAsync();
                state.State = new JobState();
            }
            finally
            {
                _writing.Release();
            }
        }

        DeactivateOnIdle();
        throw new NotFoundException("job", JobId);
    }

    private async Task WriteAsync()
    {
        await _writing.WaitAsync();
        try
        {
            await state.WriteStateAsync();
        }
        catch (InconsistentStateException)
        {
            // Another activation of this job (after a partition) wrote in between. Ours has seen the
            // latest attempt it sent; keep a terminal record that is already stored, else write ours.
            var mine = state.State;
            await state.ReadStateAsync();
            if (state.State.Current?.IsTerminal == true)
            {
                _terminal.TrySetResult(Info());
                return;
            }

            state.State = mine;
            await state.WriteStateAsync();
        }
        finally
        {
            _writing.Release();
        }
    }

    private async Task RememberAsync()
    {
        try
        {
            await this.RegisterOrUpdateReminder(ReminderName, ReminderPeriod, ReminderPeriod);
        }
        catch (Exception ex)
        {
            // Only the backstop is missing: the job is still followed while this activation lives.
            LogReminderFailed(JobId, ex.Message);
        }
    }

    private async Task RememberLaterAsync()
    {
        try
        {
            await Task.Delay(BackstopDelay, time, _deactivating.Token);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        if (!Terminal && !_reminderMayExist)
        {
            _reminderMayExist = true;
            await RememberAsync();
        }
    }

    private async Task ForgetReminderAsync()
    {
        if (!_reminderMayExist) return;
        try
        {
            if (await this.GetReminder(ReminderName) is { } reminder) await this.UnregisterReminder(reminder);
        }
        catch (Exception ex)
        {
            LogReminderFailed(JobId, ex.Message);
        }
    }

    private DateTime Now() => time.GetUtcNow().UtcDateTime;

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} attempt {Attempt} on {Peer} was lost: {Reason}")]
    private partial void LogAttemptLost(string jobId, int attempt, string peer, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} re-run as attempt {Attempt} on {Peer}")]
    private partial void LogRetried(string jobId, int attempt, string peer);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Job {JobId} ended {Status} after {Attempts} attempt(s)")]
    private partial void LogEnded(string jobId, JobStatus status, int attempts);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: peer {Peer} could not take it, trying another: {Reason}")]
    private partial void LogSkipped(string jobId, string peer, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: following attempt on {Peer} failed, retrying: {Reason}")]
    private partial void LogPollFailed(string jobId, string peer, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: reminder not updated: {Reason}")]
    private partial void LogReminderFailed(string jobId, string reason);
}
