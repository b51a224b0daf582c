using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using P2PShare.Telemetry;

namespace P2PShare.Files;

/// <summary>
/// A peer's shared disk. Files live under <c>DATA/files</c> with their user-visible names. An upload
/// writes to <c>DATA/tmp</c>, is checked against the SHA-256 the client computed, and only then is
/// renamed into place, so readers never see a partial file. The temp folder is emptied at start, so a
/// crash mid-upload leaks nothing past a restart. Each file's hash is kept in a sidecar under
/// <c>DATA/meta</c>, trusted only while it matches the file's size and modification time.
/// Quota counts stored files plus the declared size of uploads in progress.
/// </summary>
public sealed partial class FileStore : IDisposable
{
    private readonly DiskOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<FileStore> _logger;
    private readonly string _filesDir;
    private readonly string _tmpDir;
    private readonly string _metaDir;
    private readonly object _gate = new();
    private readonly ConcurrentDictionary<Guid, UploadSession> _uploads = new();
    private readonly ConcurrentDictionary<Guid, DownloadSession> _downloads = new();
    private readonly ITimer _reaper;
    private long _usedBytes;
    private long _reservedBytes;
    private long _fileCount;
    private readonly P2PShareMetrics? _metrics;

    public FileStore(IOptions<DiskOptions> options, PeerDataDirectory data, TimeProvider time, ILogger<FileStore> logger, P2PShareMetrics? metrics = null)
    {
        _options = options.Value;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _filesDir = Path.Combine(data.Path, "files");
        _tmpDir = Path.Combine(data.Path, "tmp");
        _metaDir = Path.Combine(data.Path, "meta");

        Directory.CreateDirectory(_filesDir);
        Directory.CreateDirectory(_metaDir);
        // Anything in tmp belongs to an upload that never completed before the last stop or crash.
        if (Directory.Exists(_tmpDir))
        {
            var leftovers = Directory.GetFiles(_tmpDir).Length;
            Directory.Delete(_tmpDir, recursive: true);
            if (leftovers > 0) LogDiscardedTemp(leftovers);
        }

        Directory.CreateDirectory(_tmpDir);
        foreach (var file in new DirectoryInfo(_filesDir).EnumerateFiles("*", SearchOption.AllDirectories))
        {
            _usedBytes += file.Length;
            _fileCount++;
        }

        var period = TimeSpan.FromSeconds(Math.Clamp(_options.SessionIdleTimeout.TotalSeconds / 4, 0.05, 30));
        _reaper = time.CreateTimer(_ => ReapIdleSessions(), null, period, period);
    }

    /// <summary>Raised after stored bytes change (used by the load reporter).</summary>
    public event Action? Changed;

    public long QuotaBytes => _options.QuotaBytes;
    public long MaxFileBytes => _options.MaxFileBytes;
    public int ChunkBytes => _options.ChunkBytes;

    public (long UsedBytes, long ReservedBytes, long Files) Usage
    {
        get
        {
            lock (_gate) return (_usedBytes, _reservedBytes, _fileCount);
        }
    }

    public int OpenUploads => _uploads.Count;
    public int OpenDownloads => _downloads.Count;

    // ------------------------------------------------------------------ uploads

    public UploadTicket BeginUpload(string name, long size)
    {
        Names.ValidateFileName(name);
        if (size < 0) throw new InvalidArgumentException("file size cannot be negative");
        if (size > _options.MaxFileBytes)
            throw new InvalidArgumentException(
                $"file of {Bytes.Format(size)} is larger than the limit of {Bytes.Format(_options.MaxFileBytes)}");
        EnsureNoFolderInTheWay(name);

        lock (_gate)
        {
            // Conservative: the old version of a replaced file still counts until the new one lands.
            if (_usedBytes + _reservedBytes + size > _options.QuotaBytes)
                throw new QuotaExceededException("disk", size, _usedBytes + _reservedBytes, _options.QuotaBytes);
            _reservedBytes += size;
        }

        var id = Guid.NewGuid();
        var tempPath = Path.Combine(_tmpDir, id.ToString("N") + ".part");
        try
        {
            var handle = File.OpenHandle(tempPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.Asynchronous);
            _uploads[id] = new UploadSession(id, name, size, tempPath, handle, Now());
        }
        catch
        {
            Release(size);
            throw;
        }

        return new UploadTicket(id, _options.ChunkBytes);
    }

