using P2PShare.Compute;

namespace P2PShare.Tests.Compute.Sandbox;

/// <summary>Files a sandbox binds must be reachable by its unprivileged uid, also from a private checkout.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class StagedFilesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("p2pshare-staged-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_file_in_a_private_folder_is_bound_from_a_world_readable_copy_and_a_readable_one_where_it_is()
    {
        var root = Path.Combine(_dir, "staging");
        var open = Directory.CreateDirectory(Path.Combine(_dir, "open"), (UnixFileMode)0b111_101_101).FullName;
        File.SetUnixFileMode(_dir, (UnixFileMode)0b111_101_101);
        var readable = Path.Combine(open, "readable.dll");
        File.WriteAllText(readable, "readable");
        File.SetUnixFileMode(readable, (UnixFileMode)0b110_100_100);
        var hidden = Directory.CreateDirectory(Path.Combine(_dir, "private"), (UnixFileMode)0b111_000_000).FullName;
        var secret = Path.Combine(hidden, "worker.dll");
        File.WriteAllText(secret, "worker bytes");

        var binds = new StagedFiles(root).Reachable([(readable, "/worker/readable.dll"), (secret, "/worker/worker.dll")]);

        Assert.Equal((readable, "/worker/readable.dll"), binds[0]);
        var (copy, target) = binds[1];
        Assert.Equal("/worker/worker.dll", target);
        Assert.StartsWith(root + "/", copy, StringComparison.Ordinal);
        Assert.Equal("worker bytes", File.ReadAllText(copy));
        Assert.True(StagedFiles.OthersCanRead(copy));
        Assert.False(StagedFiles.OthersCanRead(secret));
    }

    [Fact]
    public void A_staging_folder_others_can_write_is_refused()
    {
        var root = Directory.CreateDirectory(Path.Combine(_dir, "planted")).FullName;
        File.SetUnixFileMode(root, (UnixFileMode)0b111_111_111);
        var hidden = Directory.CreateDirectory(Path.Combine(_dir, "private"), (UnixFileMode)0b111_000_000).FullName;
        var secret = Path.Combine(hidden, "worker.dll");
        File.WriteAllText(secret, "x");

        var error = Assert.Throws<InvalidOperationException>(() => new StagedFiles(root).Reachable([(secret, "/worker/worker.dll")]));
        Assert.Contains("writable by others", error.Message, StringComparison.Ordinal);
    }
}
