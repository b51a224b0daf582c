using System.Collections.Concurrent;

namespace P2PShare.Compute;

/// <summary>
/// At most <c>size</c> warm compiler processes, and so at most that many compiles at once (the
/// concurrency bound; the rest queue). Processes start on first need and live on; one that died or
/// was killed is replaced in the background, so the next compile finds a warm one.
/// </summary>
internal sealed partial class CompilerPool : IAsyncDisposable
{
    private readonly Func<CancellationToken, Task<CompilerProcess>> _start;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _slots;
    private readonly ConcurrentStack<CompilerProcess> _idle = new();
    private readonly ConcurrentDictionary<CompilerProcess, byte> _live = new();
    private readonly CancellationTokenSource _disposed = new();

    public CompilerPool(int size, Func<CancellationToken, Task<CompilerProcess>> start, ILogger logger)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        _start = start;
        _logger = logger;
        _slots = new SemaphoreSlim(size, size);
    }

    /// <summary>The processes running Roslyn now, idle or compiling (for tests and diagnostics).</summary>
    public IReadOnlyList<int> ProcessIds => _live.Keys.Select(p => p.ProcessId).ToList();

    /// <summary>
    /// Compiles on a warm process within <paramref name="timeLimit"/>, counted from when the process
    /// got the text (not from the time queued). Throws <see cref="InvalidOperationException"/> when
    /// no compiler can be started.
    /// </summary>
    public async Task<CompileVerdict> CompileAsync(string name, string program, TimeSpan timeLimit)
    {
        await _slots.WaitAsync(_disposed.Token).ConfigureAwait(false);
        var replace = false;
        try
        {
            var process = TakeIdle() ?? await StartAsync().ConfigureAwait(false);
            var verdict = await process.CompileAsync(name, program, timeLimit).ConfigureAwait(false);
            if (process.IsHealthy)
            {
                _idle.Push(process);
            }
            else
            {
                _live.TryRemove(process, out _);
                _ = process.DisposeAsync().AsTask();
                replace = true;
            }

            return verdict;
        }
        finally
        {
            _slots.Release();
            if (replace) _ = Task.Run(WarmReplacementAsync);
        }
    }

    /// <summary>Starts up to <paramref name="count"/> processes in the background, within the bound.</summary>
    public void Warm(int count) => _ = Task.Run(async () =>
    {
        for (var ahead = 1; ahead <= count; ahead++) await WarmReplacementAsync(ahead).ConfigureAwait(false);
    });

    private CompilerProcess? TakeIdle()
    {
        while (_idle.TryPop(out var process))
        {
            if (process.IsHealthy) return process;
            _live.TryRemove(process, out _);
            _ = process.DisposeAsync().AsTask();
        }

        return null;
    }

    private async Task<CompilerProcess> StartAsync()
    {
        var process = await _start(_disposed.Token).ConfigureAwait(false);
        _live[process] = 0;
        return process;
    }

    // Within a slot, so the pool never holds more processes than its bound.
    private async Task WarmReplacementAsync() => await WarmReplacementAsync(ahead: 1).ConfigureAwait(false);

    /// <param name="ahead">Idle processes wanted: a replacement keeps one ready, warming at start may want more.</param>
    private async Task WarmReplacementAsync(int ahead)
    {
        try
        {
            await _slots.WaitAsync(_disposed.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        try
        {
            if (_idle.Count < ahead) _idle.Push(await StartAsync().ConfigureAwait(false));
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or System.ComponentModel.Win32Exception or OperationCanceledException)
        {
            if (!_disposed.IsCancellationRequested) LogReplacementFailed(e.Message);
        }
        finally
        {
            _slots.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _disposed.CancelAsync().ConfigureAwait(false);
        foreach (var process in _live.Keys) await process.DisposeAsync().ConfigureAwait(false);
        _live.Clear();
        _idle.Clear();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not start a replacement compiler: {Reason}")]
    private partial void LogReplacementFailed(string reason);
}