    public async Task WriteChunkAsync(Guid uploadId, long offset, ReadOnlyMemory<byte> data)
    {
        var session = GetUpload(uploadId);
        if (data.Length > _options.ChunkBytes)
            throw new InvalidArgumentException($"chunk of {data.Length} bytes is larger than the limit of {_options.ChunkBytes}");
        if (offset < 0 || offset + data.Length > session.Size)
            throw new InvalidArgumentException(
                $"chunk at {offset}+{data.Length} lies outside the declared size of {session.Size} bytes");

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

        _metrics?.FileBytesIn(data.Length);
    }

    public async Task<StoredFileInfo> CompleteUploadAsync(Guid uploadId, string sha256)
    {
        var session = GetUpload(uploadId);
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
                ? await HashAsync(session.Handle, session.Size).ConfigureAwait(false)
                : Convert.ToHexStringLower(session.Hash.GetHashAndReset());
            if (actual != expected)
            {
                await AbortLockedAsync(session).ConfigureAwait(false);
                throw new IntegrityException($"sha256 mismatch for '{session.Name}': sent {expected}, received {actual}");
            }

            RandomAccess.FlushToDisk(session.Handle);
            session.Close();
            _uploads.TryRemove(uploadId, out _);

            var target = FilePath(session.Name);
            long replacedSize;
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                lock (_gate)
                {
                    // Rename is atomic on one file system: readers see the old file or the new one.
                    var old = new FileInfo(target);
                    replacedSize = old.Exists ? old.Length : -1;
                    File.Move(session.TempPath, target, overwrite: true);
                    _reservedBytes -= session.Size;
                    _usedBytes += session.Size - Math.Max(0, replacedSize);
                    if (replacedSize < 0) _fileCount++;
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                TryDelete(session.TempPath);
                Release(session.Size);
                throw new InvalidArgumentException($"cannot store '{session.Name}': {ex.Message}");
            }

            var info = WriteSidecar(session.Name, actual);
            LogStored(session.Name, session.Size);
            Changed?.Invoke();
            return info;
        }
        finally
        {
            session.Lock.Release();
        }
    }

    public async Task AbortUploadAsync(Guid uploadId)
    {
        var session = GetUpload(uploadId);
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

    // ------------------------------------------------------------------ downloads

    public async Task<DownloadTicket> OpenDownloadAsync(string name)
    {
        Names.ValidateFileName(name);
        SafeFileHandle handle;
        try
        {
            // Holding the handle pins this version: a concurrent put renames a new file over the
            // name, but this inode stays readable until the download closes.
            handle = File.OpenHandle(FilePath(name), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete,
                FileOptions.Asynchronous);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new NotFoundException("file", name);
        }
        catch (UnauthorizedAccessException)
        {
            throw new NotFoundException("file", name); // a folder, not a file
        }

        try
        {
            var info = await DescribeAsync(name, handle).ConfigureAwait(false);
            var session = new DownloadSession(Guid.NewGuid(), info, handle, Now());
            _downloads[session.Id] = session;
            return new DownloadTicket(session.Id, info, _options.ChunkBytes);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    public async Task<byte[]> ReadChunkAsync(Guid downloadId, long offset, int count)
    {
        if (!_downloads.TryGetValue(downloadId, out var session)) throw new NotFoundException("download", downloadId.ToString());
        if (count <= 0 || count > _options.ChunkBytes)
            throw new InvalidArgumentException($"chunk size must be 1..{_options.ChunkBytes}");
        if (offset < 0 || offset > session.File.Size)
            throw new InvalidArgumentException($"offset {offset} lies outside the file's {session.File.Size} bytes");

        var length = (int)Math.Min(count, session.File.Size - offset);
        var buffer = new byte[length];
        var filled = 0;
        while (filled < length)
        {
            var read = await RandomAccess.ReadAsync(session.Handle, buffer.AsMemory(filled), offset + filled).ConfigureAwait(false);
            if (read == 0) break;
            filled += read;
        }

        session.LastActivityUtc = Now();
        _metrics?.FileBytesOut(filled);
        return filled == length ? buffer : buffer[..filled];
    }

    public void CloseDownload(Guid downloadId)
    {
        if (_downloads.TryRemove(downloadId, out var session)) session.Handle.Dispose();
    }

    // ------------------------------------------------------------------ catalogue

    public async Task<StoredFileInfo> StatAsync(string name)
    {
        Names.ValidateFileName(name);
        var path = FilePath(name);
        if (!File.Exists(path)) throw new NotFoundException("file", name);
        using var handle = OpenForRead(path, name);
        return await DescribeAsync(name, handle).ConfigureAwait(false);
    }

    public async Task<FileListing> ListAsync(string? prefix, int limit)
    {
        if (limit <= 0) throw new InvalidArgumentException("limit must be positive");
        prefix ??= "";
        var names = new DirectoryInfo(_filesDir)
            .EnumerateFiles("*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(_filesDir, f.FullName).Replace(Path.DirectorySeparatorChar, '/'))
            .Where(n => n.StartsWith(prefix, StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .Take(limit + 1)
            .ToList();

        var result = new List<StoredFileInfo>(Math.Min(names.Count, limit));
        foreach (var name in names.Take(limit))
        {
            try
            {
                using var handle = OpenForRead(FilePath(name), name);
                result.Add(await DescribeAsync(name, handle).ConfigureAwait(false));
            }
            catch (NotFoundException)
            {
                // Deleted while listing: not part of the answer.
            }
        }

        return new FileListing([.. result], names.Count > limit);
    }

    public void Delete(string name)
    {
        Names.ValidateFileName(name);
        var path = FilePath(name);
        lock (_gate)
        {
            var file = new FileInfo(path);
            if (!file.Exists) throw new NotFoundException("file", name);
            var size = file.Length;
            file.Delete();
            _usedBytes -= size;
            _fileCount--;
        }

        TryDelete(SidecarPath(name));
        LogDeleted(name);
        Changed?.Invoke();
    }

    public void Dispose()
    {
        _reaper.Dispose();
        foreach (var session in _uploads.Values) session.Close();
        foreach (var session in _downloads.Values) session.Handle.Dispose();
    }

    /// <summary>Drops uploads and downloads nobody touched within the idle timeout.</summary>
    public int ReapIdleSessions()
    {
        var cutoff = Now() - _options.SessionIdleTimeout;
        var reaped = 0;
        foreach (var session in _uploads.Values.Where(s => s.LastActivityUtc < cutoff))
        {
            if (!session.Lock.Wait(0)) continue; // busy right now, so not idle
            try
            {
                AbortLockedAsync(session).GetAwaiter().GetResult();
                reaped++;
                LogUploadExpired(session.Name);
            }
            finally
            {
                session.Lock.Release();
            }
        }

        foreach (var session in _downloads.Values.Where(s => s.LastActivityUtc < cutoff))
        {
            CloseDownload(session.Id);
            reaped++;
        }

        return reaped;
    }

    // ------------------------------------------------------------------ helpers

    private UploadSession GetUpload(Guid id) =>
        _uploads.TryGetValue(id, out var session) ? session : throw new NotFoundException("upload", id.ToString());

    private Task AbortLockedAsync(UploadSession session)
    {
        if (session.Closed) return Task.CompletedTask;
        session.Close();
        _uploads.TryRemove(session.Id, out _);
        TryDelete(session.TempPath);
        Release(session.Size);
        return Task.CompletedTask;
    }

    private void Release(long reserved)
    {
        lock (_gate) _reservedBytes -= reserved;
    }

    private void EnsureNoFolderInTheWay(string name)
    {
        var target = FilePath(name);
        if (Directory.Exists(target))
            throw new InvalidArgumentException($"cannot store '{name}': a folder of that name exists");
        var parent = Path.GetDirectoryName(target)!;
        while (parent.Length > _filesDir.Length)
        {
            if (File.Exists(parent))
                throw new InvalidArgumentException(
                    $"cannot store '{name}': '{Path.GetRelativePath(_filesDir, parent)}' is a file, not a folder");
            parent = Path.GetDirectoryName(parent)!;
        }
    }

    private static SafeFileHandle OpenForRead(string path, string name)
    {
        try
        {
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, FileOptions.Asynchronous);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            throw new NotFoundException("file", name);
        }
    }

    private async Task<StoredFileInfo> DescribeAsync(string name, SafeFileHandle handle)
    {
        var size = RandomAccess.GetLength(handle);
        var modified = File.GetLastWriteTimeUtc(handle);
        var sidecar = ReadSidecar(name);
        if (sidecar is not null && sidecar.Size == size && sidecar.ModifiedTicks == modified.Ticks)
            return new StoredFileInfo(name, size, sidecar.Sha256, modified);

        // No trustworthy sidecar (crash between rename and sidecar write, or a file placed by hand).
        var sha = await HashAsync(handle, size).ConfigureAwait(false);
        WriteSidecarRecord(name, new Sidecar(size, modified.Ticks, sha));
        return new StoredFileInfo(name, size, sha, modified);
    }

    private StoredFileInfo WriteSidecar(string name, string sha)
    {
        var file = new FileInfo(FilePath(name));
        var modified = file.LastWriteTimeUtc;
        WriteSidecarRecord(name, new Sidecar(file.Length, modified.Ticks, sha));
        return new StoredFileInfo(name, file.Length, sha, modified);
    }

    private void WriteSidecarRecord(string name, Sidecar record)
    {
        var path = SidecarPath(name);
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var temp = Path.Combine(_tmpDir, Guid.NewGuid().ToString("N") + ".meta");
            File.WriteAllBytes(temp, JsonSerializer.SerializeToUtf8Bytes(record));
            File.Move(temp, path, overwrite: true);
        }
        catch (IOException ex)
        {
            // The sidecar is a cache: without it the hash is recomputed on the next read.
            LogSidecarFailed(name, ex.Message);
        }
    }

    private Sidecar? ReadSidecar(string name)
    {
        try
        {
            return JsonSerializer.Deserialize<Sidecar>(File.ReadAllBytes(SidecarPath(name)));
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static async Task<string> HashAsync(SafeFileHandle handle, long size)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1024 * 1024];
        long offset = 0;
        while (offset < size)
        {
            var read = await RandomAccess.ReadAsync(handle, buffer, offset).ConfigureAwait(false);
            if (read == 0) break;
            hash.AppendData(buffer, 0, read);
            offset += read;
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private string FilePath(string name) => Path.Combine(_filesDir, name.Replace('/', Path.DirectorySeparatorChar));

    private string SidecarPath(string name) => Path.Combine(_metaDir, name.Replace('/', Path.DirectorySeparatorChar) + ".meta");

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
    }

    private DateTime Now() => _time.GetUtcNow().UtcDateTime;

    [LoggerMessage(Level = LogLevel.Information, Message = "Discarded {Count} temp files of interrupted uploads")]
    private partial void LogDiscardedTemp(int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stored file {Name} ({Size} bytes)")]
    private partial void LogStored(string name, long size);

    [LoggerMessage(Level = LogLevel.Information, Message = "Deleted file {Name}")]
    private partial void LogDeleted(string name);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Upload of {Name} expired after being idle; temp space freed")]
    private partial void LogUploadExpired(string name);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not write the hash sidecar of {Name}: {Reason}")]
    private partial void LogSidecarFailed(string name, string reason);

    private sealed record Sidecar(long Size, long ModifiedTicks, string Sha256);

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

    private sealed class DownloadSession(Guid id, StoredFileInfo file, SafeFileHandle handle, DateTime now)
    {
        public Guid Id { get; } = id;
        public StoredFileInfo File { get; } = file;
        public SafeFileHandle Handle { get; } = handle;
        public DateTime LastActivityUtc { get; set; } = now;
    }
}

/// <summary>The peer's data folder, resolved once at start.</summary>
public sealed class PeerDataDirectory(string path)
{
    public string Path { get; } = System.IO.Path.GetFullPath(path);
}
