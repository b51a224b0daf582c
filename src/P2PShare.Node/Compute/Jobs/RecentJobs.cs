using System.Collections.Concurrent;

namespace P2PShare.Compute;

/// <summary>
/// The fast-path jobs of this origin, in memory: the ones in flight and the finished ones, so that
/// <c>job get</c> (through the job's grain, which asks the origin when it has no record of its own)
/// finds every job. Finished records go after <see cref="ComputeOptions.JobRetention"/>, and the
/// oldest first when they pass <see cref="ComputeOptions.MaxRetainedResultBytes"/> or
/// <see cref="ComputeOptions.MaxRecentFastJobs"/>; a dropped one reads as expired for one more
/// retention period (bounded by the same count), then it is unknown.
/// </summary>
/// <remarks>
/// Promoted jobs leave the table: their grain has their record. Thread-safe; a sweep costs what it
/// removes (both queues are trimmed from the front).
/// </remarks>
public sealed class RecentJobs : IDisposable
{
    private readonly ConcurrentDictionary<string, FastJob> _jobs = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly TimeSpan _retention;
    private readonly long _maxBytes;
    private readonly int _maxJobs;
    private readonly ITimer _sweeper;
    private readonly object _gate = new();
    private readonly Queue<(string JobId, DateTime FinishedUtc, long Bytes)> _finished = new();
    private readonly Dictionary<string, string> _expired = new(StringComparer.Ordinal);
    private readonly Queue<(string JobId, DateTime ExpiredUtc)> _expiredOrder = new();
    private long _bytes;

    // Why a record was dropped, built once: once the table is full every finished job drops one.
    private readonly string _retentionReason;
    private readonly string _bytesCapReason;
    private readonly string _countCapReason;

    public RecentJobs(IOptions<ComputeOptions> options, TimeProvider time)
    {
        _time = time;
        _retention = options.Value.JobRetention;
        _maxBytes = options.Value.MaxRetainedResultBytes;
        _maxJobs = options.Value.MaxRecentFastJobs;
        _retentionReason = RetainedJobs.RetentionReasonFor(_retention);
        _bytesCapReason = $"this peer keeps at most {Bytes.Format(_maxBytes)} of finished jobs' results and dropped the oldest";
        _countCapReason = $"this peer keeps at most {_maxJobs} finished fast jobs in memory and dropped the oldest";
        var period = JobStore.SweepPeriod(_retention);
        _sweeper = time.CreateTimer(_ => Sweep(), null, period, period);
    }

    /// <summary>Jobs in the table: in flight and finished.</summary>
    public int Count => _jobs.Count;

    internal void Add(FastJob job) => _jobs[job.JobId] = job;

    /// <summary>The job, or null when this origin never had it, forgot it or handed it to its grain.</summary>
    /// <exception cref="ExpiredException">It finished and its record was dropped.</exception>
    internal FastJob? Find(string jobId)
    {
        if (_jobs.TryGetValue(jobId, out var job)) return job;
        string? reason;
        lock (_gate) reason = _expired.GetValueOrDefault(jobId);
        return reason is null ? null : throw new ExpiredException("job", jobId, reason);
    }

    /// <summary>The job ended holding <paramref name="final"/>: it is kept until swept.</summary>
    internal void Finished(FastJob job, JobInfo final)
    {
        var bytes = RetainedJobs.ResultBytes(final);
        var now = Now();
        lock (_gate)
        {
            _finished.Enqueue((job.JobId, final.FinishedUtc ?? now, bytes));
            _bytes += bytes;
            // The newest is always kept: the options make sure one result fits.
            while ((_bytes > _maxBytes || _finished.Count > _maxJobs) && _finished.Count > 1)
            {
                var oldest = _finished.Dequeue();
                _bytes -= oldest.Bytes;
                Drop(oldest.JobId, now, _bytes > _maxBytes ? _bytesCapReason : _countCapReason);
            }
        }
    }

    /// <summary>The job's grain answers for it from now on.</summary>
    internal void Promoted(FastJob job) => _jobs.TryRemove(job.JobId, out _);

    /// <summary>A submission that failed: it leaves no job behind.</summary>
    internal void Forget(FastJob job) => _jobs.TryRemove(job.JobId, out _);

    /// <summary>Drops finished records older than the retention, and forgets dropped ones after another. Returns how many were dropped.</summary>
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
                _bytes -= oldest.Bytes;
                if (Drop(oldest.JobId, now, _retentionReason)) removed++;
            }

            while (_expiredOrder.TryPeek(out var dropped) && (dropped.ExpiredUtc < cutoff || _expiredOrder.Count > _maxJobs))
                _expired.Remove(_expiredOrder.Dequeue().JobId);
        }

        return removed;
    }

    public void Dispose() => _sweeper.Dispose();

    // Under _gate.
    private bool Drop(string jobId, DateTime now, string reason)
    {
        if (!_jobs.TryRemove(jobId, out _)) return false;
        _expired[jobId] = reason;
        _expiredOrder.Enqueue((jobId, now));
        return true;
    }

    private DateTime Now() => _time.GetUtcNow().UtcDateTime;
}
