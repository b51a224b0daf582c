using System.Collections.Immutable;
using P2PShare.Compute;
using P2PShare.Files;
using P2PShare.Memory;
using P2PShare.Peers;

namespace P2PShare.Tracker;

/// <summary>
/// Keeps the tracker informed about this peer: registers once the silo is active, then sends a
/// complete <see cref="LoadReport"/> every interval and soon after any change (at most one per
/// <see cref="TrackerOptions.MinReportGap"/>), and unregisters when the silo stops.
/// </summary>
public sealed partial class LoadReporter : ILifecycleParticipant<ISiloLifecycle>, IDisposable
{
    private readonly IGrainFactory _grains;
    private readonly PeerIdentity _identity;
    private readonly MemoryStore _memory;
    private readonly FileStore _files;
    private readonly ComputeScheduler _scheduler;
    private readonly IPeerEndpointSource[] _endpoints;
    private readonly TrackerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<LoadReporter> _logger;
    private readonly SemaphoreSlim _changed = new(0, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _registered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _loop = Task.CompletedTask;
    private Task? _exchange;
    private long _sequence;

    private readonly KernelSandbox? _sandbox;
    private readonly LoadView? _view;

    public LoadReporter(IGrainFactory grains, PeerIdentity identity, MemoryStore memory, FileStore files,
        ComputeScheduler scheduler, IEnumerable<IPeerEndpointSource> endpoints, IOptions<TrackerOptions> options, TimeProvider time,
        ILogger<LoadReporter> logger, KernelSandbox? sandbox = null, LoadView? view = null)
    {
        _sandbox = sandbox;
        _view = view;
        _grains = grains;
        _identity = identity;
        _memory = memory;
        _files = files;
        _scheduler = scheduler;
        _endpoints = [.. endpoints];
        _options = options.Value;
        _time = time;
        _logger = logger;
        _memory.Changed += Signal;
        _files.Changed += Signal;
        _scheduler.Changed += Signal;
    }

    /// <summary>Completes once the tracker has this peer.</summary>
    public Task Registered => _registered.Task;

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(LoadReporter), ServiceLifecycleStage.Active, OnStartAsync, OnStopAsync);

    /// <summary>The report this peer would send now.</summary>
    public LoadReport Snapshot()
    {
        var (memUsed, memKeys) = _memory.Usage;
        var (diskUsed, diskReserved, diskFiles) = _files.Usage;
        var cpu = _scheduler.Load;
        return new LoadReport(
            _identity.Name, _identity.Silo, _identity.Gateway,
            Slots: cpu.Slots, RunningTasks: cpu.Running, QueuedTasks: cpu.Queued,
            MemoryUsed: memUsed, MemoryQuota: _memory.QuotaBytes, MemoryKeys: memKeys,
            DiskUsed: diskUsed + diskReserved, DiskQuota: _files.QuotaBytes, DiskFiles: diskFiles,
            ReportInterval: _options.ReportInterval, StartedUtc: _identity.StartedUtc,
            SentUtc: _time.GetUtcNow().UtcDateTime, Sequence: Interlocked.Increment(ref _sequence),
            TasksAccepted: cpu.TasksAccepted)
        {
            Runtimes = [.. _scheduler.Runtimes],
            Endpoints = ListeningEndpoints(),
            Sandbox = _sandbox?.Status,
        };
    }

    private ImmutableDictionary<string, string> ListeningEndpoints()
    {
        if (_endpoints.Length == 0) return ImmutableDictionary<string, string>.Empty;
        var listening = ImmutableDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        foreach (var source in _endpoints)
            if (source.Endpoint is { } endpoint) listening[source.Name] = endpoint;
        return listening.ToImmutable();
    }

    public void Dispose()
    {
        _memory.Changed -= Signal;
        _files.Changed -= Signal;
        _scheduler.Changed -= Signal;
        // Not disposed: the silo lifecycle may still call OnStopAsync after the container is torn down.
        _stopping.Cancel();
    }

