using Orleans.Placement;
using P2PShare.Files;
using P2PShare.Memory;
using P2PShare.Placement;

namespace P2PShare.Peers;

/// <summary>
/// Thin front of a peer's silo services. Reentrant because it holds no state of its own: the
/// stores are thread-safe, and a slow chunk write must not hold up another caller's key lookup.
/// </summary>
[PeerPlacement, Immovable, Reentrant]
public sealed class PeerGrain(PeerIdentity identity, MemoryStore memory, FileStore files) : Grain, IPeerGrain
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
}
