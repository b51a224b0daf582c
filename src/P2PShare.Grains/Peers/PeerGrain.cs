using Orleans.Placement;
using P2PShare.Compute;
using P2PShare.Files;
using P2PShare.Tracker;
using P2PShare.Memory;
using P2PShare.Placement;

namespace P2PShare.Peers;

/// <summary>
/// Thin front of a peer's silo services. Reentrant because it holds no state of its own: the
/// stores are thread-safe, and a slow chunk write must not hold up another caller's key lookup.
/// </summary>
[PeerPlacement, Immovable, Reentrant]
public sealed partial class PeerGrain(PeerIdentity identity, MemoryStore memory, FileStore files, JobService compute, ILogger<PeerGrain> logger)
    : Grain, IPeerGrain
{
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        // The placement director guarantees this; checking keeps a bug from serving the wrong disk.
        var key = this.GetPrimaryKeyString();
        if (!string.Equals(key, identity.Name, StringComparison.Ordinal))
            throw new PeerUnavailableException(key, $"activation landed on silo '{identity.Name}'");
        return Task.CompletedTask;
    }

    public Task<PeerDescription> DescribeAsync() => Task.FromResult(new PeerDescription(
        identity.Name, identity.Silo, identity.Gateway, memory.QuotaBytes, memory.MaxValueBytes,
        files.QuotaBytes, files.MaxFileBytes, identity.StartedUtc));

    public Task SetAsync(string key, byte[] value, TimeSpan? ttl)
    {
        memory.Set(key, value, ttl);
        return Task.CompletedTask;
    }

    public Task<byte[]> GetAsync(string key) => Task.FromResult(memory.Get(key));

    public Task DeleteAsync(string key)
    {
        memory.Delete(key);
        return Task.CompletedTask;
    }

    public Task<MemoryListing> ListAsync(string prefix, int limit) => Task.FromResult(memory.List(prefix, limit));

    public Task<UploadTicket> BeginUploadAsync(string name, long size) => Task.FromResult(files.BeginUpload(name, size));

    public Task WriteChunkAsync(Guid uploadId, long offset, byte[] data) => files.WriteChunkAsync(uploadId, offset, data);

    public Task<StoredFileInfo> CompleteUploadAsync(Guid uploadId, string sha256) => files.CompleteUploadAsync(uploadId, sha256);

    public Task AbortUploadAsync(Guid uploadId) => files.AbortUploadAsync(uploadId);

    public Task<DownloadTicket> OpenDownloadAsync(string name) => files.OpenDownloadAsync(name);

    public Task<byte[]> ReadChunkAsync(Guid downloadId, long offset, int count) => files.ReadChunkAsync(downloadId, offset, count);

    public Task CloseDownloadAsync(Guid downloadId)
    {
        files.CloseDownload(downloadId);
        return Task.CompletedTask;
    }

    public Task<StoredFileInfo> StatAsync(string name) => files.StatAsync(name);

    public Task<FileListing> ListFilesAsync(string prefix, int limit) => files.ListAsync(prefix, limit);

    public Task DeleteFileAsync(string name)
    {
        files.Delete(name);
        return Task.CompletedTask;
    }

    // ---- compute ----

    public async Task<JobInfo> SubmitAsync(TaskSpec task)
    {
        var self = identity.Name;
        if (task.Confidential)
        {
            // Never routed: the tracker is not even asked.
            if (task.PinnedPeer is { } pinned && pinned != self)
                throw new InvalidArgumentException($"a confidential task runs on its origin '{self}', not on '{pinned}'");
            return compute.Accept(self, task);
        }

        if (task.PinnedPeer is { } target)
            return target == self ? compute.Accept(self, task) : await EnqueueOnAsync(target, task);

        // Least-loaded peer; one that cannot take the task is skipped, not failed.
        var tracker = GrainFactory.GetTracker();
        var skipped = new List<string>();
        while (true)
        {
            var pick = await tracker.PickPeerAsync(new PickRequest([.. skipped]));
            try
            {
                return pick == self ? compute.Accept(self, task) : await EnqueueOnAsync(pick, task);
            }
            catch (PeerUnavailableException ex)
            {
                LogSkipped(pick, ex.Message);
                skipped.Add(pick);
            }
        }
    }

    public Task<JobInfo> EnqueueAsync(string origin, TaskSpec task) => Task.FromResult(compute.Accept(origin, task));

    public Task<JobInfo> GetJobAsync(string jobId) => Task.FromResult(compute.Get(jobId));

    public Task<JobInfo> WaitJobAsync(string jobId, TimeSpan maxWait) =>
        compute.WaitAsync(jobId, maxWait > MaxWait ? MaxWait : maxWait);

    public Task<JobInfo> CancelJobAsync(string jobId) => compute.CancelAsync(jobId);

    public Task<JobListing> ListJobsAsync(int limit) => Task.FromResult(compute.List(limit));

    /// <summary>A wait is answered well within Orleans' 30 s call timeout; callers loop for longer jobs.</summary>
    private static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(25);

    private Task<JobInfo> EnqueueOnAsync(string peer, TaskSpec task) =>
        PeerCall.RunAsync(peer, () => GrainFactory.GetGrain<IPeerGrain>(peer).EnqueueAsync(identity.Name, task));

    [LoggerMessage(Level = LogLevel.Warning, Message = "Peer {Peer} could not take a task, trying another: {Reason}")]
    private partial void LogSkipped(string peer, string reason);
}
