namespace P2PShare.Compute;

/// <summary>No worker process could be started; the message says why, for the user.</summary>
internal sealed class WorkerPoolBrokenException(string reason, Exception? inner = null)
    : Exception($"worker processes cannot start on this peer: {reason}", inner)
{
    public string Reason { get; } = reason;
}

/// <summary>
/// Keeps <c>WarmWorkers</c> idle worker processes started ahead, hands them out, and takes them back:
/// a worker that died, or that has loaded too many distinct programs (each load leaks memory in the
/// worker), is disposed and replaced instead of reused. When the factory fails the pool is
/// <see cref="IsBroken"/>: rentals fail fast with the reason instead of hammering the factory, and a
/// background probe retries with exponential back-off until a worker starts again.
/// </summary>
/// <remarks>
/// <para><b>One trust domain per process.</b> A worker is bound to the submitter of the first task it
/// is rented for and never runs another submitter's task: what a task leaves behind in its process
/// (continuations, timers, changed statics, files in its tmpfs) can only meet its own submitter's
/// later tasks. Warm workers started ahead are unbound until their first rental.</para>
/// <para><b>Idle workers use no CPU.</b> A worker that comes back from a task is frozen (the cgroup
/// freezer behind the wall, SIGSTOP otherwise) before it is parked, and thawed when its submitter's
/// next task takes it, so work a task left running does not run outside any slot. A bound worker
/// idle for <c>Compute:IdleWorkerTimeout</c> is discarded; when the pool is full, a new submitter's
/// worker takes the place of the coldest idle worker of another submitter.</para>
/// </remarks>
internal sealed partial class WorkerPool : IAsyncDisposable
{
    /// <summary>A worker that has not answered by then is treated as a failed start.</summary>
    internal static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LongestRetryDelay = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan LongestSweepPeriod = TimeSpan.FromSeconds(5);

    private readonly object _gate = new();
    // Oldest first; rented from the end (LIFO): the most recently used worker has the most programs
    // cached and the coldest is trimmed.
    private readonly List<IdleWorker> _idle = [];
    // Every live worker that ran (or was rented for) a task, idle or rented, and whose it is.
    private readonly Dictionary<IWorker, string> _boundTo = new(ReferenceEqualityComparer.Instance);
    private readonly IWorkerFactory _factory;
    private readonly int _warmWorkers;
    private readonly int _maxIdle;
    private readonly int _maxWorkers;
    private readonly int _recycleAfterPrograms;
    private readonly TimeSpan _idleTimeout;
    private readonly TimeProvider _time;
    private readonly Telemetry.P2PShareMetrics? _metrics;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _disposing = new();
    private readonly ITimer _sweeper;
    private readonly TimeSpan _freezeAfter;
    // One timer for all idle workers still thawed, armed only while there is one.
    private readonly ITimer _freezer;
    private bool _freezerArmed;
    private int _warming;
    private int _rented;
    private string? _failure;
    private TimeSpan _retryDelay;
    private long _retryAt;
    private bool _retryScheduled;
    private bool _disposed;

