using System.Collections.Concurrent;
using Microsoft.Win32.SafeHandles;
using Orleans.Serialization.Buffers;
using P2PShare.Telemetry;

namespace P2PShare.Files;

/// <summary>
/// Uploads in progress. Each writes to its own file under <c>DATA/tmp</c>. Chunks of one upload are
/// written concurrently, each at its offset (no seek, no lock), and hashed in file order as the
/// written prefix grows (<see cref="UploadHasher"/>) while the disk already writes that prefix back
/// (<see cref="Files.WriteBehind"/>). The upload is checked against the SHA-256 the client computed before it is
/// renamed into place, so readers never see a partial file. Its declared size is reserved in the
/// <see cref="FileCatalogue"/> until it lands or is dropped.
/// </summary>
internal sealed partial class UploadSessions(
    string tmpDir,
    long maxFileBytes,
    int chunkBytes,
    FileCatalogue catalogue,
    Action stored,
    TimeProvider time,
    ILogger logger,
    P2PShareMetrics? metrics) : IDisposable
{
    private readonly ConcurrentDictionary<Guid, UploadSession> _uploads = new();

    public int Count => _uploads.Count;

    public UploadTicket Begin(string name, long size)
    {
        Names.ValidateFileName(name);
        if (size < 0) throw new InvalidArgumentException("file size cannot be negative");
        if (size > maxFileBytes)
        {
            throw new InvalidArgumentException(
                $"file of {Bytes.Format(size)} is larger than the limit of {Bytes.Format(maxFileBytes)}");
        }

        catalogue.EnsureNoFolderInTheWay(name);
        catalogue.Reserve(size);

        var id = Guid.NewGuid();
        var tempPath = Path.Combine(tmpDir, id.ToString("N") + ".part");
        try
        {
            var handle = File.OpenHandle(tempPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.Asynchronous);
            _uploads[id] = new UploadSession(id, name, size, tempPath, handle, Now());
        }
        catch
        {
            catalogue.Release(size);
            throw;
        }

        return new UploadTicket(id, chunkBytes);
    }

    public async Task WriteChunkAsync(Guid uploadId, long offset, ReadOnlyMemory<byte> data)
    {
        var session = Enter(uploadId, offset, data.Length);
        try
        {
            await RandomAccess.WriteAsync(session.Handle, data, offset).ConfigureAwait(false);
            if (session.Hasher.Landed(offset, data.Length))
            {
                session.Hasher.Append(data.Span);
                await CatchUpAsync(session, data.Length).ConfigureAwait(false);
            }
        }
        finally
        {
            session.Exit(Now());
        }

        metrics?.FileBytesIn(data.Length);
    }

    /// <summary>
    /// Writes a chunk Orleans received into pooled blocks, straight from those blocks (one gathered
    /// positioned write), and returns them. Takes ownership of <paramref name="data"/> in every case.
    /// </summary>
    public async Task WriteChunkAsync(Guid uploadId, long offset, PooledBuffer data)
    {
        var length = data.Length;
        try
        {
            var session = Enter(uploadId, offset, length);
            try
            {
                var blocks = new List<ReadOnlyMemory<byte>>();
                foreach (var block in data.MemorySegments) blocks.Add(block);
                await RandomAccess.WriteAsync(session.Handle, blocks, offset).ConfigureAwait(false);
                if (session.Hasher.Landed(offset, length))
                {
                    foreach (var block in blocks) session.Hasher.Append(block.Span);
                    await CatchUpAsync(session, length).ConfigureAwait(false);
                }
            }
            finally
            {
                session.Exit(Now());
            }
        }
        finally
        {
            data.Dispose();
        }

        metrics?.FileBytesIn(length);
    }

    /// <summary>Checks a chunk against the session and counts it as in flight; concurrent chunks write in parallel.</summary>
    private UploadSession Enter(Guid uploadId, long offset, int length)
    {
        var session = Get(uploadId);
        if (length > chunkBytes)
            throw new InvalidArgumentException($"chunk of {length} bytes is larger than the limit of {chunkBytes}");
        if (offset < 0 || offset + length > session.Size)
        {
            throw new InvalidArgumentException(
                $"chunk at {offset}+{length} lies outside the declared size of {session.Size} bytes");
        }

        if (!session.TryEnter()) throw new NotFoundException("upload", uploadId.ToString());
        session.Hasher.Starting(offset, length);
        return session;
    }

    private static async Task CatchUpAsync(UploadSession session, int appended)
    {
        await session.Hasher.CatchUpAsync(appended, session.Handle).ConfigureAwait(false);
        session.WriteBehind.Written(session.Hasher.HashedUpTo);
    }

    public async Task<StoredFileInfo> CompleteAsync(Guid uploadId, string sha256)
    {
        var session = Get(uploadId);
        var expected = (sha256 ?? "").Trim().ToLowerInvariant();
        if (expected.Length != 64 || !expected.All(Uri.IsHexDigit))
            throw new InvalidArgumentException("sha256 must be 64 hex digits");

        // Chunks still being written finish first; later ones are refused as for a finished upload.
        if (!session.TryClose(out var drained)) throw new NotFoundException("upload", uploadId.ToString());
        await drained.ConfigureAwait(false);

        var length = RandomAccess.GetLength(session.Handle);
        if (length != session.Size)
        {
            Drop(session);
            throw new IntegrityException($"upload of '{session.Name}' is incomplete: got {length} of {session.Size} bytes");
        }

        string actual;
        try
        {
            actual = session.Hasher.TryFinish(session.Size)
                ?? await HashSidecars.HashAsync(session.Handle, session.Size).ConfigureAwait(false);
        }
        catch
        {
            Drop(session);
            throw;
        }

        if (actual != expected)
        {
            Drop(session);
            throw new IntegrityException($"sha256 mismatch for '{session.Name}': sent {expected}, received {actual}");
        }

        RandomAccess.FlushToDisk(session.Handle);
        session.Close();
        _uploads.TryRemove(uploadId, out _);

        try
        {
            catalogue.Commit(session.TempPath, session.Name, session.Size);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            TryDelete(session.TempPath);
            catalogue.Release(session.Size);
            throw new InvalidArgumentException($"cannot store '{session.Name}': {ex.Message}");
        }

        var info = catalogue.RecordHash(session.Name, actual);
        LogStored(logger, session.Name, session.Size);
        stored();
        return info;
    }

    public async Task AbortAsync(Guid uploadId)
    {
        var session = Get(uploadId);
        // A completion or abort already under way owns the session's end.
        if (!session.TryClose(out var drained)) return;
        await drained.ConfigureAwait(false);
        Drop(session);
    }

    /// <summary>Drops uploads nobody touched since <paramref name="cutoff"/>, freeing their temp space; returns how many.</summary>
    public int ReapIdle(DateTime cutoff)
    {
        var reaped = 0;
        foreach (var session in _uploads.Values)
        {
            if (!session.TryCloseIdle(cutoff)) continue; // busy, recently used, or already ending
            Drop(session);
            reaped++;
            LogUploadExpired(logger, session.Name);
        }

        return reaped;
    }

    public void Dispose()
    {
        foreach (var session in _uploads.Values) session.Close();
    }

    private UploadSession Get(Guid id) =>
        _uploads.TryGetValue(id, out var session) ? session : throw new NotFoundException("upload", id.ToString());

    /// <summary>Ends a closed session without storing it: temp file gone, quota released.</summary>
    private void Drop(UploadSession session)
    {
        if (session.Closed) return;
        session.Close();
        _uploads.TryRemove(session.Id, out _);
        TryDelete(session.TempPath);
        catalogue.Release(session.Size);
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // What is left in tmp is removed at the next start.
        }
    }

    private DateTime Now() => time.GetUtcNow().UtcDateTime;

    [LoggerMessage(Level = LogLevel.Information, Message = "Stored file {Name} ({Size} bytes)")]
    private static partial void LogStored(ILogger logger, string name, long size);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Upload of {Name} expired after being idle; temp space freed")]
    private static partial void LogUploadExpired(ILogger logger, string name);

    private sealed class UploadSession(Guid id, string name, long size, string tempPath, SafeFileHandle handle, DateTime now)
    {
        private readonly Lock _gate = new();
        private int _writing;
        private bool _closing;
        private TaskCompletionSource? _drained;
        private DateTime _lastActivityUtc = now;

        public Guid Id { get; } = id;
        public string Name { get; } = name;
        public long Size { get; } = size;
        public string TempPath { get; } = tempPath;
        public SafeFileHandle Handle { get; } = handle;
        public UploadHasher Hasher { get; } = new();
        public WriteBehind WriteBehind { get; } = new(handle);
        public bool Closed { get; private set; }

        /// <summary>Counts a chunk write in; false once a completion or abort has begun.</summary>
        public bool TryEnter()
        {
            lock (_gate)
            {
                if (_closing) return false;
                _writing++;
                return true;
            }
        }

        public void Exit(DateTime now)
        {
            TaskCompletionSource? drained = null;
            lock (_gate)
            {
                _lastActivityUtc = now;
                if (--_writing == 0 && _closing) drained = _drained;
            }

            drained?.TrySetResult();
        }

        /// <summary>
        /// Refuses further chunks; <paramref name="drained"/> completes when those in flight are written.
        /// False when another completion or abort closed it first.
        /// </summary>
        public bool TryClose(out Task drained)
        {
            lock (_gate)
            {
                drained = Task.CompletedTask;
                if (_closing) return false;
                _closing = true;
                if (_writing > 0)
                {
                    _drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    drained = _drained.Task;
                }

                return true;
            }
        }

        /// <summary>Closes it when nothing is in flight and nothing happened since <paramref name="cutoff"/>.</summary>
        public bool TryCloseIdle(DateTime cutoff)
        {
            lock (_gate)
            {
                if (_closing || _writing > 0 || _lastActivityUtc >= cutoff) return false;
                _closing = true;
                return true;
            }
        }

        public void Close()
        {
            if (Closed) return;
            Closed = true;
            Handle.Dispose();
            Hasher.Dispose();
        }
    }
}
