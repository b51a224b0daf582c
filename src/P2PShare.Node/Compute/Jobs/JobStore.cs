using System.Collections.Concurrent;
using P2PShare.Telemetry;

namespace P2PShare.Compute;

/// <summary>
/// The records of the job attempts this peer executes, keyed by job id and attempt number. They
/// live in the silo, so an attempt's result waits here until the job's supervisor collects it,
/// even across a deactivation of either grain; finished ones are dropped after
/// <see cref="ComputeOptions.JobRetention"/>.
/// </summary>
public sealed class JobStore : IDisposable
{
    private readonly ConcurrentDictionary<string, JobRecord> _jobs = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly TimeSpan _retention;
    private readonly ITimer _sweeper;
    private readonly P2PShareMetrics? _metrics;

    public JobStore(IOptions<ComputeOptions> options, TimeProvider time, P2PShareMetrics? metrics = null)
    {
        _time = time;
        _metrics = metrics;
        _retention = options.Value.JobRetention;
        var period = TimeSpan.FromMinutes(1);
        _sweeper = time.CreateTimer(_ => Sweep(), null, period, period);
    }

    public JobRecord Create(JobAssignment assignment, string executedBy)
    {
        var record = new JobRecord(assignment, executedBy, Now());
        var key = Key(assignment.JobId, assignment.Attempt);
        if (!_jobs.TryAdd(key, record)) throw new InvalidOperationException($"duplicate job attempt {key}");
        if (_metrics is { } metrics)
            record.Finished.ContinueWith(t => metrics.AttemptFinished(t.Result), CancellationToken.None,
                TaskContinuationOptions.OnlyOnRanToCompletion | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return record;
    }

    public JobRecord? TryGet(string jobId, int attempt) => _jobs.GetValueOrDefault(Key(jobId, attempt));

    public JobRecord Get(string jobId, int attempt) =>
        TryGet(jobId, attempt) ?? throw new NotFoundException("job attempt", Key(jobId, attempt));

    private static string Key(string jobId, int attempt) => $"{jobId}#{attempt}";

    public IReadOnlyList<JobInfo> Recent(int limit) =>
        _jobs.Values.Select(r => r.Snapshot()).OrderByDescending(j => j.SubmittedUtc).Take(limit).ToList();

    /// <summary>Drops finished records older than the retention time. Returns how many.</summary>
    public int Sweep()
    {
        var cutoff = Now() - _retention;
        var removed = 0;
        foreach (var (id, record) in _jobs)
        {
            var info = record.Snapshot();
            if (info.IsTerminal && info.FinishedUtc < cutoff && _jobs.TryRemove(id, out _)) removed++;
        }

        return removed;
    }

    public void Dispose() => _sweeper.Dispose();

    private DateTime Now() => _time.GetUtcNow().UtcDateTime;
}

/// <summary>One job's mutable state; every read is a consistent <see cref="JobInfo"/> snapshot.</summary>
public sealed class JobRecord
{
    private readonly object _gate = new();
    private readonly TaskCompletionSource<JobInfo> _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private JobInfo _info;

    public JobRecord(JobAssignment assignment, string executedBy, DateTime now)
    {
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

        _finished.TrySetResult(final);
        return true;
    }
}
