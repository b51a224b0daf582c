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
internal sealed partial class WorkerPool : IAsyncDisposable
{
    /// <summary>A worker that has not answered by then is treated as a failed start.</summary>
    internal static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LongestRetryDelay = TimeSpan.FromSeconds(30);

    private readonly object _gate = new();
    // Used LIFO: the most recently used worker has the most programs cached; the coldest is trimmed.
    private readonly List<IWorker> _idle = [];
    private readonly IWorkerFactory _factory;
    private readonly int _warmWorkers;
    private readonly int _maxIdle;
    private readonly int _recycleAfterPrograms;
    private readonly TimeProvider _time;
    private readonly Telemetry.P2PShareMetrics? _metrics;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _disposing = new();
    private int _warming;
    private string? _failure;
    private TimeSpan _retryDelay;
    private long _retryAt;
    private bool _retryScheduled;
    private bool _disposed;

    public WorkerPool(IWorkerFactory factory, int warmWorkers, int maxIdle, int recycleAfterPrograms, TimeProvider time, ILogger logger, Telemetry.P2PShareMetrics? metrics = null)
    {
        _factory = factory;
        _warmWorkers = Math.Max(0, warmWorkers);
        _maxIdle = Math.Max(_warmWorkers, maxIdle);
        _recycleAfterPrograms = Math.Max(1, recycleAfterPrograms);
        _time = time;
        _logger = logger;
        _metrics = metrics;
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

    /// <summary>A healthy idle worker, or a newly started one.</summary>
    /// <exception cref="WorkerPoolBrokenException">The factory failed, now or within the back-off.</exception>
    public async Task<IWorker> RentAsync(CancellationToken cancellationToken)
    {
        var stale = new List<IWorker>();
        try
        {
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                while (_idle.Count > 0)
                {
                    var idle = _idle[^1];
                    _idle.RemoveAt(_idle.Count - 1);
                    if (idle.IsHealthy)
                    {
                        StartWarmingLocked();
                        return idle;
                    }

                    stale.Add(idle);
                }

                if (_failure is not null && _time.GetTimestamp() < _retryAt)
                    throw new WorkerPoolBrokenException(_failure);
            }
        }
        finally
        {
            foreach (var worker in stale) Retire(worker, "it died while idle");
        }

        var started = await StartWorkerAsync(cancellationToken).ConfigureAwait(false);
        Refill();
        return started;
    }

    /// <summary>Takes back a worker after a run; keeps it only if it is healthy, fresh enough and needed.</summary>
    public void Return(IWorker worker)
    {
        string? retireBecause;
        IWorker? coldest = null;
        lock (_gate)
        {
            retireBecause =
                _disposed ? "the pool is shutting down"
                : !worker.IsHealthy ? "it is no longer healthy"
                : worker.ProgramsLoaded >= _recycleAfterPrograms ? $"it loaded {worker.ProgramsLoaded} distinct programs"
                : _maxIdle == 0 ? "no idle workers are kept"
                : null;
            if (retireBecause is null)
            {
                _idle.Add(worker);
                if (_idle.Count > _maxIdle)
                {
                    coldest = _idle[0];
                    _idle.RemoveAt(0);
                }
            }
        }

        if (retireBecause is not null) Retire(worker, retireBecause);
        if (coldest is not null) Retire(coldest, "enough workers are idle");
        Refill();
    }

    /// <summary>Disposes a worker that must not be reused (killed for a timeout or a cancel).</summary>
    public void Discard(IWorker worker, string reason)
    {
        Retire(worker, reason);
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
            toStart = _warmWorkers - _idle.Count - _warming;
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
            if (keep) _idle.Add(worker);
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
            idle = [.. _idle];
            _idle.Clear();
        }

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
