using Npgsql;
using NpgsqlTypes;
using Orleans.Configuration;

namespace P2PShare.Compute;

/// <summary>
/// In <c>postgres</c> mode, the sweep of the job records no silo tracks any more: a record whose
/// supervising silo restarted or died is in no <see cref="RetainedJobs"/>, so on a timer each silo
/// reads from storage the jobs whose record was last written longer than
/// <see cref="ComputeOptions.JobRetention"/> ago and calls <see cref="IJobGrain.ExpireAsync"/> on
/// them. The grain's own rules decide: a finished job expires, an expired one is forgotten (its row
/// deleted) one retention later, a running job is left alone.
/// </summary>
/// <remarks>
/// Every silo sweeps; two silos calling the same job is harmless (the grain's turns serialise the
/// calls and the second finds nothing to do), and a random first delay spreads their ticks. A
/// record is rewritten when the job starts, at each attempt and at its end, so its age is never
/// less than its time since the job finished: the sweep can only be late, never early. Batches
/// walk the table in (modified_at, id) order and start over when they reach its end, so records
/// that stay (running jobs, grains that fail) never hide the others.
/// </remarks>
public sealed partial class StoredJobSweep : ILifecycleParticipant<ISiloLifecycle>, IDisposable
{
    /// <summary>Grain calls per tick, so one tick on a large backlog stays short.</summary>
    public const int BatchSize = 200;

    // The ADO.NET grain storage writes JobGrain's records with this grain_type (checked by
    // StoredJobSweepTests against a real record).
    private const string GrainType = "job";

    private const string DueSql = """
        SELECT grain_id_extension, modified_at
          FROM p2pshare_grain_state
         WHERE service_id = @service AND grain_type = @type AND payload IS NOT NULL
           AND modified_at < now() - @retention
           AND (@after_time IS NULL OR (modified_at, grain_id_extension) > (@after_time, @after_id))
         ORDER BY modified_at, grain_id_extension
         LIMIT @batch
        """;

    private readonly string _connectionString;
    private readonly IGrainFactory _grains;
    private readonly TimeProvider _time;
    private readonly ILogger<StoredJobSweep> _logger;
    private readonly string _serviceId;
    private readonly TimeSpan _retention;
    private readonly SemaphoreSlim _sweeping = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private ITimer? _timer;
    private (DateTime ModifiedUtc, string JobId)? _cursor;

    public StoredJobSweep(string connectionString, IGrainFactory grains, IOptions<ClusterOptions> cluster,
        IOptions<ComputeOptions> options, TimeProvider time, ILogger<StoredJobSweep> logger)
    {
        _connectionString = connectionString;
        _grains = grains;
        _time = time;
        _logger = logger;
        _serviceId = cluster.Value.ServiceId;
        _retention = options.Value.JobRetention;
    }

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(StoredJobSweep), ServiceLifecycleStage.Active, _ => Start(), _ => Stop());

    /// <summary>Expires (or forgets) up to <see cref="BatchSize"/> stored jobs past their retention; returns how many it called.</summary>
    public async Task<int> SweepAsync()
    {
        // One sweep at a time; a tick that finds one running is covered by it or by the next tick.
        if (!await _sweeping.WaitAsync(0)) return 0;
        try
        {
            var due = await ReadDueAsync(_stopping.Token);
            _cursor = due.Count < BatchSize ? null : due[^1];
            foreach (var (_, jobId) in due)
            {
                if (_stopping.IsCancellationRequested) break;
                try
                {
                    await _grains.GetGrain<IJobGrain>(jobId).ExpireAsync(RetainedJobs.RetentionReasonFor(_retention));
                }
                catch (Exception ex)
                {
                    // Its row stays due: tried again when the walk comes round.
                    LogExpireFailed(jobId, ex.Message);
                }
            }

            return due.Count;
        }
        catch (Exception ex) when (!_stopping.IsCancellationRequested)
        {
            LogReadFailed(ex.Message);
            return 0;
        }
        catch (OperationCanceledException)
        {
            return 0;
        }
        finally
        {
            _sweeping.Release();
        }
    }

    // Disposed twice (as itself and as a lifecycle participant): the token source, which holds no
    // timer, is only cancelled, so a second call and a sweep still finishing find it usable.
    public void Dispose() => Stop();

    private Task Start()
    {
        var period = JobStore.SweepPeriod(_retention);
        var firstDelay = TimeSpan.FromTicks((long)(period.Ticks * Random.Shared.NextDouble()));
        _timer = _time.CreateTimer(_ => _ = SweepAsync(), null, firstDelay, period);
        return Task.CompletedTask;
    }

    private Task Stop()
    {
        _timer?.Dispose();
        _stopping.Cancel();
        return Task.CompletedTask;
    }

    private async Task<List<(DateTime ModifiedUtc, string JobId)>> ReadDueAsync(CancellationToken cancellation)
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync(cancellation);
        await using var command = new NpgsqlCommand(DueSql, connection);
        command.Parameters.AddWithValue("service", _serviceId);
        command.Parameters.AddWithValue("type", GrainType);
        command.Parameters.AddWithValue("retention", NpgsqlDbType.Interval, _retention);
        command.Parameters.Add(new NpgsqlParameter("after_time", NpgsqlDbType.TimestampTz) { Value = _cursor is { } c ? c.ModifiedUtc : DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter("after_id", NpgsqlDbType.Text) { Value = _cursor is { } d ? d.JobId : DBNull.Value });
        command.Parameters.AddWithValue("batch", BatchSize);
        var due = new List<(DateTime, string)>();
        await using var reader = await command.ExecuteReaderAsync(cancellation);
        while (await reader.ReadAsync(cancellation))
            due.Add((reader.GetFieldValue<DateTime>(1), reader.GetString(0)));
        return due;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not expire the stored record of job {JobId}: {Reason}")]
    private partial void LogExpireFailed(string jobId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not read the stored job records due for expiry: {Reason}")]
    private partial void LogReadFailed(string reason);
}
