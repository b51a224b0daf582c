using System.Collections.Concurrent;
using P2PShare.Telemetry;

namespace P2PShare.Compute;

/// <summary>
/// The records of the job attempts this peer executes, keyed by job id and attempt number. They
/// live in the silo, so an attempt's result waits here until the job's supervisor collects it,
/// even across a deactivation of either grain. Finished ones are swept on a timer after
/// <see cref="ComputeOptions.JobRetention"/>, read or not, and the oldest are dropped first when their
/// results pass <see cref="ComputeOptions.MaxRetainedResultBytes"/>; a dropped attempt reads as
/// expired (not unknown) for one more retention period, so its supervisor can tell the two apart.
/// </summary>
public sealed class JobStore : IDisposable
{
    private readonly ConcurrentDictionary<string, JobRecord> _jobs = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly TimeSpan _retention;
    private readonly long _maxRetainedBytes;
    private readonly ITimer _sweeper;
    private readonly P2PShareMetrics? _metrics;
    // Every attempt is dropped with one of these, after its retention or when the results pass the cap: built once, not per attempt.
    private readonly string _retentionReason;
    private readonly string _capReason;

    // Finished attempts in the order they finished, with what they hold; and dropped ones, in the
    // order they were dropped. Both are trimmed from the front, so a sweep costs what it removes.
    private readonly object _gate = new();
    private readonly Queue<(string Key, DateTime FinishedUtc, long Bytes)> _finished = new();
    private readonly Dictionary<string, string> _expired = new(StringComparer.Ordinal);
    private readonly Queue<(string Key, DateTime ExpiredUtc)> _expiredOrder = new();
    private long _retainedBytes;

    public JobStore(IOptions<ComputeOptions> options, TimeProvider time, P2PShareMetrics? metrics = null)
    {
        _time = time;
        _metrics = metrics;
        _retention = options.Value.JobRetention;
        _maxRetainedBytes = options.Value.MaxRetainedResultBytes;
        _retentionReason = $"finished attempts are kept for {RetainedJobs.Describe(_retention)}";
        _capReason = $"this peer keeps at most {Bytes.Format(_maxRetainedBytes)} of finished attempts' results and dropped the oldest";
        var period = SweepPeriod(_retention);
        _sweeper = time.CreateTimer(_ => Sweep(), null, period, period);
    }

    /// <summary>Result, output and error bytes the finished attempts here hold.</summary>
    public long RetainedResultBytes
    {
        get
        {
            lock (_gate) return _retainedBytes;
        }
    }

    /// <summary>A minute, or a quarter of the retention when that is shorter, so a record outlives its retention by little.</summary>
    internal static TimeSpan SweepPeriod(TimeSpan retention) =>
        TimeSpan.FromTicks(Math.Clamp(retention.Ticks / 4, TimeSpan.FromMilliseconds(100).Ticks, TimeSpan.FromMinutes(1).Ticks));

    public JobRecord Create(JobAssignment assignment, string executedBy)
    {
        var key = Key(assignment.JobId, assignment.Attempt);
        // Counted as it finishes, so the cap holds at every moment, not only after a continuation ran;
        // the metrics in the same callback, which costs no continuation per attempt.
        var metrics = _metrics;
        var record = new JobRecord(assignment, executedBy, Now(), final =>
        {
            Retain(key, final);
            metrics?.AttemptFinished(final);
        });
        if (!_jobs.TryAdd(key, record)) throw new InvalidOperationException($"duplicate job attempt {key}");
        return record;
    }

    public JobRecord? TryGet(string jobId, int attempt) => _jobs.GetValueOrDefault(Key(jobId, attempt));

    /// <exception cref="ExpiredException">The attempt finished and its record was dropped.</exception>
    /// <exception cref="NotFoundException">This peer never had the attempt, or forgot it long ago.</exception>
    public JobRecord Get(string jobId, int attempt)
    {
        if (TryGet(jobId, attempt) is { } record) return record;
        var key = Key(jobId, attempt);
        string? reason;
        lock (_gate) reason = _expired.GetValueOrDefault(key);
        throw reason is null ? new NotFoundException("job attempt", key) : new ExpiredException("job attempt", key, reason);
    }

    private static string Key(string jobId, int attempt) => $"{jobId}#{attempt}";

    public IReadOnlyList<JobInfo> Recent(int limit) =>
        _jobs.Values.Select(r => r.Snapshot()).OrderByDescending(j => j.SubmittedUtc).Take(limit).ToList();

