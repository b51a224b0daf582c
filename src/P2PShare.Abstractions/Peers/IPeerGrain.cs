using System.Collections.Immutable;
using Orleans.Serialization.Buffers;
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

    /// <summary>
    /// Stores every item or none, replacing old values; a key given twice keeps its last value.
    /// <paramref name="ttl"/> applies to all of them.
    /// </summary>
    /// <exception cref="QuotaExceededException">The items together would exceed the quota; nothing is stored or evicted.</exception>
    [Alias("MemMSet")]
    Task MSetAsync([Immutable] ImmutableArray<MemoryItem> items, TimeSpan? ttl);

    /// <summary>The values of <paramref name="keys"/>, in order, read in one consistent look; null for a missing or expired key.</summary>
    [Alias("MemMGet")]
    Task<ImmutableArray<byte[]?>> MGetAsync(ImmutableArray<string> keys);

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

    /// <summary>
    /// <see cref="WriteChunkAsync"/> for streaming clients: the chunk travels in pooled memory, which
    /// Orleans returns to its pool once it is sent, and the peer returns once it is written. The
    /// caller must not touch <paramref name="data"/> after the call. Several may be in flight.
    /// </summary>
    [Alias("FileWritePooledChunk")]
    Task WritePooledChunkAsync(Guid uploadId, long offset, PooledBuffer data);

    [Alias("FileOpenDownload")]
    Task<DownloadTicket> OpenDownloadAsync(string name);

    [Alias("FileReadChunk")]
    Task<byte[]> ReadChunkAsync(Guid downloadId, long offset, int count);

    /// <summary>
    /// <see cref="ReadChunkAsync"/> for streaming clients: the chunk comes back in pooled memory,
    /// which the caller owns and must dispose. Several may be in flight.
    /// </summary>
    [Alias("FileReadPooledChunk")]
    Task<PooledBuffer> ReadPooledChunkAsync(Guid downloadId, long offset, int count);

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
    /// <see cref="TaskSpec.PinnedPeer"/> names one. Follow the job with <see cref="IJobGrain"/>
    /// (<c>grains.GetJob(id)</c>); job ids name the origin: <c>PEER:ID</c>.
    /// </summary>
    [Alias("Submit")]
    Task<JobInfo> SubmitAsync(TaskSpec task);

    /// <summary>
    /// Runs a task with this peer as its origin on the fast path and answers with its finished job:
    /// one call to the executing peer, picked from this silo's load view, no grain or storage write per
    /// task. A task still running after <c>Compute:PromoteAfter</c> is handed to its job's grain and
    /// the answer is its Queued/Running record: follow it with <see cref="IJobGrain"/> like a detached job.
    /// A peer lost under the task is handled as for <see cref="SubmitAsync"/> (retries, PeerLost).
    /// </summary>
    /// <exception cref="InvalidArgumentException">The task is malformed.</exception>
    /// <exception cref="NoPeersAvailableException">No live peer can take it.</exception>
    [Alias("Run")]
    Task<JobInfo> RunAsync(TaskSpec task);

    /// <summary>
    /// <see cref="RunAsync"/> for many tasks in one call: each item comes back as soon as its task
    /// finishes (in finishing order, with its index in <paramref name="tasks"/>), or is promoted.
    /// </summary>
    [Alias("RunBatch")]
    IAsyncEnumerable<BatchItem> RunBatchAsync(ImmutableArray<TaskSpec> tasks);

    /// <summary>
    /// Runs one attempt of a job sent on the fast path by its origin and answers when it ends, or
    /// after <paramref name="promoteAfter"/> with its Queued/Running record. A refusal is a value.
    /// </summary>
    [Alias("RunAttempt")]
    Task<AttemptReply> RunAttemptAsync(JobAssignment assignment, TimeSpan promoteAfter);

    /// <summary>
    /// This origin's in-memory record of a job it runs or ran on the fast path; null when it has none
    /// (never had it, or it was promoted to its grain). Waits up to <paramref name="maxWait"/> for it to end.
    /// </summary>
    /// <exception cref="ExpiredException">It finished and its record was dropped.</exception>
    [Alias("FindJob")]
    Task<JobInfo?> FindJobAsync(string jobId, TimeSpan maxWait);

    /// <summary>Cancels a fast-path job of this origin; null when it has no such job.</summary>
    [Alias("CancelJob")]
    Task<JobInfo?> CancelJobAsync(string jobId);

    /// <summary>Runs one attempt of a job, sent by the job's supervisor. Returns the attempt's record (Queued).</summary>
    /// <exception cref="PeerUnavailableException">This peer is stopping or its worker pool is broken.</exception>
    [Alias("Execute")]
    Task<JobInfo> ExecuteAsync(JobAssignment assignment);

    /// <summary>This peer's record of an attempt; returns when it is terminal or after <paramref name="maxWait"/>.</summary>
    /// <exception cref="NotFoundException">This peer has no such attempt (e.g. it restarted since).</exception>
    [Alias("WaitAttempt")]
    Task<JobInfo> WaitAttemptAsync(string jobId, int attempt, TimeSpan maxWait);

    /// <summary>Removes a queued attempt or kills a running one.</summary>
    /// <exception cref="NotFoundException">This peer has no such attempt.</exception>
    [Alias("CancelAttempt")]
    Task<JobInfo> CancelAttemptAsync(string jobId, int attempt);

    /// <summary>The most recent attempts this peer executed, newest first.</summary>
    [Alias("ListJobs")]
    Task<JobListing> ListJobsAsync(int limit);
}
