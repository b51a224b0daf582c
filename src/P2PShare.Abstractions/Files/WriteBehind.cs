using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace P2PShare.Files;

/// <summary>
/// Starts the disk writing a file's prefix while later bytes are still arriving. A transfer ends
/// with an fsync before its rename; without this, Linux holds the whole file as dirty pages (the
/// background threshold is a share of RAM, gigabytes here) and that fsync then waits for all of it,
/// so the disk idles during the transfer and the network idles during the flush. Shared by the
/// peer (uploads) and the CLI (downloads); a best-effort hint: the fsync stays the guarantee.
/// </summary>
public sealed class WriteBehind(SafeFileHandle handle, long stepBytes = WriteBehind.DefaultStepBytes)
{
    /// <summary>Large enough that the disk sees long sequential runs, small enough to start early.</summary>
    public const long DefaultStepBytes = 8L * 1024 * 1024;

    private const uint SyncFileRangeWrite = 2;
    private readonly Lock _gate = new();
    private long _started;
    private bool _unsupported = !OperatingSystem.IsLinux();

    /// <summary>Bytes handed to the disk so far.</summary>
    public long Started
    {
        get { lock (_gate) return _started; }
    }

    /// <summary>The first <paramref name="prefix"/> bytes are written; starts their write-back once a step has gathered.</summary>
    public void Written(long prefix)
    {
        long from;
        lock (_gate)
        {
            if (_unsupported || prefix - _started < stepBytes) return;
            from = _started;
            _started = prefix;
        }

        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            // SYNC_FILE_RANGE_WRITE queues the pages and returns; it blocks only while the disk's
            // queue is full, which is the back-pressure a transfer at disk speed should feel.
            if (SyncFileRange((int)handle.DangerousGetHandle(), from, prefix - from, SyncFileRangeWrite) != 0)
            {
                lock (_gate) _unsupported = true; // e.g. a file system without it: the fsync does it all
            }
        }
        catch (ObjectDisposedException)
        {
            // Closed meanwhile (aborted): nothing left to write back.
        }
        catch (EntryPointNotFoundException)
        {
            lock (_gate) _unsupported = true;
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    [DllImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static extern int SyncFileRange(int fd, long offset, long count, uint flags);
}