    /// <summary>Drops finished records older than the retention time, and forgets dropped ones after another. Returns how many were dropped.</summary>
    public int Sweep()
    {
        var now = Now();
        var cutoff = now - _retention;
        var removed = 0;
        lock (_gate)
        {
            while (_finished.TryPeek(out var oldest) && oldest.FinishedUtc < cutoff)
            {
                _finished.Dequeue();
                _retainedBytes -= oldest.Bytes;
                if (Drop(oldest.Key, now, _retentionReason)) removed++;
            }

            while (_expiredOrder.TryPeek(out var dropped) && dropped.ExpiredUtc < cutoff)
                _expired.Remove(_expiredOrder.Dequeue().Key);
        }

        return removed;
    }

    public void Dispose() => _sweeper.Dispose();

    private void Retain(string key, JobInfo final)
    {
        var bytes = RetainedJobs.ResultBytes(final);
        var now = Now();
        lock (_gate)
        {
            _finished.Enqueue((key, final.FinishedUtc ?? now, bytes));
            _retainedBytes += bytes;
            // The newest is always kept: the options make sure one result fits.
            while (_retainedBytes > _maxRetainedBytes && _finished.Count > 1)
            {
                var oldest = _finished.Dequeue();
                _retainedBytes -= oldest.Bytes;
                Drop(oldest.Key, now, _capReason);
            }
        }
    }

    // Under _gate.
    private bool Drop(string key, DateTime now, string reason)
    {
        if (!_jobs.TryRemove(key, out _)) return false;
        _expired[key] = reason;
        _expiredOrder.Enqueue((key, now));
        return true;
    }

    private DateTime Now() => _time.GetUtcNow().UtcDateTime;
}

/// <summary>One job's mutable state; every read is a consistent <see cref="JobInfo"/> snapshot.</summary>
public sealed class JobRecord
{
    private readonly object _gate = new();
    private readonly TaskCompletionSource<JobInfo> _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Action<JobInfo>? _onFinished;
    private JobInfo _info;

    public JobRecord(JobAssignment assignment, string executedBy, DateTime now, Action<JobInfo>? onFinished = null)
    {
        _onFinished = onFinished;
        var spec = Spec = assignment.Spec;
        _info = new JobInfo(assignment.JobId, JobStatus.Queued, assignment.Origin, executedBy, spec.Submitter, spec.Confidential,
            spec.Function, now, null, null, 0, 0, null, TaskErrorKind.None, null, "", false)
        {
            Attempt = assignment.Attempt,
        };
    }

    public TaskSpec Spec { get; }

    public string JobId => _info.JobId;

    /// <summary>Set once the task is handed to the scheduler; its state shows when the job starts running.</summary>
    public ScheduledTask? Scheduled { get; set; }

    public Task<JobInfo> Finished => _finished.Task;

    public JobInfo Snapshot()
    {
        if (Scheduled?.StartedUtc is { } started) Started(started);
        lock (_gate) return _info;
    }

    public void Compiled(string function, bool fromCache)
    {
        lock (_gate) _info = _info with { Function = function, CompileCached = fromCache };
    }

    public void Started(DateTime startedUtc)
    {
        lock (_gate)
        {
            if (_info.IsTerminal) return;
            _info = _info with
            {
                Status = JobStatus.Running,
                StartedUtc = startedUtc,
                QueueMs = (startedUtc - _info.SubmittedUtc).TotalMilliseconds,
            };
        }
    }

    /// <summary>Records the outcome; the first terminal state wins.</summary>
    public bool Finish(JobStatus status, DateTime finishedUtc, ExecutionResult result, TimeSpan runTime, DateTime? startedUtc = null)
    {
        JobInfo final;
        lock (_gate)
        {
            if (_info.IsTerminal) return false;
            var started = startedUtc ?? _info.StartedUtc;
            final = _info = _info with
            {
                Status = status,
                StartedUtc = started,
                FinishedUtc = finishedUtc,
                // Queue time runs from submission (compilation included) until the task got a slot.
                QueueMs = ((started ?? finishedUtc) - _info.SubmittedUtc).TotalMilliseconds,
                RunMs = runTime.TotalMilliseconds,
                ResultJson = result.ResultJson,
                ErrorKind = result.ErrorKind,
                Error = result.Error,
                Output = result.Output,
            };
        }

        _onFinished?.Invoke(final);
        _finished.TrySetResult(final);
        return true;
    }
}
