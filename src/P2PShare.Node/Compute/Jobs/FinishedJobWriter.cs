using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Storage;

namespace P2PShare.Compute;

/// <summary>
/// In <c>postgres</c> mode, writes the records of finished fast-path jobs into the job storage that
/// <see cref="JobGrain"/> reads, in one flush per <see cref="FlushPeriod"/> of every job that ended
/// since, so <c>job get</c> answers after their origin died and no task pays for a write while it runs.
/// </summary>
/// <remarks>
/// A job's record is written by nobody else: its grain never had it (a promoted job is written by its
/// grain and never comes here). The rows are written as the grain writes them, so the stored-record
/// sweep (<see cref="StoredJobSweep"/>) expires them like any other. A job that ends less than a flush
/// before its origin dies is lost from storage; the origin's memory had it, and it is gone with it.
/// </remarks>
public sealed partial class FinishedJobWriter : ILifecycleParticipant<ISiloLifecycle>, IDisposable
{
    /// <summary>How often the jobs finished since the last flush are written.</summary>
    public static readonly TimeSpan FlushPeriod = TimeSpan.FromSeconds(1);

    /// <summary>Rows written at once during a flush.</summary>
    private const int Parallelism = 8;

    // The state name of JobGrain's [PersistentState]; the storage keys its rows by it.
    private const string StateName = "job";

    private readonly IGrainStorage _storage;
    private readonly IGrainFactory _grains;
    private readonly TimeProvider _time;
    private readonly ILogger<FinishedJobWriter> _logger;
    private readonly ConcurrentQueue<(string JobId, JobState State)> _pending = new();
    private readonly SemaphoreSlim _flushing = new(1, 1);
    private ITimer? _timer;

    public FinishedJobWriter(IServiceProvider services, IGrainFactory grains, TimeProvider time, ILogger<FinishedJobWriter> logger)
    {
        _storage = services.GetRequiredKeyedService<IGrainStorage>(StorageNames.Jobs);
        _grains = grains;
        _time = time;
        _logger = logger;
    }

    /// <summary>Records waiting for the next flush.</summary>
    public int Pending => _pending.Count;

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(FinishedJobWriter), ServiceLifecycleStage.Active, _ => Start(), _ => FlushAsync());

    /// <summary>Queues the final record of a fast job for the next flush.</summary>
    internal void Add(FastJob job, JobInfo final)
    {
        var spec = job.Spec;
        var state = new JobState
        {
            Origin = final.Origin,
            // As the grain stores it: a confidential task's program and arguments never leave the origin's memory.
            Spec = spec.Confidential ? spec with { Program = "", ArgsJson = "[]" } : spec,
            Attempts = [.. final.Attempts],
            Current = final with { Attempts = [] },
        };
        _pending.Enqueue((job.JobId, state));
    }

    /// <summary>Writes every queued record; returns how many were written.</summary>
    public async Task<int> FlushAsync()
    {
        await _flushing.WaitAsync().ConfigureAwait(false);
        try
        {
            var batch = new List<(string JobId, JobState State)>(_pending.Count);
            while (_pending.TryDequeue(out var item)) batch.Add(item);
            if (batch.Count == 0) return 0;
            var written = 0;
            await Parallel.ForEachAsync(batch, new ParallelOptions { MaxDegreeOfParallelism = Parallelism }, async (item, _) =>
            {
                try
                {
                    var id = _grains.GetJob(item.JobId).GetGrainId();
                    await _storage.WriteStateAsync(StateName, id, new GrainState<JobState>(item.State)).ConfigureAwait(false);
                    Interlocked.Increment(ref written);
                }
                catch (Exception ex)
                {
                    // The origin still answers for it from memory; only its survival of the origin is lost.
                    LogWriteFailed(item.JobId, ex.Message);
                }
            }).ConfigureAwait(false);
            return written;
        }
        finally
        {
            _flushing.Release();
        }
    }

    public void Dispose() => _timer?.Dispose();

    private Task Start()
    {
        _timer = _time.CreateTimer(_ => _ = FlushAsync(), null, FlushPeriod, FlushPeriod);
        return Task.CompletedTask;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not store the record of finished job {JobId}: {Reason}")]
    private partial void LogWriteFailed(string jobId, string reason);
}
