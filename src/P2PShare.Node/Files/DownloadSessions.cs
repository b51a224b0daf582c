using System.Collections.Concurrent;
using Microsoft.Win32.SafeHandles;
using Orleans.Serialization.Buffers;
using P2PShare.Telemetry;

namespace P2PShare.Files;

/// <summary>
/// Downloads in progress. Each holds a handle on the version of the file it opened, so a put of the
/// same name during the download changes nothing for its reader.
/// </summary>
internal sealed class DownloadSessions(int chunkBytes, FileCatalogue catalogue, TimeProvider time, P2PShareMetrics? metrics) : IDisposable
{
    private readonly ConcurrentDictionary<Guid, DownloadSession> _downloads = new();

    public int Count => _downloads.Count;

    public async Task<DownloadTicket> OpenAsync(string name)
    {
        Names.ValidateFileName(name);
        var handle = catalogue.OpenForRead(name);
        try
        {
            var info = await catalogue.DescribeAsync(name, handle).ConfigureAwait(false);
            var session = new DownloadSession(Guid.NewGuid(), info, handle, Now());
            _downloads[session.Id] = session;
            return new DownloadTicket(session.Id, info, chunkBytes);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    public async Task<byte[]> ReadChunkAsync(Guid downloadId, long offset, int count)
    {
        var (session, length) = Check(downloadId, offset, count);
        var buffer = new byte[length];
        var filled = await FillAsync(session, buffer, offset).ConfigureAwait(false);
        Done(session, filled);
        return filled == length ? buffer : buffer[..filled];
    }

    /// <summary>
    /// The same read into pooled memory: Orleans returns that memory to its pool once the reply is
    /// serialized, so a download at full speed makes no garbage on the peer's large-object heap.
    /// </summary>
    public async Task<PooledBuffer> ReadPooledChunkAsync(Guid downloadId, long offset, int count)
    {
        var (session, length) = Check(downloadId, offset, count);
        var buffer = new PooledBuffer();
        try
        {
            var filled = length == 0 ? 0 : await FillAsync(session, buffer.GetMemory(length)[..length], offset).ConfigureAwait(false);
            buffer.Advance(filled);
            Done(session, filled);
            return buffer;
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    private (DownloadSession Session, int Length) Check(Guid downloadId, long offset, int count)
    {
        if (!_downloads.TryGetValue(downloadId, out var session)) throw new NotFoundException("download", downloadId.ToString());
        if (count <= 0 || count > chunkBytes)
            throw new InvalidArgumentException($"chunk size must be 1..{chunkBytes}");
        if (offset < 0 || offset > session.File.Size)
            throw new InvalidArgumentException($"offset {offset} lies outside the file's {session.File.Size} bytes");
        return (session, (int)Math.Min(count, session.File.Size - offset));
    }

    private static async Task<int> FillAsync(DownloadSession session, Memory<byte> into, long offset)
    {
        var filled = 0;
        while (filled < into.Length)
        {
            var read = await RandomAccess.ReadAsync(session.Handle, into[filled..], offset + filled).ConfigureAwait(false);
            if (read == 0) break;
            filled += read;
        }

        return filled;
    }

    private void Done(DownloadSession session, int bytes)
    {
        session.LastActivityUtc = Now();
        metrics?.FileBytesOut(bytes);
    }

    public void Close(Guid downloadId)
    {
        if (_downloads.TryRemove(downloadId, out var session)) session.Handle.Dispose();
    }

    /// <summary>Closes downloads nobody read from since <paramref name="cutoff"/>; returns how many.</summary>
    public int ReapIdle(DateTime cutoff)
    {
        var reaped = 0;
        foreach (var session in _downloads.Values.Where(s => s.LastActivityUtc < cutoff))
        {
            Close(session.Id);
            reaped++;
        }

        return reaped;
    }

    public void Dispose()
    {
        foreach (var session in _downloads.Values) session.Handle.Dispose();
    }

    private DateTime Now() => time.GetUtcNow().UtcDateTime;

    private sealed class DownloadSession(Guid id, StoredFileInfo file, SafeFileHandle handle, DateTime now)
    {
        public Guid Id { get; } = id;
        public StoredFileInfo File { get; } = file;
        public SafeFileHandle Handle { get; } = handle;
        public DateTime LastActivityUtc { get; set; } = now;
    }
}
