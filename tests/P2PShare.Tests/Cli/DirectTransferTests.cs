using System.Security.Cryptography;
using P2PShare.Cli;
using P2PShare.Connecting;
using P2PShare.Tests.Http;
using P2PShare.Tests.Postgres;
using P2PShare.Tests.Support;

namespace P2PShare.Tests.Cli;

/// <summary>
/// A file transfer to a peer goes through that peer's own gateway, not through the silo whose
/// gateway the CLI first connected to (which would receive and forward every chunk).
/// </summary>
public sealed class DirectTransferTests
{
    [Fact]
    public async Task A_transfer_to_another_peer_connects_to_its_own_gateway_and_needs_nothing_of_the_first()
    {
        using var data = new TempDirectory();
        var ports = FreeTcpPorts.Pick(4);
        await using var first = await WebPeer.StartAsync(WebPeer.BaseSettings("peer-1", Path.Combine(data.Path, "peer-1"), ports[0], ports[1], null));
        await using var target = await WebPeer.StartAsync(WebPeer.BaseSettings("peer-2", Path.Combine(data.Path, "peer-2"), ports[2], ports[3], ports[0]));
        await using var cluster = await ClusterConnection.ConnectAsync(
            new ConnectionSettings([new HostPort("127.0.0.1", ports[1])], Origin: null), CancellationToken.None);
        await Eventually.TrueAsync(async () => (await cluster.Tracker.GetPeersAsync()).Length == 2,
            TimeSpan.FromSeconds(20), "the tracker lists both peers");

        // Already through peer-1's gateway alone, and a peer the tracker does not know: no second connection.
        Assert.Null(await cluster.ConnectToPeerGatewayAsync("peer-1", CancellationToken.None));
        Assert.Null(await cluster.ConnectToPeerGatewayAsync("peer-9", CancellationToken.None));

        await using var direct = await cluster.ConnectToPeerGatewayAsync("peer-2", CancellationToken.None);
        Assert.NotNull(direct);
        Assert.Equal($"127.0.0.1:{ports[3]}", direct.GatewaysText);

        var local = Path.Combine(data.Path, "up.bin");
        var bytes = RandomNumberGenerator.GetBytes(3 * 1024 * 1024 + 17);
        await File.WriteAllBytesAsync(local, bytes);
        var stored = await new FileTransfer(direct, "peer-2").UploadAsync(local, "direct.bin", _ => { }, CancellationToken.None);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), stored.Sha256);

        // The first connection closed: the direct one still reaches peer-2, so it never went through peer-1's gateway.
        await cluster.DisposeAsync();
        var back = Path.Combine(data.Path, "back.bin");
        await new FileTransfer(direct, "peer-2").DownloadAsync("direct.bin", back, _ => { }, CancellationToken.None);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(back));
    }

    [Theory]
    [InlineData("0", null, "P2PSHARE_FILE_WINDOW=0 is not an integer 1..64")]
    [InlineData("65", null, "P2PSHARE_FILE_WINDOW=65 is not an integer 1..64")]
    [InlineData(null, "4095", "P2PSHARE_FILE_CHUNK_BYTES=4095 is not an integer 4096..4194304")]
    [InlineData(null, "1e6", "P2PSHARE_FILE_CHUNK_BYTES=1e6 is not an integer 4096..4194304")]
    public void Transfer_tuning_out_of_range_is_a_usage_error_naming_the_variable(string? window, string? chunk, string message)
    {
        var error = Assert.Throws<UsageException>(() => TransferTuning.FromEnvironment(Variables(window, chunk)));
        Assert.Equal(message, error.Message);
    }

    [Fact]
    public void Transfer_tuning_defaults_when_unset_and_takes_valid_values()
    {
        Assert.Equal(TransferTuning.Default, TransferTuning.FromEnvironment(Variables(null, null)));
        Assert.Equal(new TransferTuning(16, 262144), TransferTuning.FromEnvironment(Variables("16", "262144")));
    }

    private static Func<string, string?> Variables(string? window, string? chunk) => name => name switch
    {
        TransferTuning.WindowVariable => window,
        TransferTuning.ChunkBytesVariable => chunk,
        _ => null,
    };
}
