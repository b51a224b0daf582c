using System.Diagnostics.Metrics;
using P2PShare.Compute;

namespace P2PShare.Telemetry;

/// <summary>
/// The peer's own metrics, on one <see cref="Meter"/> named <see cref="MeterName"/> made by the
/// silo's <see cref="IMeterFactory"/> (so each silo's instruments are its own, even when several
/// silos share a process). Names follow OpenTelemetry's conventions (dotted, units in UCUM); the
/// Prometheus exporter renders <c>p2pshare.tasks.submitted</c> as <c>p2pshare_tasks_submitted_total</c>.
/// </summary>
/// <remarks>
/// Where each is counted: submissions, job outcomes and routing on the origin peer (the job's
/// supervisor lives there); queue and run times on the peer that executed the attempt; worker
/// restarts, file bytes and the gauges on the peer they describe. Summed over peers they are the
/// cluster's totals.
/// </remarks>
public sealed class P2PShareMetrics : IDisposable
{
    public const string MeterName = "P2PShare";

    // Queue waits and task runs span milliseconds to an hour; the SDK's default buckets stop at 10 s.
    private static readonly double[] DurationBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

    private readonly Counter<long> _submitted;
    private readonly Counter<long> _completed;
    private readonly Counter<long> _failed;
    private readonly Histogram<double> _queueDuration;
    private readonly Histogram<double> _runDuration;
    private readonly Counter<long> _workerRestarts;
    private readonly Counter<long> _fileBytes;
    private readonly Counter<long> _routing;

    // Attribute values computed once: these are recorded several times per task, and building the
    // snake_case name (enum ToString, a StringBuilder) and boxing a bool each time was per-task garbage.
    private readonly Dictionary<JobStatus, string> _statusNames = SnakeNames<JobStatus>();
    private readonly Dictionary<TaskErrorKind, string> _errorNames = SnakeNames<TaskErrorKind>();
    private readonly Dictionary<RoutingOutcome, string> _routingNames = SnakeNames<RoutingOutcome>();
    private readonly object _true = true;
    private readonly object _false = false;

    public P2PShareMetrics(IMeterFactory meters)
    {
        Meter = meters.Create(new MeterOptions(MeterName) { Version = typeof(P2PShareMetrics).Assembly.GetName().Version?.ToString() });
        _submitted = Meter.CreateCounter<long>("p2pshare.tasks.submitted", "{task}", "Tasks submitted with this peer as their origin");
        _completed = Meter.CreateCounter<long>("p2pshare.tasks.completed", "{task}", "Jobs of this origin that ended, by final status");
        _failed = Meter.CreateCounter<long>("p2pshare.tasks.failed", "{task}", "Jobs of this origin that ended without a result, by error kind");
        _queueDuration = Meter.CreateHistogram("p2pshare.task.queue.duration", "s",
            "Time an attempt executed here waited from arrival (compilation included) until it got a slot",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        _runDuration = Meter.CreateHistogram("p2pshare.task.run.duration", "s",
            "Slot time of an attempt executed here (paused time excluded)",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        _workerRestarts = Meter.CreateCounter<long>("p2pshare.workers.restarts", "{worker}",
            "Worker processes replaced because they died or were killed (crash, timeout, cancel, out of memory)");
        _fileBytes = Meter.CreateCounter<long>("p2pshare.file.transferred", "By", "File bytes uploaded to (in) or downloaded from (out) this peer");
        _routing = Meter.CreateCounter<long>("p2pshare.routing.decisions", "{decision}", "Where this origin sent task attempts");
    }

    public Meter Meter { get; }

    public void TaskSubmitted(TaskSpec task) =>
        _submitted.Add(1, new KeyValuePair<string, object?>("language", task.Language), new KeyValuePair<string, object?>("confidential", task.Confidential ? _true : _false));

    /// <summary>A job ended (on its origin): counted once, with its final status and error kind.</summary>
    public void JobEnded(JobInfo job)
    {
        _completed.Add(1, new KeyValuePair<string, object?>("status", NameOf(_statusNames, job.Status)));
        if (job.Status != JobStatus.Succeeded)
            _failed.Add(1, new KeyValuePair<string, object?>("error.type", NameOf(_errorNames, job.ErrorKind)));
    }

    /// <summary>An attempt executed on this peer ended.</summary>
    public void AttemptFinished(JobInfo attempt)
    {
        var status = new KeyValuePair<string, object?>("status", NameOf(_statusNames, attempt.Status));
        _queueDuration.Record(attempt.QueueMs / 1000, status);
        if (attempt.StartedUtc is not null) _runDuration.Record(attempt.RunMs / 1000, status);
    }

    public void WorkerRestarted(string language) => _workerRestarts.Add(1, new KeyValuePair<string, object?>("language", language));

    public void FileBytesIn(long bytes) => _fileBytes.Add(bytes, new KeyValuePair<string, object?>("direction", "in"));

    public void FileBytesOut(long bytes) => _fileBytes.Add(bytes, new KeyValuePair<string, object?>("direction", "out"));

    public void Routed(RoutingOutcome outcome) => _routing.Add(1, new KeyValuePair<string, object?>("outcome", NameOf(_routingNames, outcome)));

    public void Dispose() => Meter.Dispose();

    private static Dictionary<T, string> SnakeNames<T>()
        where T : struct, Enum =>
        Enum.GetValues<T>().Distinct().ToDictionary(v => v, v => Snake(v.ToString()));

    // A value outside the enum (a newer peer's) still gets a name, the slow way.
    private static string NameOf<T>(Dictionary<T, string> names, T value)
        where T : struct, Enum =>
        names.TryGetValue(value, out var name) ? name : Snake(value.ToString());

    /// <summary><c>TimedOut</c> → <c>timed_out</c>: attribute values in the conventions' style.</summary>
    internal static string Snake(string pascal)
    {
        var builder = new System.Text.StringBuilder(pascal.Length + 4);
        for (var i = 0; i < pascal.Length; i++)
        {
            var c = pascal[i];
            if (char.IsUpper(c) && i > 0) builder.Append('_');
            builder.Append(char.ToLowerInvariant(c));
        }

        return builder.ToString();
    }
}

/// <summary>How an origin placed one attempt of a task (<c>p2pshare.routing.decisions</c>, attribute <c>outcome</c>).</summary>
public enum RoutingOutcome
{
    /// <summary>A confidential task: it runs on its origin; the tracker is not asked.</summary>
    Origin,
    /// <summary>Sent to the peer the submitter pinned (<c>--on</c>).</summary>
    Pinned,
    /// <summary>Sent to the least-loaded peer the tracker picked.</summary>
    LeastLoaded,
    /// <summary>The tracker's pick could not take it (stopping, dead, workers broken); the next pick is tried.</summary>
    PeerRefused,
    /// <summary>The tracker knew no live peer that could run it.</summary>
    NoPeer,
}
