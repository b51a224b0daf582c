using System.Collections.Immutable;

namespace P2PShare.Compute;

/// <summary>
/// A job run on the fast path, as its origin keeps it in memory: the task, its attempts, its current
/// record, and two moments callers wait for (it ended; it was handed to its grain).
/// </summary>
/// <remarks>
/// Changed by the one <see cref="JobRunner"/> call that drives it, read by any thread (<c>job get</c>,
/// a cancel): every change and read takes the lock, and reads return immutable records.
/// </remarks>
internal sealed class FastJob
{
    private readonly object _gate = new();
    private readonly TaskCompletionSource<JobInfo> _settled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ImmutableArray<JobAttempt> _attempts = [];
    private JobInfo _current;

    public FastJob(string jobId, string origin, TaskSpec spec, DateTime now)
    {
        JobId = jobId;
        Spec = spec;
        SubmittedUtc = now;
        _current = new JobInfo(jobId, JobStatus.Queued, origin, "", spec.Submitter, spec.Confidential, spec.Function,
            now, null, null, 0, 0, null, TaskErrorKind.None, null, "", false);
    }

    public string JobId { get; }

    public TaskSpec Spec { get; }

    public DateTime SubmittedUtc { get; }

    /// <summary>A cancel was asked for: a lost attempt is not re-run.</summary>
    public bool CancelRequested { get; set; }

    /// <summary>Handed to the job's grain, which answers for it from now on.</summary>
    public bool Promoted { get; private set; }

    /// <summary>Completes when the job ends or is promoted, with its record then.</summary>
    public Task<JobInfo> Settled => _settled.Task;

    public ImmutableArray<JobAttempt> Attempts
    {
        get
        {
            lock (_gate) return _attempts;
        }
    }

    /// <summary>The attempt in flight, if any.</summary>
    public JobAttempt? Running
    {
        get
        {
            lock (_gate) return _attempts.IsEmpty || _attempts[^1].Status.IsTerminal() ? null : _attempts[^1];
        }
    }

    /// <summary>The job as callers see it.</summary>
    public JobInfo Info()
    {
        lock (_gate) return _current with { Attempt = Math.Max(1, _attempts.Length), Attempts = _attempts };
    }

    public bool Terminal
    {
        get
        {
            lock (_gate) return _current.IsTerminal;
        }
    }

    /// <summary>Attempt <paramref name="number"/> goes to <paramref name="peer"/>.</summary>
    public void Sending(int number, string peer, DateTime now)
    {
        lock (_gate)
        {
            _attempts = _attempts.Add(new JobAttempt(number, peer, JobStatus.Queued, now, null, null));
            _current = _current with { ExecutedBy = peer, Attempt = number };
        }
    }

    /// <summary>The peer refused the attempt or was never reached: it was not an attempt.</summary>
    public void NotSent()
    {
        lock (_gate)
        {
            if (!_attempts.IsEmpty) _attempts = _attempts.RemoveAt(_attempts.Length - 1);
        }
    }

    /// <summary>The current attempt came back with its peer's record (final or still running).</summary>
    public void Observe(JobInfo info, DateTime now)
    {
        lock (_gate)
        {
            _current = info with { SubmittedUtc = SubmittedUtc, Attempts = [] };
            _attempts = _attempts.SetItem(_attempts.Length - 1, _attempts[^1] with
            {
                Status = info.Status,
                FinishedUtc = info.IsTerminal ? info.FinishedUtc ?? now : null,
            });
        }

        if (info.IsTerminal) _settled.TrySetResult(Info());
    }

    /// <summary>The current attempt was lost with its peer.</summary>
    public void Lose(string reason, DateTime now)
    {
        lock (_gate) _attempts = _attempts.SetItem(_attempts.Length - 1, _attempts[^1] with { Status = JobStatus.PeerLost, FinishedUtc = now, Note = reason });
    }

    /// <summary>Ends the job here, not on a peer: cancelled, or lost with no way to re-run it.</summary>
    public void End(JobStatus status, TaskErrorKind kind, string error, DateTime now)
    {
        lock (_gate)
        {
            _current = _current with { Status = status, FinishedUtc = now, ErrorKind = kind, Error = error, ResultJson = null };
        }

        _settled.TrySetResult(Info());
    }

    /// <summary>Its grain took it over with <paramref name="info"/>.</summary>
    public void Promote(JobInfo info)
    {
        lock (_gate) Promoted = true;
        _settled.TrySetResult(info);
    }

    /// <summary>A submission that failed before any attempt ran: callers waiting are told it is gone.</summary>
    public void Abandon(Exception why) => _settled.TrySetException(why);
}
