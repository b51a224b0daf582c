using System.Collections.Immutable;
using Orleans.Placement;
using Orleans.Serialization.Buffers;
using P2PShare.Compute;
using P2PShare.Files;
using P2PShare.Memory;
using P2PShare.Placement;

namespace P2PShare.Peers;

/// <summary>
/// Thin front of a peer's silo services. Reentrant because it holds no state of its own: the
/// stores are thread-safe, and a slow chunk write must not hold up another caller's key lookup.
/// </summary>
[PeerPlacement, Immovable, Reentrant]
public sealed class PeerGrain(PeerIdentity identity, MemoryStore memory, FileStore files, JobService compute, JobRunner runner)
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

    public Task MSetAsync(ImmutableArray<MemoryItem> items, TimeSpan? ttl)
    {
        memory.SetMany(items.IsDefault ? [] : items, ttl);
        return Task.CompletedTask;
    }

    public Task<ImmutableArray<byte[]?>> MGetAsync(ImmutableArray<string> keys) =>
        Task.FromResult(keys.IsDefaultOrEmpty ? throw new InvalidArgumentException("no keys given") : memory.GetMany(keys));

    public Task<MemoryListing> ListAsync(string prefix, int limit) => Task.FromResult(memory.List(prefix, limit));

    public Task<UploadTicket> BeginUploadAsync(string name, long size) => Task.FromResult(files.BeginUpload(name, size));

    public Task WriteChunkAsync(Guid uploadId, long offset, byte[] data) => files.WriteChunkAsync(uploadId, offset, data);

    public Task WritePooledChunkAsync(Guid uploadId, long offset, PooledBuffer data) => files.WriteChunkAsync(uploadId, offset, data);

    public Task<StoredFileInfo> CompleteUploadAsync(Guid uploadId, string sha256) => files.CompleteUploadAsync(uploadId, sha256);

    public Task AbortUploadAsync(Guid uploadId) => files.AbortUploadAsync(uploadId);

    public Task<DownloadTicket> OpenDownloadAsync(string name) => files.OpenDownloadAsync(name);

    public Task<byte[]> ReadChunkAsync(Guid downloadId, long offset, int count) => files.ReadChunkAsync(downloadId, offset, count);

    public Task<PooledBuffer> ReadPooledChunkAsync(Guid downloadId, long offset, int count) => files.ReadPooledChunkAsync(downloadId, offset, count);

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

    public Task<JobInfo> SubmitAsync(TaskSpec task)
    {
        if (task is null) throw new InvalidArgumentException("no task given");
        if (task.Confidential && task.PinnedPeer is { } pinned && pinned != identity.Name)
            throw new InvalidArgumentException($"a confidential task runs on its origin '{identity.Name}', not on '{pinned}'");

        // The job's grain routes it (confidential: here; pinned: there; else the tracker's pick),
        // follows it and re-runs it elsewhere if its peer is lost. It is placed on this silo.
        return GrainFactory.GetJob(JobIds.New(identity.Name)).StartAsync(identity.Name, task);
    }

    public Task<JobInfo> RunAsync(TaskSpec task) => runner.RunAsync(task);

    public IAsyncEnumerable<BatchItem> RunBatchAsync(ImmutableArray<TaskSpec> tasks) => runner.RunBatchAsync(tasks);

    public Task<AttemptReply> RunAttemptAsync(JobAssignment assignment, TimeSpan promoteAfter)
    {
        if (assignment.Spec.Confidential && assignment.Origin != identity.Name)
            throw new InvalidArgumentException($"confidential task of '{assignment.Origin}' refused: it may only run on its origin");
        return compute.AttemptAsync(assignment, promoteAfter > CallLimits.MaxWait ? CallLimits.MaxWait : promoteAfter);
    }

    public Task<JobInfo?> FindJobAsync(string jobId, TimeSpan maxWait) =>
        runner.FindAsync(jobId, maxWait > CallLimits.MaxWait ? CallLimits.MaxWait : maxWait);

    public Task<JobInfo?> CancelJobAsync(string jobId) => runner.CancelAsync(jobId);

    public Task<JobInfo> ExecuteAsync(JobAssignment assignment)
    {
        if (assignment.Spec.Confidential && assignment.Origin != identity.Name)
            throw new InvalidArgumentException($"confidential task of '{assignment.Origin}' refused: it may only run on its origin");
        return Task.FromResult(compute.Accept(assignment));
    }

    public Task<JobInfo> WaitAttemptAsync(string jobId, int attempt, TimeSpan maxWait) =>
        compute.WaitAsync(jobId, attempt, maxWait > CallLimits.MaxWait ? CallLimits.MaxWait : maxWait);

    public Task<JobInfo> CancelAttemptAsync(string jobId, int attempt) => compute.CancelAsync(jobId, attempt);

    public Task<JobListing> ListJobsAsync(int limit) => Task.FromResult(compute.List(limit));
}
