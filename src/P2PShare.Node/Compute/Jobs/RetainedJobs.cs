using System.Text;
using P2PShare.Hosting;
using P2PShare.Peers;

namespace P2PShare.Compute;

/// <summary>
/// The finished jobs this peer supervises, swept on a timer whether anyone reads them or not: after
/// <see cref="ComputeOptions.JobRetention"/> a job's result is dropped and it reads as expired; the
/// oldest go first when their results pass <see cref="ComputeOptions.MaxRetainedResultBytes"/>; an
/// expired record is deleted after one more retention period, and then the job is unknown. The sweep
/// calls each job's grain, so a deactivated job (whose record is only in storage, memory or
/// PostgreSQL) expires the same way as an active one.
/// </summary>
/// <remarks>
/// A job is tracked by the silo where its grain last finished or woke up (its origin, normally).
/// A record whose silo restarts is tracked again when it is next read; in <c>postgres</c> mode
/// <see cref="StoredJobSweep"/> reads such records from storage and expires them unread.
/// </remarks>
public sealed partial class RetainedJobs : IDisposable
{
    private readonly IGrainFactory _grains;
    private readonly PeerIdentity _identity;
    private readonly TimeProvider _time;
    private readonly ILogger<RetainedJobs> _logger;
    private readonly TimeSpan _retention;
    private readonly long _maxBytes;
    private readonly ITimer _timer;
    private readonly object _gate = new();
    private readonly Dictionary<string, (DateTime FinishedUtc, long Bytes)> _finished = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DateTime> _expired = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _sweeping = new(1, 1);
    private long _bytes;

    public RetainedJobs(IGrainFactory grains, PeerIdentity identity, IOptions<ComputeOptions> options, TimeProvider time, ILogger<RetainedJobs> logger)
    {
        _grains = grains;
        _identity = identity;
        _time = time;
        _logger = logger;
        _retention = options.Value.JobRetention;
        _maxBytes = options.Value.MaxRetainedResultBytes;
        var period = JobStore.SweepPeriod(_retention);
        _timer = time.CreateTimer(_ => _ = SweepAsync(), null, period, period);
    }

    /// <summary>Result, output and error bytes of the finished jobs tracked here.</summary>
    public long RetainedBytes
    {
        get
        {
            lock (_gate) return _bytes;
        }
    }

    /// <summary>What a finished record holds that can be large: its result, output and error, in UTF-8 bytes.</summary>
    public static long ResultBytes(JobInfo info) =>
        Utf8(info.ResultJson) + Utf8(info.Output) + Utf8(info.Error);

    /// <summary>A retention as people say it: "24 h", "90 min", "2 s".</summary>
    public static string Describe(TimeSpan span) => span switch
    {
        { TotalHours: >= 1 } when span.Ticks % TimeSpan.TicksPerHour == 0 => $"{span.TotalHours:0} h",
        { TotalMinutes: >= 1 } when span.Ticks % TimeSpan.TicksPerMinute == 0 => $"{span.TotalMinutes:0} min",
        _ => $"{span.TotalSeconds:0.###} s",
    };

    public string RetentionReason => RetentionReasonFor(_retention);

    /// <summary>Why a job expired after <paramref name="retention"/>, as <c>job get</c> says it.</summary>
    public static string RetentionReasonFor(TimeSpan retention) => $"finished jobs are kept for {Describe(retention)}";

    /// <summary>A job supervised here ended (or woke up ended) holding <paramref name="info"/>.</summary>
    public void Finished(string jobId, JobInfo info)
    {
        var bytes = ResultBytes(info);
        lock (_gate)
        {
            if (_expired.ContainsKey(jobId)) return;
            if (_finished.Remove(jobId, out var old)) _bytes -= old.Bytes;
            _finished[jobId] = (info.FinishedUtc ?? Now(), bytes);
            _bytes += bytes;
        }

        if (Volatile.Read(ref _bytes) > _maxBytes) _ = SweepAsync();
    }

    /// <summary>A job supervised here now reads as expired since <paramref name="expiredUtc"/>.</summary>
    public void Expired(string jobId, DateTime expiredUtc)
    {
        lock (_gate)
        {
            if (_finished.Remove(jobId, out var old)) _bytes -= old.Bytes;
            _expired[jobId] = expiredUtc;
        }
    }

    /// <summary>A job's record was deleted.</summary>
    public void Forgotten(string jobId)
    {
        lock (_gate)
        {
            if (_finished.Remove(jobId, out var old)) _bytes -= old.Bytes;
            _expired.Remove(jobId);
        }
    }

    /// <summary>Expires what is due and what is over the cap, then deletes what has read as expired long enough.</summary>
    public async Task SweepAsync()
    {
        // One sweep at a time; a sweep asked for meanwhile is covered by the one running or the next tick.
        if (!await _sweeping.WaitAsync(0)) return;
        try
        {
            foreach (var (jobId, reason) in Due())
            {
                try
                {
                    await _grains.GetGrain<IJobGrain>(jobId).ExpireAsync(reason);
                }
                catch (Exception ex)
                {
                    // Tried again on the next tick; a job never stays past its time for long.
                    LogExpireFailed(jobId, ex.Message);
                }
            }
        }
        finally
        {
            _sweeping.Release();
        }
    }

    public void Dispose()
    {
        _timer.Dispose();
        _sweeping.Dispose();
    }

    private List<(string JobId, string Reason)> Due()
    {
        var now = Now();
        var cutoff = now - _retention;
        var due = new List<(string, string)>();
        lock (_gate)
        {
            foreach (var (jobId, entry) in _finished)
                if (entry.FinishedUtc < cutoff) due.Add((jobId, RetentionReason));
            foreach (var (jobId, expiredUtc) in _expired)
                if (expiredUtc < cutoff) due.Add((jobId, RetentionReason));

            var excess = _bytes - _maxBytes;
            if (excess > 0)
            {
                var capReason = $"peer '{_identity.Name}' keeps at most {Bytes.Format(_maxBytes)} of finished jobs' results and dropped the oldest";
                // The newest is always kept: the options make sure one result fits.
                foreach (var (jobId, entry) in _finished.OrderBy(e => e.Value.FinishedUtc).SkipLast(1))
                {
                    if (excess <= 0) break;
                    if (entry.FinishedUtc < cutoff) continue; // due anyway
                    due.Add((jobId, capReason));
                    excess -= entry.Bytes;
                }
            }
        }

        return due;
    }

    private static long Utf8(string? text) => string.IsNullOrEmpty(text) ? 0 : Encoding.UTF8.GetByteCount(text);

    private DateTime Now() => _time.GetUtcNow().UtcDateTime;

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not expire the record of job {JobId}: {Reason}")]
    private partial void LogExpireFailed(string jobId, string reason);
}
