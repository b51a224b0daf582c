using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;
using P2PShare.Telemetry;

namespace P2PShare.Files;

/// <summary>
/// Uploads in progress. Each writes to its own file under <c>DATA/tmp</c>, hashed on the fly while
/// chunks arrive in order, and is checked against the SHA-256 the client computed before it is
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
        var session = Get(uploadId);
        if (data.Length > chunkBytes)
            throw new InvalidArgumentException($"chunk of {data.Length} bytes is larger than the limit of {chunkBytes}");
        if (offset < 0 || offset + data.Length > session.Size)
        {
            throw new InvalidArgumentException(
                $"chunk at {offset}+{data.Length} lies outside the declared size of {session.Size} bytes");
        }

        await session.Lock.WaitAsync().ConfigureAwait(false);
        try
        {
            session.ThrowIfClosed();
            await RandomAccess.WriteAsync(session.Handle, data, offset).ConfigureAwait(false);
            // Hash on the fly while chunks arrive in order (the usual case); otherwise re-read at the end.
            if (offset == session.HashedUpTo)
            {
                session.Hash.AppendData(data.Span);
                session.HashedUpTo += data.Length;
            }
            else
            {
                session.OutOfOrder = true;
            }

            session.LastActivityUtc = Now();
        }
        finally
        {
            session.Lock.Release();
        }

        metrics?.FileBytesIn(data.Length);
    }

    public async Task<StoredFileInfo> CompleteAsync(Guid uploadId, string sha256)
    {
        var session = Get(uploadId);
        var expected = (sha256 ?? "").Trim().ToLowerInvariant();
        if (expected.Length != 64 || !expected.All(Uri.IsHexDigit))
            throw new InvalidArgumentException("sha256 must be 64 hex digits");

        await session.Lock.WaitAsync().ConfigureAwait(false);
        try
        {
            session.ThrowIfClosed();
            var length = RandomAccess.GetLength(session.Handle);
            if (length != session.Size)
            {
                await AbortLockedAsync(session).ConfigureAwait(false);
                throw new IntegrityException($"upload of '{session.Name}' is incomplete: got {length} of {session.Size} bytes");
            }

            var actual = session.OutOfOrder || session.HashedUpTo != session.Size
                ? await HashSidecars.HashAsync(session.Handle, session.Size).ConfigureAwait(false)
                : Convert.ToHexStringLower(session.Hash.GetHashAndReset());
            if (actual != expected)
            {
                await AbortLockedAsync(session).ConfigureAwait(false);
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
        finally
        {
            session.Lock.Release();
        }
    }

    public async Task AbortAsync(Guid uploadId)
    {
        var session = Get(uploadId);
        await session.Lock.WaitAsync().ConfigureAwait(false);
        try
        {
            await AbortLockedAsync(session).ConfigureAwait(false);
        }
        finally
        {
            session.Lock.Release();
        }
    }

    /// <summary>Drops uploads nobody touched since <paramref name="cutoff"/>, freeing their temp space; returns how many.</summary>
    public int ReapIdle(DateTime cutoff)
    {
        var reaped = 0;
        foreach (var session in _uploads.Values.Where(s => s.LastActivityUtc < cutoff))
        {
            if (!session.Lock.Wait(0)) continue; // busy right now, so not idle
            try
            {
                AbortLockedAsync(session).GetAwaiter().GetResult();
                reaped++;
                LogUploadExpired(logger, session.Name);
            }
            finally
            {
                session.Lock.Release();
            }
        }

        return reaped;
    }

    public void Dispose()
    {
        foreach (var session in _uploads.Values) session.Close();
    }

    private UploadSession Get(Guid id) =>
        _uploads.TryGetValue(id, out var session) ? session : throw new NotFoundException("upload", id.ToString());

    private Task AbortLockedAsync(UploadSession session)
    {
        if (session.Closed) return Task.CompletedTask;
        session.Close();
        _uploads.TryRemove(session.Id, out _);
        TryDelete(session.TempPath);
        catalogue.Release(session.Size);
        return Task.CompletedTask;
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
        public Guid Id { get; } = id;
        public string Name { get; } = name;
        public long Size { get; } = size;
        public string TempPath { get; } = tempPath;
        public SafeFileHandle Handle { get; } = handle;
        public SemaphoreSlim Lock { get; } = new(1, 1);
        public IncrementalHash Hash { get; } = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        public long HashedUpTo { get; set; }
        public bool OutOfOrder { get; set; }
        public bool Closed { get; private set; }
        public DateTime LastActivityUtc { get; set; } = now;

        public void ThrowIfClosed()
        {
            if (Closed) throw new NotFoundException("upload", Id.ToString());
        }

        public void Close()
        {
            if (Closed) return;
            Closed = true;
            Handle.Dispose();
            Hash.Dispose();
        }
    }
}
