using P2PShare.Compute;
using P2PShare.Files;
using P2PShare.Memory;

namespace P2PShare.Peers;

/// <summary>
/// A peer's public face. Keyed by peer name and pinned to the silo of that name: it never activates
/// anywhere else, and calling a peer whose silo is gone fails with <see cref="PeerUnavailableException"/>.
/// The grain only validates and forwards; the memory and files live in services of its silo.
/// </summary>
[Alias("P2PShare.IPeerGrain")]
public interface IPeerGrain : IGrainWithStringKey
{
    [Alias("Describe")]
    Task<PeerDescription> DescribeAsync();

    // ---- memory ----

    /// <summary>Stores <paramref name="value"/> under <paramref name="key"/>, replacing any old value.</summary>
    /// <exception cref="QuotaExceededException">The store would exceed its quota; nothing is evicted.</exception>
    [Alias("MemSet")]
    Task SetAsync(string key, [Immutable] byte[] value, TimeSpan? ttl);

    /// <exception cref="NotFoundException">No such key, or it expired.</exception>
    [Alias("MemGet")]
    Task<byte[]> GetAsync(string key);

    /// <exception cref="NotFoundException">No such key, or it expired.</exception>
    [Alias("MemDelete")]
    Task DeleteAsync(string key);

    [Alias("MemList")]
    Task<MemoryListing> ListAsync(string prefix, int limit);

    // ---- files ----

    /// <summary>Starts an upload of exactly <paramref name="size"/> bytes; reserves that much quota.</summary>
    [Alias("FileBeginUpload")]
    Task<UploadTicket> BeginUploadAsync(string name, long size);

    [Alias("FileWriteChunk")]
    Task WriteChunkAsync(Guid uploadId, long offset, [Immutable] byte[] data);

    /// <summary>Verifies size and SHA-256, then makes the file visible atomically.</summary>
    [Alias("FileCompleteUpload")]
    Task<StoredFileInfo> CompleteUploadAsync(Guid uploadId, string sha256);

    [Alias("FileAbortUpload")]
    Task AbortUploadAsync(Guid uploadId);

    [Alias("FileOpenDownload")]
    Task<DownloadTicket> OpenDownloadAsync(string name);

    [Alias("FileReadChunk")]
    Task<byte[]> ReadChunkAsync(Guid downloadId, long offset, int count);

    [Alias("FileCloseDownload")]
    Task CloseDownloadAsync(Guid downloadId);

    [Alias("FileStat")]
    Task<StoredFileInfo> StatAsync(string name);

    [Alias("FileList")]
    Task<FileListing> ListFilesAsync(string prefix, int limit);

    [Alias("FileDelete")]
    Task DeleteFileAsync(string name);

    // ---- compute ----

    /// <summary>
    /// Submits a task with this peer as its origin and returns its job at once (Queued). A
    /// confidential task runs here; otherwise the tracker picks the least-loaded peer, or
    /// <see cref="TaskSpec.PinnedPeer"/> names one. Job ids name the executing peer:
    /// <c>PEER:ID</c>.
    /// </summary>
    [Alias("Submit")]
    Task<JobInfo> SubmitAsync(TaskSpec task);

    /// <summary>Accepts a task routed here by its origin peer.</summary>
    /// <exception cref="PeerUnavailableException">This peer is stopping or its worker pool is broken.</exception>
    [Alias("Enqueue")]
    Task<JobInfo> EnqueueAsync(string origin, TaskSpec task);

    [Alias("GetJob")]
    Task<JobInfo> GetJobAsync(string jobId);

    /// <summary>Returns when the job is terminal or after <paramref name="maxWait"/>, whichever is first.</summary>
    [Alias("WaitJob")]
    Task<JobInfo> WaitJobAsync(string jobId, TimeSpan maxWait);

    /// <summary>Removes a queued job or kills a running one. A finished job is returned unchanged.</summary>
    [Alias("CancelJob")]
    Task<JobInfo> CancelJobAsync(string jobId);

    /// <summary>The most recent jobs this peer executed, newest first.</summary>
    [Alias("ListJobs")]
    Task<JobListing> ListJobsAsync(int limit);
}