    /// <param name="maxWorkers">
    /// Workers (rented, idle and starting) above which a rental that must start a worker first discards
    /// the coldest idle worker bound to another submitter.
    /// </param>
    /// <param name="idleTimeout">How long a bound worker is kept idle for its submitter's next task.</param>
    /// <param name="freezeAfter">How long a returned worker stays thawed before it is frozen; zero freezes it at once.</param>
    public WorkerPool(IWorkerFactory factory, int warmWorkers, int maxIdle, int maxWorkers, int recycleAfterPrograms, TimeSpan idleTimeout,
        TimeProvider time, ILogger logger, Telemetry.P2PShareMetrics? metrics = null, TimeSpan freezeAfter = default)
    {
        _freezeAfter = freezeAfter > TimeSpan.Zero ? freezeAfter : TimeSpan.Zero;
        _freezer = time.CreateTimer(static pool => ((WorkerPool)pool!).FreezeIdle(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _factory = factory;
        _warmWorkers = Math.Max(0, warmWorkers);
        _maxIdle = Math.Max(_warmWorkers, maxIdle);
        _maxWorkers = Math.Max(1, maxWorkers);
        _recycleAfterPrograms = Math.Max(1, recycleAfterPrograms);
        _idleTimeout = idleTimeout > TimeSpan.Zero ? idleTimeout : TimeSpan.FromMilliseconds(1);
        _time = time;
        _logger = logger;
        _metrics = metrics;
        var period = _idleTimeout / 4 < LongestSweepPeriod ? _idleTimeout / 4 : LongestSweepPeriod;
        _sweeper = time.CreateTimer(static pool => ((WorkerPool)pool!).DiscardExpired(), this, period, period);
    }

    /// <summary>Raised when the pool becomes broken or recovers.</summary>
    public event Action? HealthChanged;

    /// <summary>Why the last worker start failed; null while workers start fine.</summary>
    public string? Failure
    {
        get { lock (_gate) return _failure; }
    }

    public bool IsBroken => Failure is not null;

    public int IdleCount
    {
        get { lock (_gate) return _idle.Count; }
    }

    /// <summary>The submitter <paramref name="worker"/> is bound to; null while it is unbound (warm, never rented) or gone.</summary>
    public string? BoundTo(IWorker worker)
    {
        lock (_gate) return _boundTo.GetValueOrDefault(worker);
    }

    /// <summary>
    /// A healthy idle worker of <paramref name="submitter"/> (thawed), else an unbound warm one (bound
    /// to them from now on), else a newly started one. Never a worker bound to someone else.
    /// </summary>
    /// <exception cref="WorkerPoolBrokenException">The factory failed, now or within the back-off.</exception>
    public async Task<IWorker> RentAsync(string submitter, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(submitter);
        var stale = new List<(IWorker Worker, string Reason)>();
        try
        {
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (TakeIdleLocked(submitter, stale) is { } idle)
                {
                    _rented++;
                    _boundTo[idle.Worker] = submitter;
                    // Its submitter's next task: let what the last one left running run again with it.
                    if (idle.Frozen) idle.Worker.Thaw();
                    StartWarmingLocked();
                    return idle.Worker;
                }

                if (_failure is not null && _time.GetTimestamp() < _retryAt)
                    throw new WorkerPoolBrokenException(_failure);
                if (_rented + _idle.Count + _warming >= _maxWorkers && ColdestIdleIndexLocked(otherThan: submitter) is var coldest && coldest >= 0)
                {
                    stale.Add((_idle[coldest].Worker, "a worker for another submitter needs its place"));
                    _idle.RemoveAt(coldest);
                }

                _rented++;
            }
        }
        finally
        {
            foreach (var (worker, reason) in stale) Retire(worker, reason);
        }

        IWorker started;
        try
        {
            started = await StartWorkerAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            lock (_gate) _rented--;
            throw;
        }

        lock (_gate) _boundTo[started] = submitter;
        Refill();
        return started;
    }

    /// <summary>
    /// Takes back a worker after a run; keeps it, frozen and still bound to its submitter, only if it is
    /// healthy, fresh enough and needed.
    /// </summary>
    public void Return(IWorker worker)
    {
        string? retireBecause;
        IWorker? trimmed = null;
        lock (_gate)
        {
            _rented--;
            var submitter = _boundTo.GetValueOrDefault(worker);
            retireBecause =
                _disposed ? "the pool is shutting down"
                : !worker.IsHealthy ? "it is no longer healthy"
                : worker.ProgramsLoaded >= _recycleAfterPrograms ? $"it loaded {worker.ProgramsLoaded} distinct programs"
                : _maxIdle == 0 ? "no idle workers are kept"
                : submitter is null ? "it is bound to no submitter"
                : null;
            if (retireBecause is null)
            {
                // Under rotation the same submitter's next task often comes back within moments: the
                // freeze waits for the grace, so such a worker is neither frozen nor thawed (two cgroup
                // writes or signals) per task. What its last task left running runs at most that long.
                var frozen = _freezeAfter == TimeSpan.Zero;
                // Frozen before anyone can rent it, so it never runs a task frozen: under the lock.
                if (frozen)
                {
                    worker.Freeze();
                }
                else if (!_freezerArmed)
                {
                    _freezerArmed = true;
                    _freezer.Change(_freezeAfter, Timeout.InfiniteTimeSpan);
                }

                _idle.Add(new IdleWorker(worker, submitter, _time.GetTimestamp(), frozen));
                if (_idle.Count > _maxIdle)
                {
                    var coldest = ColdestIdleIndexLocked(otherThan: null);
                    trimmed = _idle[coldest].Worker;
                    _idle.RemoveAt(coldest);
                }
            }
        }

        if (retireBecause is not null) Retire(worker, retireBecause);
        if (trimmed is not null) Retire(trimmed, "enough workers are idle");
        Refill();
    }

    /// <summary>
    /// Whether a rented worker may go straight on with its submitter's next task instead of coming
    /// back: the same rules as <see cref="Return"/> keeping it.
    /// </summary>
    public bool CanKeep(IWorker worker)
    {
        lock (_gate) return !_disposed && worker.IsHealthy && worker.ProgramsLoaded < _recycleAfterPrograms && _boundTo.ContainsKey(worker);
    }

    /// <summary>Disposes a rented worker that must not be reused (killed for a timeout or a cancel).</summary>
    public void Discard(IWorker worker, string reason)
    {
        lock (_gate) _rented--;
        Retire(worker, reason);
        Refill();
    }

    /// <summary>The newest healthy idle worker of <paramref name="submitter"/>, else the newest unbound one; removed from the idle list.</summary>
    private IdleWorker? TakeIdleLocked(string submitter, List<(IWorker, string)> stale)
    {
        for (var i = _idle.Count - 1; i >= 0; i--)
        {
            if (_idle[i].Worker.IsHealthy) continue;
            stale.Add((_idle[i].Worker, "it died while idle"));
            _idle.RemoveAt(i);
        }

        var pick = _idle.FindLastIndex(w => w.Submitter == submitter);
        if (pick < 0) pick = _idle.FindLastIndex(w => w.Submitter is null);
        if (pick < 0) return null;
        var idle = _idle[pick];
        _idle.RemoveAt(pick);
        return idle;
    }

    /// <summary>
    /// The coldest idle worker to give up: bound ones first (of anyone but <paramref name="otherThan"/>
    /// when set), unbound warm ones only when trimming and no bound one is idle; -1 when there is none.
    /// </summary>
    private int ColdestIdleIndexLocked(string? otherThan)
    {
        var bound = _idle.FindIndex(w => w.Submitter is not null && w.Submitter != otherThan);
        if (bound >= 0 || otherThan is not null) return bound;
        return _idle.Count > 0 ? 0 : -1;
    }

    /// <summary>Freezes bound idle workers thawed for the grace; re-arms for the next one still within it.</summary>
    internal void FreezeIdle()
    {
        lock (_gate)
        {
            _freezerArmed = false;
            if (_disposed) return;
            var now = _time.GetTimestamp();
            var nextDue = TimeSpan.MaxValue;
            for (var i = 0; i < _idle.Count; i++)
            {
                var idle = _idle[i];
                if (idle.Frozen || idle.Submitter is null) continue;
                var idleFor = _time.GetElapsedTime(idle.Since, now);
                if (idleFor >= _freezeAfter)
                {
                    idle.Worker.Freeze();
                    _idle[i] = idle with { Frozen = true };
                }
                else if (_freezeAfter - idleFor < nextDue)
                {
                    nextDue = _freezeAfter - idleFor;
                }
            }

            if (nextDue != TimeSpan.MaxValue)
            {
                _freezerArmed = true;
                _freezer.Change(nextDue, Timeout.InfiniteTimeSpan);
            }
        }
    }

    /// <summary>Discards bound workers idle for longer than <c>Compute:IdleWorkerTimeout</c>: their submitter's queue stayed empty.</summary>
    internal void DiscardExpired()
    {
        List<IWorker>? expired = null;
        lock (_gate)
        {
            if (_disposed) return;
            var now = _time.GetTimestamp();
            for (var i = _idle.Count - 1; i >= 0; i--)
            {
                var idle = _idle[i];
                if (idle.Submitter is null || _time.GetElapsedTime(idle.Since, now) < _idleTimeout) continue;
                (expired ??= []).Add(idle.Worker);
                _idle.RemoveAt(i);
            }
        }

        if (expired is null) return;
        foreach (var worker in expired) Retire(worker, $"its submitter sent no task for {ComputeScheduler.Describe(_idleTimeout)}");
        Refill();
    }

    /// <summary>Starts workers in the background until <c>WarmWorkers</c> are idle (or one probe while broken).</summary>
    public void Refill()
    {
        lock (_gate) StartWarmingLocked();
    }

    /// <param name="probe">The back-off elapsed: try one start while broken even if the clock says "not yet".</param>
    private void StartWarmingLocked(bool probe = false)
    {
        if (_disposed) return;
        int toStart;
        if (_failure is null)
            toStart = _warmWorkers - _idle.Count(w => w.Submitter is null) - _warming;
        else
            toStart = _warming == 0 && (probe || _time.GetTimestamp() >= _retryAt) ? 1 : 0;

        for (var i = 0; i < toStart; i++)
        {
            _warming++;
            _ = Task.Run(WarmOneAsync);
        }
    }

    private async Task WarmOneAsync()
    {
        IWorker worker;
        try
        {
            worker = await StartWorkerAsync(_disposing.Token).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // StartWorkerAsync recorded and logged the failure and scheduled the retry.
            lock (_gate) _warming--;
            return;
        }

        bool keep;
        lock (_gate)
        {
            _warming--;
            keep = !_disposed;
            if (keep) _idle.Add(new IdleWorker(worker, null, _time.GetTimestamp(), Frozen: false));
        }

        if (!keep) Retire(worker, "the pool is shutting down");
        Refill();
    }

    private async Task<IWorker> StartWorkerAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposing.Token);
        timeout.CancelAfter(StartTimeout);
        IWorker worker;
        try
        {
            worker = await _factory.StartAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && !_disposing.IsCancellationRequested)
        {
            var reason = ex is OperationCanceledException
                ? $"a worker did not start within {StartTimeout.TotalSeconds:0} s"
                : ex.Message;
            MarkBroken(reason);
            throw new WorkerPoolBrokenException(reason, ex);
        }

