using Orleans.Serialization.Buffers;
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
/// <remarks>
/// The work is done by its parts: <see cref="UploadSessions"/>, <see cref="DownloadSessions"/>,
/// <see cref="FileCatalogue"/> (stored files and the quota) and <see cref="HashSidecars"/>. They log
/// through this store's logger.
/// </remarks>
public sealed partial class FileStore : IDisposable
{
    private readonly DiskOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<FileStore> _logger;
    private readonly FileCatalogue _catalogue;
    private readonly UploadSessions _uploads;
    private readonly DownloadSessions _downloads;
    private readonly ITimer _reaper;

    public FileStore(IOptions<DiskOptions> options, PeerDataDirectory data, TimeProvider time, ILogger<FileStore> logger, P2PShareMetrics? metrics = null)
    {
        _options = options.Value;
        _time = time;
        _logger = logger;
        var filesDir = Path.Combine(data.Path, "files");
        var tmpDir = Path.Combine(data.Path, "tmp");
        var metaDir = Path.Combine(data.Path, "meta");

        Directory.CreateDirectory(filesDir);
        Directory.CreateDirectory(metaDir);
        // Anything in tmp belongs to an upload that never completed before the last stop or crash.
        if (Directory.Exists(tmpDir))
        {
            var leftovers = Directory.GetFiles(tmpDir).Length;
            Directory.Delete(tmpDir, recursive: true);
            if (leftovers > 0) LogDiscardedTemp(leftovers);
        }

        Directory.CreateDirectory(tmpDir);
        _catalogue = new FileCatalogue(filesDir, _options.QuotaBytes, new HashSidecars(metaDir, tmpDir, logger));
        _uploads = new UploadSessions(tmpDir, _options.MaxFileBytes, _options.ChunkBytes, _catalogue, () => Changed?.Invoke(), time, logger, metrics);
        _downloads = new DownloadSessions(_options.ChunkBytes, _catalogue, time, metrics);

        var period = TimeSpan.FromSeconds(Math.Clamp(_options.SessionIdleTimeout.TotalSeconds / 4, 0.05, 30));
        _reaper = time.CreateTimer(_ => ReapIdleSessions(), null, period, period);
    }

    /// <summary>Raised after stored bytes change (used by the load reporter).</summary>
    public event Action? Changed;

    public long QuotaBytes => _options.QuotaBytes;
    public long MaxFileBytes => _options.MaxFileBytes;
    public int ChunkBytes => _options.ChunkBytes;

    public (long UsedBytes, long ReservedBytes, long Files) Usage => _catalogue.Usage;

    public int OpenUploads => _uploads.Count;
    public int OpenDownloads => _downloads.Count;

    // ------------------------------------------------------------------ uploads

    public UploadTicket BeginUpload(string name, long size) => _uploads.Begin(name, size);

    public Task WriteChunkAsync(Guid uploadId, long offset, ReadOnlyMemory<byte> data) => _uploads.WriteChunkAsync(uploadId, offset, data);

    /// <summary>Writes a chunk held in pooled memory and returns that memory to its pool, whatever happens.</summary>
    public Task WriteChunkAsync(Guid uploadId, long offset, PooledBuffer data) => _uploads.WriteChunkAsync(uploadId, offset, data);

    public Task<StoredFileInfo> CompleteUploadAsync(Guid uploadId, string sha256) => _uploads.CompleteAsync(uploadId, sha256);

    public Task AbortUploadAsync(Guid uploadId) => _uploads.AbortAsync(uploadId);

    // ------------------------------------------------------------------ downloads

    public Task<DownloadTicket> OpenDownloadAsync(string name) => _downloads.OpenAsync(name);

    public Task<byte[]> ReadChunkAsync(Guid downloadId, long offset, int count) => _downloads.ReadChunkAsync(downloadId, offset, count);

    /// <summary>Reads a chunk into pooled memory; the caller owns it (Orleans returns it once the reply is sent).</summary>
    public Task<PooledBuffer> ReadPooledChunkAsync(Guid downloadId, long offset, int count) => _downloads.ReadPooledChunkAsync(downloadId, offset, count);

    public void CloseDownload(Guid downloadId) => _downloads.Close(downloadId);

    // ------------------------------------------------------------------ catalogue

    public Task<StoredFileInfo> StatAsync(string name) => _catalogue.StatAsync(name);

    public Task<FileListing> ListAsync(string? prefix, int limit) => _catalogue.ListAsync(prefix, limit);

    public void Delete(string name)
    {
        _catalogue.Delete(name);
        LogDeleted(name);
        Changed?.Invoke();
    }

    public void Dispose()
    {
        _reaper.Dispose();
        _uploads.Dispose();
        _downloads.Dispose();
    }

    /// <summary>Drops uploads and downloads nobody touched within the idle timeout.</summary>
    public int ReapIdleSessions()
    {
        var cutoff = _time.GetUtcNow().UtcDateTime - _options.SessionIdleTimeout;
        var reaped = _uploads.ReapIdle(cutoff);
        return reaped + _downloads.ReapIdle(cutoff);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Discarded {Count} temp files of interrupted uploads")]
    private partial void LogDiscardedTemp(int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Deleted file {Name}")]
    private partial void LogDeleted(string name);
}
