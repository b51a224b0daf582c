using System.Security.Cryptography;
using P2PShare.Files;
using P2PShare.Peers;

namespace P2PShare.Cli;

/// <summary>
/// Streams a file to or from one peer in chunks. Memory stays bounded by
/// <see cref="MaxInFlight"/> × chunk size whatever the file size, on this side and on the peer's.
/// </summary>
public sealed class FileTransfer(ClusterConnection cluster, string peerName)
{
    /// <summary>Enough calls in flight to hide the round trip, few enough to bound memory.</summary>
    public const int MaxInFlight = 4;

    /// <summary>Caps the peer's chunk size so that a generous peer cannot make the CLI hold a lot.</summary>
    public const int MaxChunkBytes = 4 * 1024 * 1024;

    /// <summary>Clean-up calls are best effort; a dead peer must not keep the CLI from exiting.</summary>
    private static readonly TimeSpan CleanupTimeout = TimeSpan.FromSeconds(5);

    private readonly IPeerGrain _peer = cluster.Peer(peerName);

    public static string TempPathFor(string destination)
    {
        var full = Path.GetFullPath(destination);
        var directory = Path.GetDirectoryName(full) ?? ".";
        return Path.Combine(directory, $".{Path.GetFileName(full)}.p2pshare-part");
    }

    public async Task<StoredFileInfo> UploadAsync(string localPath, string remoteName, Action<long> progress, CancellationToken ct)
    {
        await using var source = new FileStream(localPath, FileMode.Open, FileAccess.Read, FileShare.Read,
            bufferSize: 0, FileOptions.SequentialScan | FileOptions.Asynchronous);
        var size = source.Length;
        var ticket = await PeerCall.RunAsync(peerName, () => _peer.BeginUploadAsync(remoteName, size)).ConfigureAwait(false);
        try
        {
            var sha256 = await SendChunksAsync(source, size, ticket, progress, ct).ConfigureAwait(false);
            ct.ThrowIfCancellationRequested();
            return await PeerCall.RunAsync(peerName, () => _peer.CompleteUploadAsync(ticket.UploadId, sha256))
                .ConfigureAwait(false);
        }
        catch
        {
            // Frees the quota the peer reserved for this upload instead of waiting for its expiry.
            await QuietlyAsync(() => _peer.AbortUploadAsync(ticket.UploadId)).ConfigureAwait(false);
            throw;
        }
    }

