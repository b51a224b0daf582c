using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;
using Orleans.Serialization.Buffers;
using P2PShare.Files;
using P2PShare.Peers;

namespace P2PShare.Cli;

/// <summary>
/// Streams a file to or from one peer in chunks, <see cref="MaxInFlight"/> of them in flight so the
/// network, the peer's disk and the hashing on both sides work at the same time. Chunks travel in
/// pooled memory (Orleans' <see cref="PooledBuffer"/>: returned to its pool once sent, disposed by
/// the receiver), are read and written at their offsets, and the local file of a download is
/// written back to disk as it grows (<see cref="WriteBehind"/>). Memory stays bounded by
/// <see cref="MaxInFlight"/> × chunk size whatever the file size, on this side and on the peer's.
/// </summary>
public sealed class FileTransfer(ClusterConnection cluster, string peerName, TransferTuning? tuning = null)
{
    /// <summary>Enough calls in flight to hide the round trip and the peer's write, few enough to bound memory (measured against 4, 16 and 32: docs/BENCHMARKS.md).</summary>
    public const int MaxInFlight = 8;

    /// <summary>
    /// The chunk a transfer asks for (the peer's offer caps it). Measured against 256 KiB and 1 MiB
    /// (docs/BENCHMARKS.md): the peer spent about 40% less CPU per GiB received, and the CLI held ~20 MB less.
    /// </summary>
    public const int DefaultChunkBytes = 64 * 1024;

    /// <summary>Caps the peer's chunk size so that a generous peer cannot make the CLI hold a lot.</summary>
    public const int MaxChunkBytes = 4 * 1024 * 1024;

    /// <summary>Clean-up calls are best effort; a dead peer must not keep the CLI from exiting.</summary>
    private static readonly TimeSpan CleanupTimeout = TimeSpan.FromSeconds(5);

    private readonly IPeerGrain _peer = cluster.Peer(peerName);
    private readonly int _window = (tuning ?? TransferTuning.Default).Window;
    private readonly int _chunkLimit = (tuning ?? TransferTuning.Default).ChunkBytes;

    public static string TempPathFor(string destination)
    {
        var full = Path.GetFullPath(destination);
        var directory = Path.GetDirectoryName(full) ?? ".";
        return Path.Combine(directory, $".{Path.GetFileName(full)}.p2pshare-part");
    }

