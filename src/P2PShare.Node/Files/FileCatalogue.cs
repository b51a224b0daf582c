using Microsoft.Win32.SafeHandles;

namespace P2PShare.Files;

/// <summary>
/// The stored files under <c>DATA/files</c>, by their user-visible names, and the disk quota: it
/// counts stored files plus the declared size of uploads in progress (reserved until they land or
/// are dropped).
/// </summary>
internal sealed class FileCatalogue
{
    private readonly string _filesDir;
    private readonly long _quotaBytes;
    private readonly HashSidecars _sidecars;
    private readonly object _gate = new();
    private long _usedBytes;
    private long _reservedBytes;
    private long _fileCount;

    public FileCatalogue(string filesDir, long quotaBytes, HashSidecars sidecars)
    {
        _filesDir = filesDir;
        _quotaBytes = quotaBytes;
        _sidecars = sidecars;
        foreach (var file in new DirectoryInfo(_filesDir).EnumerateFiles("*", SearchOption.AllDirectories))
        {
            _usedBytes += file.Length;
            _fileCount++;
        }
    }

    public (long UsedBytes, long ReservedBytes, long Files) Usage
    {
        get
        {
            lock (_gate) return (_usedBytes, _reservedBytes, _fileCount);
        }
    }

    /// <summary>Holds <paramref name="size"/> bytes of the quota for an upload; <see cref="QuotaExceededException"/> if they are not free.</summary>
    public void Reserve(long size)
    {
        lock (_gate)
        {
            // Conservative: the old version of a replaced file still counts until the new one lands.
            if (_usedBytes + _reservedBytes + size > _quotaBytes)
                throw new QuotaExceededException("disk", size, _usedBytes + _reservedBytes, _quotaBytes);
            _reservedBytes += size;
        }
    }

    public void Release(long reserved)
    {
        lock (_gate) _reservedBytes -= reserved;
    }

    public void EnsureNoFolderInTheWay(string name)
    {
        var target = FilePath(name);
        if (Directory.Exists(target))
            throw new InvalidArgumentException($"cannot store '{name}': a folder of that name exists");
        var parent = Path.GetDirectoryName(target)!;
        while (parent.Length > _filesDir.Length)
        {
            if (File.Exists(parent))
            {
                throw new InvalidArgumentException(
                    $"cannot store '{name}': '{Path.GetRelativePath(_filesDir, parent)}' is a file, not a folder");
            }

            parent = Path.GetDirectoryName(parent)!;
        }
    }

    /// <summary>
    /// Renames a finished upload's temp file into place under <paramref name="name"/>, turning its
    /// reservation into stored bytes. File-system failures are the caller's to clean up after.
    /// </summary>
    public void Commit(string tempPath, string name, long size)
    {
        var target = FilePath(name);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        lock (_gate)
        {
            // Rename is atomic on one file system: readers see the old file or the new one.
            var old = new FileInfo(target);
            var replacedSize = old.Exists ? old.Length : -1;
            File.Move(tempPath, target, overwrite: true);
            _reservedBytes -= size;
            _usedBytes += size - Math.Max(0, replacedSize);
            if (replacedSize < 0) _fileCount++;
        }
    }

    /// <summary>Records the hash of a file just stored, checked against the client's.</summary>
    public StoredFileInfo RecordHash(string name, string sha) => _sidecars.Record(name, FilePath(name), sha);

    /// <summary>Opens a stored file for reading; <see cref="NotFoundException"/> if there is none (or a folder) of that name.</summary>
    /// <remarks>Holding the handle pins this version: a concurrent put renames a new file over the name, but this inode stays readable.</remarks>
    public SafeFileHandle OpenForRead(string name)
    {
        try
        {
            return File.OpenHandle(FilePath(name), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, FileOptions.Asynchronous);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            throw new NotFoundException("file", name);
        }
    }

    public Task<StoredFileInfo> DescribeAsync(string name, SafeFileHandle handle) => _sidecars.DescribeAsync(name, handle);

    public async Task<StoredFileInfo> StatAsync(string name)
    {
        Names.ValidateFileName(name);
        if (!File.Exists(FilePath(name))) throw new NotFoundException("file", name);
        using var handle = OpenForRead(name);
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
                using var handle = OpenForRead(name);
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

        _sidecars.Delete(name);
    }

    private string FilePath(string name) => Path.Combine(_filesDir, name.Replace('/', Path.DirectorySeparatorChar));
}