    private Task OnStartAsync(CancellationToken cancellationToken)
    {
        _loop = Task.Run(() => RunAsync(_stopping.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    private async Task OnStopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(5));
            await _grains.GetTracker().UnregisterAsync(_identity.Name, _identity.Silo).WaitAsync(timeout.Token).ConfigureAwait(false);
            LogUnregistered(_identity.Name);
        }
        catch (Exception ex)
        {
            // Membership will remove us anyway once the silo is gone.
            LogUnregisterFailed(ex.Message);
        }
    }

    private async Task RunAsync(CancellationToken stopping)
    {
        await RegisterAsync(stopping).ConfigureAwait(false);
        var lastSent = _time.GetUtcNow();
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                var wait = _options.ReportInterval - (_time.GetUtcNow() - lastSent);
                if (wait > TimeSpan.Zero)
                    await _changed.WaitAsync(wait, stopping).ConfigureAwait(false);
                // Rate limit: coalesce a burst of changes into one report.
                var gap = _options.MinReportGap - (_time.GetUtcNow() - lastSent);
                if (gap > TimeSpan.Zero) await Task.Delay(gap, _time, stopping).ConfigureAwait(false);

                lastSent = _time.GetUtcNow();
                await ReportOnceAsync().ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                LogReportFailed(ex.Message);
            }
        }
    }

    private async Task RegisterAsync(CancellationToken stopping)
    {
        var delay = TimeSpan.FromMilliseconds(100);
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await _grains.GetTracker().RegisterAsync(Snapshot()).WaitAsync(TimeSpan.FromSeconds(10), stopping).ConfigureAwait(false);
                await ExchangeAsync().ConfigureAwait(false);
                _registered.TrySetResult();
                LogReady(_identity.Name, _identity.Silo.Endpoint.ToString(), _identity.Gateway);
                return;
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                LogRegisterRetry(ex.Message);
                await Task.Delay(delay, _time, stopping).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 2000));
            }
        }
    }

    /// <summary>
    /// Sends a report. The report loop never waits for the tracker's answer: a slow tracker must not
    /// make reports rarer (it would drop a peer that missed them). While an exchange is still on its
    /// way, the report goes one-way and the view waits for the next answer.
    /// </summary>
    private Task ReportOnceAsync()
    {
        if (_view is null || _exchange is { IsCompleted: false }) return _grains.GetTracker().ReportAsync(Snapshot());
        _exchange = ExchangeInBackgroundAsync();
        return Task.CompletedTask;
    }

    private async Task ExchangeInBackgroundAsync()
    {
        try
        {
            await ExchangeAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogReportFailed(ex.Message);
        }
    }

    /// <summary>Reports and takes the tracker's table as this silo's load view (without a view: a one-way report).</summary>
    private async Task ExchangeAsync()
    {
        if (_view is null)
        {
            await _grains.GetTracker().ReportAsync(Snapshot()).ConfigureAwait(false);
            return;
        }

        _view.Update(await _grains.GetTracker().ExchangeAsync(Snapshot()).ConfigureAwait(false));
    }

    /// <summary>Sends a report soon (rate-limited like any change), e.g. after this peer opened a new port.</summary>
    public void ReportSoon() => Signal();

    private void Signal()
    {
        try
        {
            if (_changed.CurrentCount == 0) _changed.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already signalled.
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "P2PShare peer '{Name}' is ready (silo {Silo}, gateway {Gateway})")]
    private partial void LogReady(string name, string silo, string gateway);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Registering with the tracker failed, retrying: {Reason}")]
    private partial void LogRegisterRetry(string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Load report failed: {Reason}")]
    private partial void LogReportFailed(string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Peer '{Name}' unregistered from the tracker")]
    private partial void LogUnregistered(string name);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Unregistering from the tracker failed: {Reason}")]
    private partial void LogUnregisterFailed(string reason);
}
