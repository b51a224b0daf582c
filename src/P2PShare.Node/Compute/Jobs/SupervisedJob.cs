using Orleans.Storage;

namespace P2PShare.Compute;

/// <summary>
/// A job's record as its supervisor keeps it: the stored <see cref="JobState"/>, what each piece of
/// news about an attempt changes in it, the moment it ends, and writing it to storage, where another
/// activation of the same job (after a partition) may have written first.
/// </summary>
/// <remarks>
/// Owned by the job's grain and used only in its turns, so no two changes run at once. Nothing here
/// calls another grain; what is only news (an attempt started) changes memory, and the grain decides
/// when to write.
/// </remarks>
internal sealed class SupervisedJob(IPersistentState<JobState> state, string jobId, TimeProvider time)
{
    private readonly TaskCompletionSource<JobInfo> _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim _writing = new(1, 1);

    public JobState State => state.State;

    public string JobId => jobId;

    /// <summary>
    /// The whole task, program included, as the origin sent it. After a reactivation elsewhere it is
    /// the stored one, without a confidential task's program, which is fine: that is never re-run.
    /// </summary>
    public TaskSpec? FullSpec { get; private set; }

    public bool Known => state.RecordExists && State.Current is not null;

    public bool Terminal => State.Current?.IsTerminal == true;

    /// <summary>The current attempt.</summary>
    public JobAttempt Last => State.Attempts[^1];

    /// <summary>The job as callers see it.</summary>
    public JobInfo Info() => State.Current! with
    {
        JobId = jobId,
        Origin = State.Origin,
        Attempt = State.Attempts.Count,
        Attempts = [.. State.Attempts],
    };

    /// <summary>Takes the stored record of a job that is known already (a reactivation).</summary>
    public void Resume() => FullSpec = State.Spec;

    /// <summary>
    /// A job the origin ran on the fast path until now (<see cref="JobAdoption"/>): its attempts so far
    /// and the running one's record become this record.
    /// </summary>
    public void Adopt(JobAdoption adoption)
    {
        Begin(adoption.Origin, adoption.Spec);
        State.Attempts = [.. adoption.Attempts];
        State.Current = adoption.Current with { SubmittedUtc = adoption.SubmittedUtc };
    }

    /// <summary>A new job: the program and arguments of a confidential task are kept in memory only.</summary>
    public void Begin(string origin, TaskSpec task)
    {
        FullSpec = task;
        State.Origin = origin;
        State.Spec = task.Confidential ? task with { Program = "", ArgsJson = "[]" } : task;
    }

    /// <summary>The final record if the job ends within <paramref name="wait"/>, else null.</summary>
    public async Task<JobInfo?> EndedWithinAsync(TimeSpan wait)
    {
        try
        {
            return await _ended.Task.WaitAsync(wait, time);
        }
        catch (TimeoutException)
        {
            return null;
        }
    }

    /// <summary>Marks the job ended, which answers those waiting for it; true only the first time.</summary>
    public bool TryMarkEnded() => _ended.TrySetResult(Info());

    /// <summary>Finished longer ago than <paramref name="retention"/>: no longer answered for.</summary>
    public bool ExpiredAfter(TimeSpan retention) => Terminal && State.Current!.FinishedUtc + retention < Now();

    /// <summary>The result was dropped; the record only says the job expired.</summary>
    public bool Expired => State.ExpiredUtc is not null;

    /// <summary>Expired longer ago than <paramref name="retention"/>: the record itself may go.</summary>
    public bool ForgottenAfter(TimeSpan retention) => State.ExpiredUtc + retention <= Now();

    /// <summary>
    /// Drops what a finished record holds (result, output, error, the program) and keeps only that it
    /// expired, when and why; written at once.
    /// </summary>
    public Task ExpireAsync(string reason)
    {
        State.Current = State.Current! with { ResultJson = null, Output = "", Error = null };
        State.Spec = null;
        State.ExpiredUtc = Now();
        State.ExpiredReason = reason;
        return WriteAsync();
    }

    /// <summary>Drops what a submission that failed had put in memory; nothing of it was stored.</summary>
    public void Forget() => state.State = new JobState();