    public async Task<StoredFileInfo> DownloadAsync(string remoteName, string destination, Action<long> progress, CancellationToken ct)
    {
        var ticket = await PeerCall.RunAsync(peerName, () => _peer.OpenDownloadAsync(remoteName)).ConfigureAwait(false);
        var temp = TempPathFor(destination);
        try
        {
            await ReceiveAsync(ticket, temp, progress, ct).ConfigureAwait(false);
            // Same directory, so this is a rename: readers see the old file or the whole new one.
            File.Move(temp, destination, overwrite: true);
            return ticket.File;
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
        finally
        {
            await QuietlyAsync(() => _peer.CloseDownloadAsync(ticket.DownloadId)).ConfigureAwait(false);
        }
    }

    private async Task<string> SendChunksAsync(FileStream source, long size, UploadTicket ticket, Action<long> progress, CancellationToken ct)
    {
        var chunkSize = ChunkSize(ticket.MaxChunkBytes);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var inFlight = new Queue<(Task Call, byte[] Buffer)>();
        // A buffer is reused only after its call completed: the grain call may still be serializing it before then.
        var spare = new Stack<byte[]>();
        long offset = 0;
        try
        {
            while (offset < size)
            {
                if (inFlight.Count == MaxInFlight)
                {
                    var (call, used) = inFlight.Dequeue();
                    await call.ConfigureAwait(false);
                    if (used.Length == chunkSize)
                    {
                        spare.Push(used);
                    }
                }

                ct.ThrowIfCancellationRequested();
                var count = (int)Math.Min(chunkSize, size - offset);
                var buffer = count == chunkSize && spare.Count > 0 ? spare.Pop() : new byte[count];
                try
                {
                    await source.ReadExactlyAsync(buffer.AsMemory(0, count), ct).ConfigureAwait(false);
                }
                catch (EndOfStreamException ex)
                {
                    throw new IOException($"'{source.Name}' shrank while it was being uploaded", ex);
                }

                hash.AppendData(buffer, 0, count);
                inFlight.Enqueue((WriteChunkAsync(ticket.UploadId, offset, buffer, progress), buffer));
                offset += count;
            }

            while (inFlight.Count > 0)
            {
                await inFlight.Dequeue().Call.ConfigureAwait(false);
            }
        }
        catch
        {
            // Let sent chunks settle so the abort that follows is not overtaken by a late write.
            await SettleAsync(inFlight.Select(f => f.Call)).ConfigureAwait(false);
            throw;
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private async Task WriteChunkAsync(Guid uploadId, long offset, byte[] data, Action<long> progress)
    {
        await PeerCall.RunAsync(peerName, () => _peer.WriteChunkAsync(uploadId, offset, data)).ConfigureAwait(false);
        progress(data.Length);
    }

    private async Task ReceiveAsync(DownloadTicket ticket, string temp, Action<long> progress, CancellationToken ct)
    {
        var file = ticket.File;
        var chunkSize = ChunkSize(ticket.MaxChunkBytes);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var pending = new Queue<(long Offset, int Count, Task<byte[]> Read)>();
        long requested = 0;
        long written = 0;

        await using (var target = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None,
            bufferSize: 0, FileOptions.Asynchronous))
        {
            try
            {
                while (written < file.Size)
                {
                    while (pending.Count < MaxInFlight && requested < file.Size)
                    {
                        var count = (int)Math.Min(chunkSize, file.Size - requested);
                        pending.Enqueue((requested, count, ReadChunkAsync(ticket.DownloadId, requested, count)));
                        requested += count;
                    }

                    var (offset, remaining, read) = pending.Dequeue();
                    var data = await read.ConfigureAwait(false);
                    while (true)
                    {
                        if (data.Length == 0)
                        {
                            throw new IntegrityException(
                                $"'{file.Name}' ended after {offset} bytes but the peer declared {file.Size}");
                        }

                        if (data.Length > remaining)
                        {
                            throw new IntegrityException($"the peer sent {data.Length} bytes for a read of {remaining}");
                        }

                        await target.WriteAsync(data, ct).ConfigureAwait(false);
                        hash.AppendData(data);
                        progress(data.Length);
                        written += data.Length;
                        offset += data.Length;
                        remaining -= data.Length;
                        if (remaining == 0)
                        {
                            break;
                        }

                        // A short read leaves a gap; fill it before the chunks already requested after it.
                        data = await ReadChunkAsync(ticket.DownloadId, offset, remaining).ConfigureAwait(false);
                    }
                }

                await target.FlushAsync(ct).ConfigureAwait(false);
                target.Flush(flushToDisk: true);
            }
            finally
            {
                await SettleAsync(pending.Select(p => (Task)p.Read)).ConfigureAwait(false);
            }
        }

        var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (!string.Equals(actual, file.Sha256, StringComparison.OrdinalIgnoreCase))
        {
            throw new IntegrityException($"'{file.Name}' failed its SHA-256 check: expected {file.Sha256}, got {actual}");
        }
    }

    private Task<byte[]> ReadChunkAsync(Guid downloadId, long offset, int count) =>
        PeerCall.RunAsync(peerName, () => _peer.ReadChunkAsync(downloadId, offset, count));

    private static int ChunkSize(int offered)
    {
        if (offered <= 0)
        {
            throw new IntegrityException($"the peer offered an invalid chunk size ({offered})");
        }

        return Math.Min(offered, MaxChunkBytes);
    }

    private async Task QuietlyAsync(Func<Task> cleanup)
    {
        try
        {
            await PeerCall.RunAsync(peerName, cleanup).WaitAsync(CleanupTimeout).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Best effort: the peer expires abandoned sessions itself; the user needs the original error.
        }
    }

    private static async Task SettleAsync(IEnumerable<Task> calls)
    {
        try
        {
            await Task.WhenAll(calls).WaitAsync(CleanupTimeout).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Their outcome no longer matters; only that they are not still running.
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
