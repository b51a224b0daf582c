using System.Security.Cryptography;
using System.Text;
using P2PShare.Peers;
using P2PShare.Tests.Support;

namespace P2PShare.Tests.Peers;

public sealed class PeerRoundTripTests(SharedPeerCluster cluster) : IClassFixture<SharedPeerCluster>
{
    private readonly PeerCluster _peers = cluster.Peers;

    public static TheoryData<string> Peers => new() { "peer-1", "peer-2", "peer-3" };

    [Theory]
    [MemberData(nameof(Peers))]
    public async Task Memory_round_trip_on_every_peer(string name)
    {
        var peer = _peers.Peer(name);
        var value = Encoding.UTF8.GetBytes($"hello from {name}");
        await peer.SetAsync("greeting", value, null);
        Assert.Equal(value, await peer.GetAsync("greeting"));
        Assert.Contains((await peer.ListAsync("gree", 10)).Entries, e => e.Key == "greeting");
        await peer.DeleteAsync("greeting");
        await Assert.ThrowsAsync<NotFoundException>(() => peer.GetAsync("greeting"));
    }

    [Fact]
    public async Task Each_peer_keeps_its_own_memory()
    {
        await _peers.Peer("peer-1").SetAsync("where", [1], null);
        await _peers.Peer("peer-2").SetAsync("where", [2], null);
        Assert.Equal([1], await _peers.Peer("peer-1").GetAsync("where"));
        Assert.Equal([2], await _peers.Peer("peer-2").GetAsync("where"));
        await Assert.ThrowsAsync<NotFoundException>(() => _peers.Peer("peer-3").GetAsync("where"));
    }

    [Theory]
    [MemberData(nameof(Peers))]
    public async Task File_round_trip_on_every_peer(string name)
    {
        var peer = _peers.Peer(name);
        var data = RandomNumberGenerator.GetBytes(300_000); // several 64 KiB chunks
        var sha = Convert.ToHexStringLower(SHA256.HashData(data));

        var upload = await peer.BeginUploadAsync("dir/data.bin", data.Length);
        var writes = new List<Task>();
        for (var offset = 0; offset < data.Length; offset += upload.MaxChunkBytes)
        {
            var chunk = data.AsSpan(offset, Math.Min(upload.MaxChunkBytes, data.Length - offset)).ToArray();
            writes.Add(peer.WriteChunkAsync(upload.UploadId, offset, chunk)); // pipelined, as the CLI does
        }

        await Task.WhenAll(writes);
        var stored = await peer.CompleteUploadAsync(upload.UploadId, sha);
        Assert.Equal(sha, stored.Sha256);
        Assert.Equal(sha, (await peer.StatAsync("dir/data.bin")).Sha256);

        var download = await peer.OpenDownloadAsync("dir/data.bin");
        using var received = new MemoryStream();
        while (received.Length < download.File.Size)
            received.Write(await peer.ReadChunkAsync(download.DownloadId, received.Length, download.MaxChunkBytes));
        await peer.CloseDownloadAsync(download.DownloadId);
        Assert.Equal(data, received.ToArray());

        Assert.Single((await peer.ListFilesAsync("dir/", 10)).Files);
        await peer.DeleteFileAsync("dir/data.bin");
        await Assert.ThrowsAsync<NotFoundException>(() => peer.StatAsync("dir/data.bin"));
    }

    [Fact]
    public async Task Typed_errors_cross_the_wire_with_their_kind_and_message()
    {
        var peer = _peers.Peer("peer-2");
        var name = await Assert.ThrowsAsync<InvalidNameException>(() => peer.BeginUploadAsync("../etc/passwd", 1));
        Assert.Equal(ErrorKind.InvalidName, name.Kind);
        Assert.Contains("'..'", name.Message);
        // Two 4 GiB uploads in progress reserve 8 of the 10 GiB quota; a third does not fit.
        var first = await peer.BeginUploadAsync("big1", 4 * Bytes.GiB);
        var second = await peer.BeginUploadAsync("big2", 4 * Bytes.GiB);
        var quota = await Assert.ThrowsAsync<QuotaExceededException>(() => peer.BeginUploadAsync("big3", 4 * Bytes.GiB));
        Assert.Equal(ErrorKind.QuotaExceeded, quota.Kind);
        Assert.Contains("disk quota exceeded", quota.Message);
        await peer.AbortUploadAsync(first.UploadId);
        await peer.AbortUploadAsync(second.UploadId);
        var tooBig = await Assert.ThrowsAsync<InvalidArgumentException>(() => peer.BeginUploadAsync("huge", 5 * Bytes.GiB));
        Assert.Contains("larger than the limit", tooBig.Message);
        var missing = await Assert.ThrowsAsync<NotFoundException>(() => peer.GetAsync("absent"));
        Assert.Equal("absent", missing.Name);
    }

    [Fact]
    public async Task Peer_describes_its_limits()
    {
        var description = await _peers.Peer("peer-3").DescribeAsync();
        Assert.Equal("peer-3", description.Name);
        Assert.Equal(256 * Bytes.MiB, description.MemoryQuota);
        Assert.Equal(10 * Bytes.GiB, description.DiskQuota);
    }
}
