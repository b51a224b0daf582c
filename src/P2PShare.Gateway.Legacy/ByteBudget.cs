namespace P2PShare.Legacy;

/// <summary>
/// Bytes the gateway may hold for messages being received or answered, over all connections.
/// Bounds its memory however many clients send large messages at once: past the budget, a
/// message waits for room, and after a while is refused.
/// </summary>
internal sealed class ByteBudget(long capacity)
{
    private readonly object _gate = new();
    private long _used;
    private TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public long Capacity => capacity;

    public long Used
    {
        get { lock (_gate) return _used; }
    }

    /// <summary>Takes <paramref name="bytes"/> when there is room within <paramref name="wait"/>; false otherwise.</summary>
    public async Task<bool> TryAcquireAsync(long bytes, TimeSpan wait, CancellationToken cancellationToken)
    {
        if (bytes > capacity) return false;
        var deadline = DateTime.UtcNow + wait;
        while (true)
        {
            Task released;
            lock (_gate)
            {
                if (_used + bytes <= capacity)
                {
                    _used += bytes;
                    return true;
                }

                released = _released.Task;
            }

            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero) return false;
            try
            {
                await released.WaitAsync(left, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                return false;
            }
        }
    }

    public void Release(long bytes)
    {
        TaskCompletionSource released;
        lock (_gate)
        {
            _used -= bytes;
            released = _released;
            _released = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        released.TrySetResult();
    }
}
