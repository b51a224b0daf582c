using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using P2PShare.Files;
using P2PShare.Tests.Support;

namespace P2PShare.Tests.Files;

public sealed class FileStoreTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly DiskOptions _options = new() { QuotaBytes = 1_000_000, MaxFileBytes = 600_000, ChunkBytes = 4096, SessionIdleTimeout = TimeSpan.FromMinutes(1) };
    private FileStore _store;

    public FileStoreTests() => _store = Open();

    public void Dispose()
    {
        _store.Dispose();
        _dir.Dispose();
    }

    private FileStore Open() => new(Options.Create(_options), new PeerDataDirectory(_dir.Path), _time, NullLogger<FileStore>.Instance);

    private string FilesDir => Path.Combine(_dir.Path, "files");
    private string TmpDir => Path.Combine(_dir.Path, "tmp");

    private static byte[] RandomBytes(int n) => RandomNumberGenerator.GetBytes(n);

    private static string Sha(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));

    private async Task<StoredFileInfo> PutAsync(string name, byte[] data, bool reverseOrder = false)
    {
        var ticket = _store.BeginUpload(name, data.Length);
        var offsets = Enumerable.Range(0, (data.Length + ticket.MaxChunkBytes - 1) / ticket.MaxChunkBytes)
            .Select(i => (long)i * ticket.MaxChunkBytes).ToList();
        if (reverseOrder) offsets.Reverse();
        foreach (var offset in offsets)
        {
            var count = (int)Math.Min(ticket.MaxChunkBytes, data.Length - offset);
            await _store.WriteChunkAsync(ticket.UploadId, offset, data.AsMemory((int)offset, count));
        }

        return await _store.CompleteUploadAsync(ticket.UploadId, Sha(data));
    }

    private async Task<byte[]> GetAsync(string name)
    {
        var ticket = await _store.OpenDownloadAsync(name);
        using var buffer = new MemoryStream();
        try
        {
            while (buffer.Length < ticket.File.Size)
                buffer.Write(await _store.ReadChunkAsync(ticket.DownloadId, buffer.Length, ticket.MaxChunkBytes));
        }
        finally
        {
            _store.CloseDownload(ticket.DownloadId);
        }

        return buffer.ToArray();
    }

    [Fact]
    public async Task Put_then_get_round_trips_bytes_and_hash()
    {
        var data = RandomBytes(50_000);
        var info = await PutAsync("docs/report.bin", data);
        Assert.Equal(Sha(data), info.Sha256);
        Assert.Equal(50_000, info.Size);
        Assert.Equal(data, await GetAsync("docs/report.bin"));
        Assert.Equal(data, File.ReadAllBytes(Path.Combine(FilesDir, "docs", "report.bin")));
        Assert.Equal((50_000L, 0L, 1L), _store.Usage);
    }

    [Fact]
    public async Task Concurrent_pooled_chunks_landing_in_any_order_verify_and_round_trip()
    {
        var data = RandomBytes(40 * 4096 + 123);
        var ticket = _store.BeginUpload("pooled.bin", data.Length);
        var offsets = Enumerable.Range(0, (data.Length + 4095) / 4096).Select(i => i * 4096).OrderBy(_ => Random.Shared.Next()).ToList();
        await Task.WhenAll(offsets.Select(offset => Task.Run(() =>
        {
            var chunk = new Orleans.Serialization.Buffers.PooledBuffer();
            chunk.Write(data.AsSpan(offset, Math.Min(4096, data.Length - offset)));
            return _store.WriteChunkAsync(ticket.UploadId, offset, chunk);
        })));
        var info = await _store.CompleteUploadAsync(ticket.UploadId, Sha(data));
        Assert.Equal(Sha(data), info.Sha256);
        Assert.Equal(data, await GetAsync("pooled.bin"));

        var reading = await _store.OpenDownloadAsync("pooled.bin");
        using var chunk = await _store.ReadPooledChunkAsync(reading.DownloadId, 4096, 4096);
        Assert.Equal(data.AsSpan(4096, 4096).ToArray(), chunk.ToArray());
        _store.CloseDownload(reading.DownloadId);
    }

    [Fact]
    public async Task A_chunk_written_twice_is_hashed_as_it_ends_up_on_disk()
    {
        var data = RandomBytes(3 * 4096);
        var ticket = _store.BeginUpload("rewritten.bin", data.Length);
        await _store.WriteChunkAsync(ticket.UploadId, 0, RandomBytes(4096)); // wrong bytes first ...
        await _store.WriteChunkAsync(ticket.UploadId, 4096, data.AsMemory(4096, 4096));
        await _store.WriteChunkAsync(ticket.UploadId, 8192, data.AsMemory(8192));
        await _store.WriteChunkAsync(ticket.UploadId, 0, data.AsMemory(0, 4096)); // ... then a retry with the right ones

        var info = await _store.CompleteUploadAsync(ticket.UploadId, Sha(data));
        Assert.Equal(Sha(data), info.Sha256);
        Assert.Equal(data, await GetAsync("rewritten.bin"));
    }

    [Fact]
    public async Task Concurrent_chunks_with_one_byte_changed_fail_the_hash_and_leave_nothing()
    {
        var data = RandomBytes(16 * 4096);
        var ticket = _store.BeginUpload("tampered.bin", data.Length);
        var sent = (byte[])data.Clone();
        sent[5 * 4096 + 7] ^= 1;
        await Task.WhenAll(Enumerable.Range(0, 16).Reverse().Select(i => Task.Run(() =>
            _store.WriteChunkAsync(ticket.UploadId, i * 4096L, sent.AsMemory(i * 4096, 4096)))));
        await Assert.ThrowsAsync<IntegrityException>(() => _store.CompleteUploadAsync(ticket.UploadId, Sha(data)));
        Assert.False(File.Exists(Path.Combine(FilesDir, "tampered.bin")));
        Assert.Empty(Directory.GetFiles(TmpDir));
        Assert.Equal((0L, 0L, 0L), _store.Usage);
    }

    [Fact]
    public async Task Chunks_out_of_order_still_verify()
    {
        var data = RandomBytes(20_000);
        var info = await PutAsync("rev.bin", data, reverseOrder: true);
        Assert.Equal(Sha(data), info.Sha256);
        Assert.Equal(data, await GetAsync("rev.bin"));
    }

    [Fact]
    public async Task Empty_file_is_allowed()
    {
        var info = await PutAsync("empty", []);
        Assert.Equal(0, info.Size);
        Assert.Empty(await GetAsync("empty"));
    }

    [Fact]
    public async Task File_is_invisible_until_the_upload_completes()
    {
        var data = RandomBytes(8000);
        var ticket = _store.BeginUpload("atomic.bin", data.Length);
        await _store.WriteChunkAsync(ticket.UploadId, 0, data.AsMemory(0, 4096));
        await Assert.ThrowsAsync<NotFoundException>(() => _store.StatAsync("atomic.bin"));
        Assert.Empty((await _store.ListAsync("", 10)).Files);
        Assert.False(File.Exists(Path.Combine(FilesDir, "atomic.bin")));
        await _store.WriteChunkAsync(ticket.UploadId, 4096, data.AsMemory(4096));
        await _store.CompleteUploadAsync(ticket.UploadId, Sha(data));
        Assert.Equal(data.Length, (await _store.StatAsync("atomic.bin")).Size);
    }

    [Fact]
    public async Task Hash_mismatch_stores_nothing_and_frees_the_reservation()
    {
        var data = RandomBytes(8000);
        var ticket = _store.BeginUpload("bad.bin", data.Length);
        await _store.WriteChunkAsync(ticket.UploadId, 0, data.AsMemory(0, 4096));
        await _store.WriteChunkAsync(ticket.UploadId, 4096, data.AsMemory(4096));
        var ex = await Assert.ThrowsAsync<IntegrityException>(() => _store.CompleteUploadAsync(ticket.UploadId, Sha([1, 2, 3])));
        Assert.Contains("sha256 mismatch", ex.Message);
        Assert.False(File.Exists(Path.Combine(FilesDir, "bad.bin")));
        Assert.Empty(Directory.GetFiles(TmpDir));
        Assert.Equal((0L, 0L, 0L), _store.Usage);
    }

    [Fact]
    public async Task Incomplete_upload_is_refused()
    {
        var data = RandomBytes(8000);
        var ticket = _store.BeginUpload("short.bin", data.Length);
        await _store.WriteChunkAsync(ticket.UploadId, 0, data.AsMemory(0, 4096));
        var ex = await Assert.ThrowsAsync<IntegrityException>(() => _store.CompleteUploadAsync(ticket.UploadId, Sha(data)));
        Assert.Contains("incomplete", ex.Message);
        Assert.Equal((0L, 0L, 0L), _store.Usage);
    }

    [Fact]
    public async Task Replacing_a_file_keeps_readers_on_the_version_they_opened()
    {
        var v1 = RandomBytes(9000);
        var v2 = RandomBytes(7000);
        await PutAsync("doc", v1);
        var reading = await _store.OpenDownloadAsync("doc");
        await PutAsync("doc", v2);
        var first = await _store.ReadChunkAsync(reading.DownloadId, 0, 4096);
        Assert.Equal(v1.AsSpan(0, 4096).ToArray(), first);
        Assert.Equal(Sha(v1), reading.File.Sha256);
        _store.CloseDownload(reading.DownloadId);
        Assert.Equal(v2, await GetAsync("doc"));
        Assert.Equal((7000L, 0L, 1L), _store.Usage);
    }

    [Fact]
    public async Task Interrupted_upload_leaves_no_file_and_no_temp_space_after_restart()
    {
        var data = RandomBytes(10_000);
        var ticket = _store.BeginUpload("crash.bin", data.Length);
        await _store.WriteChunkAsync(ticket.UploadId, 0, data.AsMemory(0, 4096));
        Assert.Single(Directory.GetFiles(TmpDir));

        _store.Dispose(); // the peer goes away mid-upload
        _store = Open();

        Assert.Empty(Directory.GetFiles(TmpDir));
        Assert.False(File.Exists(Path.Combine(FilesDir, "crash.bin")));
        Assert.Equal((0L, 0L, 0L), _store.Usage);
        await Assert.ThrowsAsync<NotFoundException>(() => _store.WriteChunkAsync(ticket.UploadId, 4096, data.AsMemory(4096, 10)));
    }

    [Fact]
    public async Task Restart_keeps_stored_files_and_their_usage()
    {
        var data = RandomBytes(12_345);
        await PutAsync("keep/me.bin", data);
        _store.Dispose();
        _store = Open();
        Assert.Equal((12_345L, 0L, 1L), _store.Usage);
        Assert.Equal(Sha(data), (await _store.StatAsync("keep/me.bin")).Sha256);
    }

    [Fact]
    public async Task Abandoned_upload_is_reaped_after_the_idle_timeout()
    {
        var ticket = _store.BeginUpload("idle.bin", 5000);
        await _store.WriteChunkAsync(ticket.UploadId, 0, RandomBytes(100));
        Assert.Equal(5000, _store.Usage.ReservedBytes);
        _time.Advance(TimeSpan.FromMinutes(2));
        _store.ReapIdleSessions();
        Assert.Equal(0, _store.OpenUploads);
        Assert.Equal(0, _store.Usage.ReservedBytes);
        Assert.Empty(Directory.GetFiles(TmpDir));
    }

    [Fact]
    public async Task Quota_counts_uploads_in_progress()
    {
        await PutAsync("a", RandomBytes(500_000));
        var ticket = _store.BeginUpload("b", 400_000);
        var ex = Assert.Throws<QuotaExceededException>(() => _store.BeginUpload("c", 200_000));
        Assert.Equal("disk", ex.Resource);
        await _store.AbortUploadAsync(ticket.UploadId);
        _store.BeginUpload("c", 200_000);
    }

    [Fact]
    public void File_larger_than_the_limit_is_refused()
    {
        var ex = Assert.Throws<InvalidArgumentException>(() => _store.BeginUpload("huge", 600_001));
        Assert.Contains("larger than the limit", ex.Message);
    }

    [Fact]
    public async Task Chunk_outside_the_declared_size_is_refused()
    {
        var ticket = _store.BeginUpload("x", 100);
        await Assert.ThrowsAsync<InvalidArgumentException>(() => _store.WriteChunkAsync(ticket.UploadId, 90, new byte[20]));
        await Assert.ThrowsAsync<InvalidArgumentException>(() => _store.WriteChunkAsync(ticket.UploadId, -1, new byte[1]));
    }

    [Theory]
    [InlineData("")]
    [InlineData("/etc/passwd")]
    [InlineData("../escape")]
    [InlineData("a/../../escape")]
    [InlineData("a//b")]
    [InlineData("a/")]
    [InlineData("./a")]
    [InlineData("a\\b")]
    [InlineData("bell\u0007")]
    [InlineData("new\nline")]
    public async Task Bad_names_are_InvalidName_everywhere(string name)
    {
        Assert.Throws<InvalidNameException>(() => _store.BeginUpload(name, 1));
        await Assert.ThrowsAsync<InvalidNameException>(() => _store.OpenDownloadAsync(name));
        await Assert.ThrowsAsync<InvalidNameException>(() => _store.StatAsync(name));
        Assert.Throws<InvalidNameException>(() => _store.Delete(name));
    }

    [Fact]
    public async Task Delete_frees_space_and_a_second_delete_is_NotFound()
    {
        await PutAsync("gone", RandomBytes(3000));
        _store.Delete("gone");
        Assert.Equal((0L, 0L, 0L), _store.Usage);
        Assert.Throws<NotFoundException>(() => _store.Delete("gone"));
        await Assert.ThrowsAsync<NotFoundException>(() => _store.OpenDownloadAsync("gone"));
    }

    [Fact]
    public async Task List_filters_by_prefix_and_truncates()
    {
        foreach (var n in new[] { "logs/b", "logs/a", "logs/c", "img/x" }) await PutAsync(n, RandomBytes(10));
        var logs = await _store.ListAsync("logs/", 10);
        Assert.Equal(["logs/a", "logs/b", "logs/c"], logs.Files.Select(f => f.Name));
        var page = await _store.ListAsync("", 2);
        Assert.Equal(2, page.Files.Length);
        Assert.True(page.Truncated);
    }

    [Fact]
    public async Task A_file_cannot_also_be_a_folder()
    {
        await PutAsync("a", RandomBytes(10));
        Assert.Throws<InvalidArgumentException>(() => _store.BeginUpload("a/b", 1));
        await PutAsync("d/e", RandomBytes(10));
        Assert.Throws<InvalidArgumentException>(() => _store.BeginUpload("d", 1));
    }

    [Fact]
    public async Task File_changed_behind_the_stores_back_gets_a_fresh_hash()
    {
        await PutAsync("edited", RandomBytes(100));
        var replacement = RandomBytes(200);
        var path = Path.Combine(FilesDir, "edited");
        File.WriteAllBytes(path, replacement);
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddMinutes(1));
        Assert.Equal(Sha(replacement), (await _store.StatAsync("edited")).Sha256);
    }
}