    /// <summary>A new attempt was sent to <paramref name="peer"/>, which answered <paramref name="info"/>.</summary>
    public void Add(int number, string peer, JobInfo info)
    {
        State.Attempts.Add(new JobAttempt(number, peer, info.Status, Now(), null, null));
        Adopt(info);
    }

    /// <summary>Takes in a running attempt's progress (it started); a terminal record is left to <see cref="Finish"/>.</summary>
    public void Observe(JobInfo info)
    {
        if (Terminal || info.IsTerminal || State.Current is not { } current || info.Status == current.Status) return;
        Adopt(info);
        State.Attempts[^1] = State.Attempts[^1] with { Status = info.Status };
    }

    /// <summary>The current attempt ended on its peer with <paramref name="info"/>, and with it the job.</summary>
    public void Finish(JobInfo info)
    {
        Adopt(info);
        State.Attempts[^1] = State.Attempts[^1] with { Status = info.Status, FinishedUtc = info.FinishedUtc ?? Now() };
    }

    /// <summary>The current attempt was lost with its peer.</summary>
    public void Lose(JobAttempt attempt, string reason) =>
        State.Attempts[^1] = attempt with { Status = JobStatus.PeerLost, FinishedUtc = Now(), Note = reason };

    /// <summary>
    /// How the job ends instead of being re-run after its attempt was lost for <paramref name="reason"/>,
    /// or null when it can be re-run: a confidential task never leaves its origin, a pinned one never
    /// leaves its peer, a task whose peer died under it on two different peers is not sent round the
    /// rest (it may be what kills them), and every task has a limited number of retries.
    /// </summary>
    public (JobStatus Status, TaskErrorKind Kind, string Error)? EndInsteadOfRerun(string reason) =>
        EndInsteadOfRerun(State.Spec!, State.Attempts, reason);

    /// <summary>
    /// The rule of <see cref="EndInsteadOfRerun(string)"/> for any supervisor (the fast path's too):
    /// <paramref name="attempts"/> are every attempt so far, the lost one included.
    /// </summary>
    public static (JobStatus Status, TaskErrorKind Kind, string Error)? EndInsteadOfRerun(TaskSpec spec, IReadOnlyList<JobAttempt> attempts, string reason)
    {
        if (spec.Confidential) return Lost($"{reason}; a confidential task never runs anywhere but its origin");
        if (spec.PinnedPeer is not null) return Lost($"{reason}; the task is pinned to that peer");
        if (LostOn(attempts) is [var earlier, .., var last])
        {
            return (JobStatus.Failed, TaskErrorKind.Crashed,
                $"Crashed: its peer died under it on '{earlier}' and on '{last}' ({reason}); a task that ends like that on two peers is not tried again");
        }

        if (attempts.Count > (spec.MaxRetries ?? 0)) return Lost($"{reason}; no retries left after {attempts.Count} attempts");
        return null;
    }

    /// <summary>A job that ends because its peer was lost and it cannot be re-run.</summary>
    public static (JobStatus Status, TaskErrorKind Kind, string Error) Lost(string why) =>
        (JobStatus.PeerLost, TaskErrorKind.PeerLost, $"PeerLost: {why}");

    /// <summary>The distinct peers on which an attempt of this job was lost, oldest first.</summary>
    private static List<string> LostOn(IReadOnlyList<JobAttempt> attempts) =>
        [.. attempts.Where(a => a.Status == JobStatus.PeerLost).Select(a => a.Peer).Distinct(StringComparer.Ordinal)];

    /// <summary>Ends the job here, not on a peer: it was cancelled, or lost with no way to re-run it.</summary>
    public void End(JobStatus status, TaskErrorKind kind, string error) => State.Current = State.Current! with
    {
        Status = status,
        FinishedUtc = Now(),
        ErrorKind = kind,
        Error = error,
        ResultJson = null,
    };

    public async Task WriteAsync()
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
                _ended.TrySetResult(Info());
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

    /// <summary>Removes the stored record (an expired job); the job is then unknown.</summary>
    public async Task ClearAsync()
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

    /// <summary>Takes a peer's record of the current attempt; the submission time stays the job's.</summary>
    private void Adopt(JobInfo info) =>
        State.Current = State.Current is { } previous ? info with { SubmittedUtc = previous.SubmittedUtc } : info;

    private DateTime Now() => time.GetUtcNow().UtcDateTime;
}
