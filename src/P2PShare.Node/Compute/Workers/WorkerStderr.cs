using System.Text;

namespace P2PShare.Compute;

/// <summary>
/// What the peer keeps of a worker's stderr: raw bytes, never lines (a line can be endless), so a
/// worker that writes gigabytes costs a fixed few KiB. It keeps the last <see cref="TailBytes"/> for
/// diagnostics, the first "Unhandled exception." line (cut at <see cref="FirstLineBytes"/>), and
/// whether the runtime reported a stack overflow or running out of memory; the rest is dropped.
/// Not thread-safe on its own: <see cref="WorkerProcess"/> feeds it from one reader and reads it under a lock.
/// </summary>
internal sealed class WorkerStderr
{
    public const int TailBytes = 8 * 1024;
    public const int FirstLineBytes = 300;

    private static readonly byte[] StackOverflowMarker = "Stack overflow"u8.ToArray();
    private static readonly byte[] UnhandledMarker = "Unhandled exception."u8.ToArray();
    // .NET's OutOfMemoryException, the runtime's own "Out of memory." and Python's MemoryError.
    private static readonly byte[][] OutOfMemoryMarkers = ["OutOfMemory"u8.ToArray(), "Out of memory"u8.ToArray(), "MemoryError"u8.ToArray()];
    private static readonly int Carry = new[] { StackOverflowMarker.Length, UnhandledMarker.Length }
        .Concat(OutOfMemoryMarkers.Select(m => m.Length)).Max() - 1;

    private readonly byte[] _tail = new byte[TailBytes];
    private int _tailLength;
    private byte[] _window = [];
    private int _carried;
    private readonly List<byte> _unhandled = [];
    private bool _capturingUnhandled;
    private bool _unhandledDone;

    private const int ChunkBytes = 16 * 1024;
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the stream <see cref="DrainAsync"/> reads has ended.</summary>
    public Task Closed => _closed.Task;

    /// <summary>
    /// Reads a child's stderr as raw bytes until it ends, feeding each chunk under this object's lock
    /// (readers lock it too); never a line at a time, so an endless line costs nothing.
    /// </summary>
    public async Task DrainAsync(Stream stderr)
    {
        var chunk = new byte[ChunkBytes];
        try
        {
            while (true)
            {
                var got = await stderr.ReadAsync(chunk).ConfigureAwait(false);
                if (got == 0) break;
                lock (this) Feed(chunk.AsSpan(0, got));
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // The process is gone.
        }
        finally
        {
            _closed.TrySetResult();
        }
    }

    /// <summary>Waits, at most <paramref name="grace"/>, for <paramref name="process"/> to exit and its stderr to end.</summary>
    public async Task WaitForEndAsync(System.Diagnostics.Process process, TimeSpan grace)
    {
        using var deadline = new CancellationTokenSource(grace);
        try
        {
            await process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
            await Closed.WaitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or InvalidOperationException)
        {
            // Bounded: a process that will not die after SIGKILL is beyond what we can do here.
        }
    }

    /// <summary>Everything fed so far, kept or not.</summary>
    public long TotalBytes { get; private set; }

    public bool SawStackOverflow { get; private set; }

    public bool SawOutOfMemory { get; private set; }

    /// <summary>The first line that began "Unhandled exception.", at most <see cref="FirstLineBytes"/>; null if none.</summary>
    public string? Unhandled => _unhandled.Count == 0 ? null : Encoding.UTF8.GetString([.. _unhandled]).TrimEnd('\r');

    public void Feed(ReadOnlySpan<byte> chunk)
    {
        if (chunk.IsEmpty) return;
        TotalBytes += chunk.Length;
        KeepTail(chunk);

        // Markers may straddle two chunks: search the end of the last one together with this one.
        var needed = _carried + chunk.Length;
        if (_window.Length < needed) Array.Resize(ref _window, Math.Max(needed, Carry + 8192));
        chunk.CopyTo(_window.AsSpan(_carried));
        var window = _window.AsSpan(0, needed);
        if (_capturingUnhandled) Capture(chunk);
        if (!SawStackOverflow && window.IndexOf(StackOverflowMarker) >= 0) SawStackOverflow = true;
        if (!SawOutOfMemory)
        {
            foreach (var marker in OutOfMemoryMarkers)
                if (window.IndexOf(marker) >= 0) SawOutOfMemory = true;
        }

        if (!_unhandledDone && !_capturingUnhandled && window.IndexOf(UnhandledMarker) is var at and >= 0)
        {
            _capturingUnhandled = true;
            // From the marker on, including any part of it carried over from the last chunk.
            Capture(window[at..]);
        }

        var carry = Math.Min(Carry, window.Length);
        window[^carry..].CopyTo(_window);
        _carried = carry;
    }

    /// <summary>The kept tail as text (invalid UTF-8 replaced).</summary>
    public string Tail() => Encoding.UTF8.GetString(_tail, 0, _tailLength);

    private void KeepTail(ReadOnlySpan<byte> chunk)
    {
        if (chunk.Length >= TailBytes)
        {
            chunk[^TailBytes..].CopyTo(_tail);
            _tailLength = TailBytes;
            return;
        }

        var overflow = _tailLength + chunk.Length - TailBytes;
        if (overflow > 0)
        {
            _tail.AsSpan(overflow, _tailLength - overflow).CopyTo(_tail);
            _tailLength -= overflow;
        }

        chunk.CopyTo(_tail.AsSpan(_tailLength));
        _tailLength += chunk.Length;
    }

    private void Capture(ReadOnlySpan<byte> bytes)
    {
        foreach (var b in bytes)
        {
            if (b == (byte)'\n' || _unhandled.Count >= FirstLineBytes)
            {
                _capturingUnhandled = false;
                _unhandledDone = true;
                return;
            }

            _unhandled.Add(b);
        }
    }
}