        MarkHealthy();
        return worker;
    }

    private void MarkBroken(string reason)
    {
        bool first;
        TimeSpan delay;
        bool schedule;
        lock (_gate)
        {
            first = _failure is null;
            _failure = reason;
            _retryDelay = first ? FirstRetryDelay : TimeSpan.FromTicks(Math.Min(_retryDelay.Ticks * 2, LongestRetryDelay.Ticks));
            delay = _retryDelay;
            _retryAt = _time.GetTimestamp() + (long)(delay.TotalSeconds * _time.TimestampFrequency);
            schedule = !_retryScheduled && !_disposed;
            if (schedule) _retryScheduled = true;
        }

        LogStartFailed(reason, delay);
        if (schedule) _ = RetryLaterAsync(delay);
        if (first) RaiseHealthChanged();
    }

    private void MarkHealthy()
    {
        bool recovered;
        lock (_gate)
        {
            recovered = _failure is not null;
            _failure = null;
            _retryDelay = TimeSpan.Zero;
        }

        if (recovered)
        {
            LogRecovered();
            RaiseHealthChanged();
        }
    }

    private async Task RetryLaterAsync(TimeSpan delay)
    {
        try
        {
            await Task.Delay(delay, _time, _disposing.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        lock (_gate)
        {
            _retryScheduled = false;
            // Always probe here: timers may fire a hair early, and without a probe nothing would retry.
            StartWarmingLocked(probe: true);
        }
    }

    private void Retire(IWorker worker, string reason)
    {
        lock (_gate) _boundTo.Remove(worker);
        LogRetiring(worker.ProcessId, reason);
        if (!worker.IsHealthy) _metrics?.WorkerRestarted(_factory.Language); // died or killed: replaced, not recycled
        _ = Task.Run(async () =>
        {
            try
            {
                await worker.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                LogDisposeFailed(worker.ProcessId, ex.Message);
            }
        });
    }

    private void RaiseHealthChanged()
    {
        try
        {
            HealthChanged?.Invoke();
        }
        catch (Exception ex)
        {
            LogHandlerFailed(ex);
        }
    }

    public async ValueTask DisposeAsync()
    {
        IWorker[] idle;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            idle = [.. _idle.Select(w => w.Worker)];
            _idle.Clear();
            _boundTo.Clear();
        }

        await _sweeper.DisposeAsync().ConfigureAwait(false);
        await _freezer.DisposeAsync().ConfigureAwait(false);
        await _disposing.CancelAsync().ConfigureAwait(false);
        foreach (var worker in idle)
        {
            try
            {
                await worker.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                LogDisposeFailed(worker.ProcessId, ex.Message);
            }
        }
    }

    /// <param name="Submitter">Whose tasks it runs; null for a warm worker that has run none.</param>
    /// <param name="Since">When it became idle (a <see cref="TimeProvider"/> timestamp).</param>
    private sealed record IdleWorker(IWorker Worker, string? Submitter, long Since, bool Frozen);

    [LoggerMessage(Level = LogLevel.Error, Message = "Starting a worker process failed, retrying in {Delay}: {Reason}")]
    private partial void LogStartFailed(string reason, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker processes start again")]
    private partial void LogRecovered();

    [LoggerMessage(Level = LogLevel.Debug, Message = "Retiring worker {ProcessId}: {Reason}")]
    private partial void LogRetiring(int processId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Disposing worker {ProcessId} failed: {Reason}")]
    private partial void LogDisposeFailed(int processId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A worker pool health handler threw")]
    private partial void LogHandlerFailed(Exception exception);
}