    public async Task<StoredFileInfo> UploadAsync(string localPath, string remoteName, Action<long> progress, CancellationToken ct)
    {
        using var source = File.OpenHandle(localPath, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.SequentialScan);
        var size = RandomAccess.GetLength(source);
        var ticket = await PeerCall.RunAsync(peerName, () => _peer.BeginUploadAsync(remoteName, size)).ConfigureAwait(false);
        try
        {
            var sha256 = await SendChunksAsync(source, localPath, size, ticket, progress, ct).ConfigureAwait(false);
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

    private async Task<string> SendChunksAsync(SafeFileHandle source, string localPath, long size, UploadTicket ticket, Action<long> progress, CancellationToken ct)
    {
        var chunkSize = ChunkSize(ticket.MaxChunkBytes);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var inFlight = new Queue<Task>();
        long offset = 0;
        try
        {
            while (offset < size)
            {
                if (inFlight.Count == _window) await inFlight.Dequeue().ConfigureAwait(false);
                ct.ThrowIfCancellationRequested();
                var count = (int)Math.Min(chunkSize, size - offset);
                // Read straight into the memory Orleans will send from: no copy, no array per chunk.
                var chunk = new PooledBuffer();
                try
                {
                    var memory = chunk.GetMemory(count)[..count];
                    for (var filled = 0; filled < count;)
                    {
                        var read = await RandomAccess.ReadAsync(source, memory[filled..], offset + filled, ct).ConfigureAwait(false);
                        if (read == 0) throw new IOException($"'{localPath}' shrank while it was being uploaded");
                        filled += read;
                    }

                    hash.AppendData(memory.Span);
                    chunk.Advance(count);
                }
                catch
                {
                    chunk.Dispose();
                    throw;
                }

                // From here the call owns the chunk: Orleans returns its memory once it is sent.
                inFlight.Enqueue(WriteChunkAsync(ticket.UploadId, offset, chunk, count, progress));
                offset += count;
            }

            while (inFlight.Count > 0) await inFlight.Dequeue().ConfigureAwait(false);
        }
        catch
        {
            // Let sent chunks settle so the abort that follows is not overtaken by a late write.
            await SettleAsync(inFlight).ConfigureAwait(false);
            throw;
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private async Task WriteChunkAsync(Guid uploadId, long offset, PooledBuffer chunk, int count, Action<long> progress)
    {
        await PeerCall.RunAsync(peerName, () => _peer.WritePooledChunkAsync(uploadId, offset, chunk)).ConfigureAwait(false);
        progress(count);
    }

    private async Task ReceiveAsync(DownloadTicket ticket, string temp, Action<long> progress, CancellationToken ct)
    {
        var file = ticket.File;
        var chunkSize = ChunkSize(ticket.MaxChunkBytes);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var pending = new Queue<(long Offset, int Count, Task<PooledBuffer> Read)>();
        long requested = 0;
        long written = 0;

        using (var target = File.OpenHandle(temp, FileMode.Create, FileAccess.Write, FileShare.None, FileOptions.Asynchronous))
        {
            var writeBehind = new WriteBehind(target);
            try
            {
                while (written < file.Size)
                {
                    while (pending.Count < _window && requested < file.Size)
                    {
                        var count = (int)Math.Min(chunkSize, file.Size - requested);
                        pending.Enqueue((requested, count, ReadChunkAsync(ticket.DownloadId, requested, count)));
                        requested += count;
                    }

                    var (offset, remaining, read) = pending.Dequeue();
                    var data = await read.ConfigureAwait(false);
                    while (true)
                    {
                        var length = data.Length;
                        try
                        {
                            if (length == 0)
                            {
                                throw new IntegrityException(
                                    $"'{file.Name}' ended after {offset} bytes but the peer declared {file.Size}");
                            }

                            if (length > remaining)
                                throw new IntegrityException($"the peer sent {length} bytes for a read of {remaining}");

                            // Chunks are taken in file order, so the hash sees them in order; it runs while the write does.
                            var blocks = new List<ReadOnlyMemory<byte>>();
                            foreach (var block in data.MemorySegments) blocks.Add(block);
                            var write = RandomAccess.WriteAsync(target, blocks, offset, ct);
                            foreach (var block in blocks) hash.AppendData(block.Span);
                            await write.ConfigureAwait(false);
                        }
                        finally
                        {
                            data.Dispose();
                        }

                        progress(length);
                        written += length;
                        offset += length;
                        remaining -= length;
                        writeBehind.Written(written);
                        if (remaining == 0) break;

                        // A short read leaves a gap; fill it before the chunks already requested after it.
                        data = await ReadChunkAsync(ticket.DownloadId, offset, remaining).ConfigureAwait(false);
                    }
                }

                RandomAccess.FlushToDisk(target);
            }
            finally
            {
                await SettleAsync(pending.Select(p => p.Read)).ConfigureAwait(false);
                foreach (var (_, _, read) in pending)
                {
                    if (read.IsCompletedSuccessfully) read.Result.Dispose();
                }
            }
        }

        var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (!string.Equals(actual, file.Sha256, StringComparison.OrdinalIgnoreCase))
        {
            throw new IntegrityException($"'{file.Name}' failed its SHA-256 check: expected {file.Sha256}, got {actual}");
        }
    }

    private Task<PooledBuffer> ReadChunkAsync(Guid downloadId, long offset, int count) =>
        PeerCall.RunAsync(peerName, () => _peer.ReadPooledChunkAsync(downloadId, offset, count));

    private int ChunkSize(int offered)
    {
        if (offered <= 0)
        {
            throw new IntegrityException($"the peer offered an invalid chunk size ({offered})");
        }

        return Math.Min(offered, _chunkLimit);
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

/// <summary>
/// Chunks in flight and the largest chunk a transfer asks for (the peer's offer caps it further).
/// The defaults come from measurement (docs/BENCHMARKS.md); the environment variables exist to
/// repeat that measurement, not as everyday settings.
/// </summary>
public sealed record TransferTuning(int Window, int ChunkBytes)
{
    public const string WindowVariable = "P2PSHARE_FILE_WINDOW";
    public const string ChunkBytesVariable = "P2PSHARE_FILE_CHUNK_BYTES";
    public const int MaxWindow = 64;
    public const int MinChunkBytes = 4096;

    public static TransferTuning Default { get; } = new(FileTransfer.MaxInFlight, FileTransfer.DefaultChunkBytes);

    /// <exception cref="UsageException">A variable is set to something out of range.</exception>
    public static TransferTuning FromEnvironment(Func<string, string?> read) => new(
        Read(read, WindowVariable, 1, MaxWindow, Default.Window),
        Read(read, ChunkBytesVariable, MinChunkBytes, FileTransfer.MaxChunkBytes, Default.ChunkBytes));

    private static int Read(Func<string, string?> read, string name, int min, int max, int fallback)
    {
        var text = read(name);
        if (string.IsNullOrWhiteSpace(text))
        {
            return fallback;
        }

        return int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value) && value >= min && value <= max
            ? value
            : throw new UsageException($"{name}={text} is not an integer {min}..{max}");
    }
}
