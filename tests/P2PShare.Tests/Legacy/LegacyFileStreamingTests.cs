using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using P2PShare.Files;
using P2PShare.Legacy;
using P2PShare.Tests.Support;
using Xunit;

namespace P2PShare.Tests.Legacy;

/// <summary>
/// PUT_FILE and GET_FILE move files in pieces within the gateway's byte budget: a PUT_FILE is
/// decoded chunk by chunk straight from the request, a GET_FILE encoded piece by piece while sent.
/// Failures and refusals leave stored files as they were, give back quota and budget, and the port
/// keeps answering.
/// </summary>
public sealed class LegacyFileStreamingTests(LegacyFileFixture fixture) : IClassFixture<LegacyFileFixture>
{
    private const string Peer = "peer-1";
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(5);

    private System.Net.IPEndPoint Port => fixture.Gateway.PeerEndpoint!;

    private FileStore Store => fixture.Peers.Silo(Peer).ServiceProvider.GetRequiredService<FileStore>();

    [Fact]
    public async Task A_PUT_FILE_across_several_chunks_is_stored_byte_identical_with_its_SHA_256()
    {
        // Not a multiple of the chunk size nor of 3: pieces end mid-group and the value ends in padding.
        var data = RandomNumberGenerator.GetBytes((int)(2.5 * 1024 * 1024) + 1);
        var put = await LegacyClient.CallAsync(Port, new { type = "PUT_FILE", filename = "stream/pieces.bin", data = Convert.ToBase64String(data) });
        Assert.Equal("OK", (string?)put["status"]);
        Assert.Equal(data.Length, (long)put["size"]!);

        var info = await Store.StatAsync("stream/pieces.bin");
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(data)), info.Sha256);
        var get = await LegacyClient.CallAsync(Port, new { type = "GET_FILE", filename = "stream/pieces.bin" });
        Assert.Equal(data, Convert.FromBase64String((string)get["data"]!));
        await AssertBudgetEmptyAsync();
    }

    [Fact]
    public async Task A_PUT_FILE_whose_base64_has_JSON_escapes_is_stored_as_its_decoded_value()
    {
        // `\/` is a legal JSON spelling of '/', which base64 uses; some encoders always write it so.
        byte[] data = [.. Enumerable.Range(0, 300_000).Select(i => (byte)(0xFF - (i % 7)))];
        var base64 = Convert.ToBase64String(data);
        Assert.Contains('/', base64);
        var json = $$"""{"type":"PUT_FILE","filename":"stream/escaped.bin","data":"{{base64.Replace("/", "\\/")}}"}""";
        await using var client = await LegacyClient.ConnectAsync(Port);
        await client.SendAsync(Encoding.UTF8.GetBytes(json));
        var put = await client.ReceiveAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("OK", (string?)put!["status"]);

        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(data)), (await Store.StatAsync("stream/escaped.bin")).Sha256);
        await AssertBudgetEmptyAsync();
    }

    [Theory]
    [InlineData('!')]
    [InlineData('=')]
    [InlineData('-')]
    public async Task A_PUT_FILE_with_bad_base64_midway_is_refused_and_leaves_the_old_file_quota_and_budget_as_they_were(char bad)
    {
        var name = $"stream/midway-{(int)bad}.bin";
        var old = RandomNumberGenerator.GetBytes(100_000);
        Assert.Equal("OK", (string?)(await LegacyClient.CallAsync(Port, new { type = "PUT_FILE", filename = name, data = Convert.ToBase64String(old) }))["status"]);
        var oldInfo = await Store.StatAsync(name);
        var usedBefore = Store.Usage.UsedBytes;

        // Three chunks decode and are written before the fourth holds the bad character.
        var base64 = Convert.ToBase64String(RandomNumberGenerator.GetBytes(4 * 1024 * 1024)).ToCharArray();
        base64[(int)(3.5 * 1024 * 1024 * 4 / 3)] = bad;
        var reply = await LegacyClient.CallAsync(Port, new { type = "PUT_FILE", filename = name, data = new string(base64) });

        Assert.Equal("ERROR", (string?)reply["type"]);
        Assert.Equal("'data' of PUT_FILE is not valid base64", (string?)reply["error"]);
        // Aborted before the reply: no upload open, its reserved quota released, no temp file left.
        Assert.Equal(0, Store.OpenUploads);
        Assert.Equal((usedBefore, 0L), (Store.Usage.UsedBytes, Store.Usage.ReservedBytes));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(DataDirectory, "tmp")));
        Assert.Equal(oldInfo, await Store.StatAsync(name));
        var get = await LegacyClient.CallAsync(Port, new { type = "GET_FILE", filename = name });
        Assert.Equal(old, Convert.FromBase64String((string)get["data"]!));
        await AssertBudgetEmptyAsync();
    }

    [Fact]
    public async Task GET_FILEs_past_the_byte_budget_are_refused_while_slow_readers_hold_it_and_all_is_given_back()
    {
        var data = RandomNumberGenerator.GetBytes(LegacyClusterFixture.MaxFileBytes);
        Assert.Equal("OK", (string?)(await LegacyClient.CallAsync(Port, new { type = "PUT_FILE", filename = "stream/slow.bin", data = Convert.ToBase64String(data) }))["status"]);
        var gateway = fixture.Gateway;
        var each = Base64FileField.Footprint(data.Length, Store.ChunkBytes);
        var capacity = 2L * LegacyClusterFixture.MaxFrameBytes;
        var holders = (int)(capacity / each);
        Assert.InRange(holders, 1, 16);

        // Readers that ask and then do not read: their replies (5.6 MB of base64 each) do not fit in
        // the socket buffers, so each keeps its pieces, and its share of the budget, while it waits.
        var slow = new List<Socket>();
        try
        {
            for (var i = 0; i < holders; i++)
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
                slow.Add(socket);
                await socket.ConnectAsync(Port);
                await socket.SendAsync(Frame(new { type = "GET_FILE", filename = "stream/slow.bin" }));
            }

            await Eventually.TrueAsync(() => Task.FromResult(gateway.BufferedBytes == holders * each),
                TimeSpan.FromSeconds(15), "the slow readers hold their share of the budget");

            var refused = await LegacyClient.CallAsync(Port, new { type = "GET_FILE", filename = "stream/slow.bin" });
            Assert.Equal("ERROR", (string?)refused["type"]);
            Assert.Equal($"the gateway is busy sending other large replies ({P2PShare.Bytes.Format(holders * each)} held); try again", (string?)refused["error"]);
            Assert.Equal("OK", (string?)(await LegacyClient.CallAsync(Port, new { type = "STATUS" }))["status"]);
        }
        finally
        {
            foreach (var socket in slow) socket.Dispose();
        }

        // Their replies fail on the closed sockets; the pieces and the budget are given back.
        await AssertBudgetEmptyAsync();
        Assert.Equal(0, Store.OpenDownloads);
        var get = await LegacyClient.CallAsync(Port, new { type = "GET_FILE", filename = "stream/slow.bin" });
        Assert.Equal(data, Convert.FromBase64String((string)get["data"]!));
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(data)), (string?)get["sha256"]);
    }

    private string DataDirectory => fixture.Peers.Silo(Peer).ServiceProvider.GetRequiredService<PeerDataDirectory>().Path;

    private static byte[] Frame(object message)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(message);
        var frame = new byte[4 + body.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)body.Length);
        body.CopyTo(frame, 4);
        return frame;
    }

    private async Task AssertBudgetEmptyAsync()
    {
        var gateway = fixture.Gateway;
        await Eventually.TrueAsync(() => Task.FromResult(gateway.BufferedBytes == 0), Prompt, "the gateway's byte budget is back to 0");
        Assert.Equal("PONG", (string?)(await LegacyClient.CallAsync(Port, new { type = "PING" }))["type"]);
    }
}

/// <summary>
/// One peer whose seed-protocol port has <see cref="LegacyClusterFixture"/>'s limits and whose file
/// store uses the default 1 MiB chunks, so a 4 MiB file's reply holds pieces of the size it does in production.
/// </summary>
public sealed class LegacyFileFixture : IAsyncLifetime
{
    public PeerCluster Peers { get; private set; } = null!;

    public LegacyGateway Gateway => Peers.Silo("peer-1").ServiceProvider.GetRequiredService<LegacyGateway>();

    public async Task InitializeAsync() => Peers = await PeerCluster.StartAsync(1, services =>
    {
        services.AddP2PShareLegacyGateway().Configure<LegacyOptions>(LegacyClusterFixture.Configure);
        services.Configure<DiskOptions>(o => o.ChunkBytes = DiskOptions.DefaultChunkBytes);
    });

    public async Task DisposeAsync() => await Peers.DisposeAsync();
}
