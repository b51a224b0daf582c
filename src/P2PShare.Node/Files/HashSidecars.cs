using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;

namespace P2PShare.Files;

/// <summary>
/// Each stored file's SHA-256, kept in a sidecar under <c>DATA/meta</c> so a listing does not read
/// every file. A sidecar is trusted only while it matches the file's size and modification time;
/// otherwise the hash is computed again and the sidecar rewritten. It is a cache: one that cannot be
/// written costs a recomputation later, never a failed request.
/// </summary>
internal sealed partial class HashSidecars(string metaDir, string tmpDir, ILogger logger)
{
    /// <summary>The file behind <paramref name="handle"/>, with its hash from the sidecar if that is still true, else computed.</summary>
    public async Task<StoredFileInfo> DescribeAsync(string name, SafeFileHandle handle)
    {
        var size = RandomAccess.GetLength(handle);
        var modified = File.GetLastWriteTimeUtc(handle);
        var sidecar = Read(name);
        if (sidecar is not null && sidecar.Size == size && sidecar.ModifiedTicks == modified.Ticks)
            return new StoredFileInfo(name, size, sidecar.Sha256, modified);

        // No trustworthy sidecar (crash between rename and sidecar write, or a file placed by hand).
        var sha = await HashAsync(handle, size).ConfigureAwait(false);
        Write(name, new Sidecar(size, modified.Ticks, sha));
        return new StoredFileInfo(name, size, sha, modified);
    }

    /// <summary>Records the hash of a file just stored at <paramref name="path"/>.</summary>
    public StoredFileInfo Record(string name, string path, string sha)
    {
        var file = new FileInfo(path);
        var modified = file.LastWriteTimeUtc;
        Write(name, new Sidecar(file.Length, modified.Ticks, sha));
        return new StoredFileInfo(name, file.Length, sha, modified);
    }

    public void Delete(string name)
    {
        try
        {
            File.Delete(SidecarPath(name));
        }
        catch (IOException)
        {
            // Best effort: a sidecar left behind is checked against its file before it is trusted.
        }
    }

    /// <summary>The SHA-256 of the first <paramref name="size"/> bytes, as lower-case hex.</summary>
    public static async Task<string> HashAsync(SafeFileHandle handle, long size)
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

    private void Write(string name, Sidecar record)
    {
        var path = SidecarPath(name);
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var temp = Path.Combine(tmpDir, Guid.NewGuid().ToString("N") + ".meta");
            File.WriteAllBytes(temp, JsonSerializer.SerializeToUtf8Bytes(record));
            File.Move(temp, path, overwrite: true);
        }
        catch (IOException ex)
        {
            // The sidecar is a cache: without it the hash is recomputed on the next read.
            LogSidecarFailed(logger, name, ex.Message);
        }
    }

    private Sidecar? Read(string name)
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

    private string SidecarPath(string name) => Path.Combine(metaDir, name.Replace('/', Path.DirectorySeparatorChar) + ".meta");

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not write the hash sidecar of {Name}: {Reason}")]
    private static partial void LogSidecarFailed(ILogger logger, string name, string reason);

    /// <summary>The sidecar's JSON: its property names are the on-disk format.</summary>
    private sealed record Sidecar(long Size, long ModifiedTicks, string Sha256);
}
