using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

using P2PShare.Tests.Support;

namespace P2PShare.Tests.Resp;

/// <summary>
/// Hostile RESP input costs the sender, not the peer: each abuse gets its exact error (or is held
/// back) and a closed connection, and the peer goes on serving everyone else with its data intact.
/// </summary>
public sealed class RespHostileInputTests(RespClusterFixture fixture) : IClassFixture<RespClusterFixture>
{
    private const string Peer = "peer-1";

    [Theory]
    [InlineData("*-\r\n", "ERR Protocol error: invalid multibulk length")]
    [InlineData("*2\r\n$3\r\nGET\r\n$99999999999\r\n", "ERR Protocol error: a bulk string of 99999999999 bytes is over this endpoint's limit of 1048576 (Resp:MaxBulkBytes)")]
    [InlineData("*2\r\n$3\r\nGET\r\n$-5\r\n", "ERR Protocol error: invalid bulk length")]
    [InlineData("*9999999\r\n", "ERR Protocol error: a request of 9999999 arguments is over this endpoint's limit of 4096 (Resp:MaxArguments)")]
    [InlineData("*2\r\n*1\r\n$4\r\nPING\r\n", "ERR Protocol error: nested arrays are not allowed (a request is a flat array of bulk strings)")]
    [InlineData("*1\r\n$4\r\nPINGxx", "ERR Protocol error: a bulk string must end with CRLF")]
    [InlineData("*1\r\n:4\r\n", "ERR Protocol error: expected '$', got ':'")]
    [InlineData("*1\n", "ERR Protocol error: invalid multibulk length")]
    [InlineData("*12345678901234567890123456789\r\n", "ERR Protocol error: invalid multibulk length")]
    public async Task Malformed_requests_get_a_protocol_error_and_a_closed_connection(string raw, string expected)
    {
        await using var wire = await RespWire.ConnectAsync(fixture.Port(Peer));
        await wire.SendAsync(raw);
        Assert.Equal(new RespError(expected), await wire.ReadAsync());
        Assert.True(await wire.ClosedByServerAsync(TimeSpan.FromSeconds(10)));
        await AssertServingAsync();
    }

    [Fact]
    public async Task A_huge_declared_length_allocates_nothing_and_a_request_over_the_limit_is_refused()
    {
        var before = fixture.Gateway(Peer).BufferedBytes;
        await using var wire = await RespWire.ConnectAsync(fixture.Port(Peer));
        // Declares 1 MiB (allowed) but sends only its header: the peer holds what arrived, no more.
        await wire.SendAsync("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n");
        await Task.Yield();
        Assert.Equal(before, fixture.Gateway(Peer).BufferedBytes);

        await using var big = await RespWire.ConnectAsync(fixture.Port(Peer));
        var value = new string('v', (int)RespClusterFixture.MaxValueBytes);
        var args = new List<object> { "MSET" };
        for (var i = 0; i < 5; i++)
        {
            args.Add($"big:{i}");
            args.Add(value);
        }

        // Five 1 MiB values are over the 4 MiB request limit: refused once the fifth is declared.
        try
        {
            await big.SendAsync(RespWire.Command([.. args]));
        }
        catch (IOException)
        {
            // The server may close while the rest is still being sent.
        }

        Assert.Equal(new RespError("ERR Protocol error: request larger than this endpoint's limit of 4194304 bytes (Resp:MaxRequestBytes)"), await big.ReadAsync());
        Assert.False(fixture.Store(Peer).Contains("big:0"));
        await AssertServingAsync();
    }

    [Fact]
    public async Task Inline_commands_work_and_an_overlong_line_is_refused()
    {
        await using var wire = await RespWire.ConnectAsync(fixture.Port(Peer));
        await wire.SendAsync("PING\r\nSET inline:k v1\r\n\r\nGET inline:k\n");
        Assert.Equal("PONG", await wire.ReadAsync());
        Assert.Equal("OK", await wire.ReadAsync());
        Assert.Equal("v1"u8.ToArray(), await wire.ReadAsync());

        await wire.SendAsync("SET x " + new string('a', RespClusterFixture.MaxInlineBytes + 10));
        Assert.Equal(new RespError($"ERR Protocol error: too big inline request (over {RespClusterFixture.MaxInlineBytes} bytes, Resp:MaxInlineBytes)"), await wire.ReadAsync());
        Assert.True(await wire.ClosedByServerAsync(TimeSpan.FromSeconds(10)));
        Assert.False(fixture.Store(Peer).Contains("x"));
    }

    [Fact]
    public async Task A_slow_loris_request_is_dropped_after_the_request_timeout()
    {
        await using var wire = await RespWire.ConnectAsync(fixture.Port(Peer));
        // Started before the first byte leaves, so the server's clock for the request cannot have
        // started earlier: closing sooner than the timeout would be a bug, not noise.
        var clock = Stopwatch.StartNew();
        await wire.SendAsync("*2\r\n$3\r\nGET\r\n$5\r\nab");
        // A byte every half second would go on forever (and never trips the idle timeout); the whole
        // request has a time limit. Generous ceiling: a loaded 2-core machine delays the sweep and us.
        var giveUp = RespClusterFixture.RequestTimeout + TimeSpan.FromSeconds(30);
        var closed = false;
        while (!closed && clock.Elapsed < giveUp)
        {
            try
            {
                await wire.SendAsync("c");
            }
            catch (IOException)
            {
                closed = true;
                break;
            }

            closed = await wire.ClosedByServerAsync(TimeSpan.FromMilliseconds(500));
        }

        var elapsed = clock.Elapsed;
        Assert.True(closed, $"the trickling client was not dropped within {giveUp.TotalSeconds:0} s");
        // 50 ms of slack only for timer and clock granularity.
        Assert.True(elapsed >= RespClusterFixture.RequestTimeout - TimeSpan.FromMilliseconds(50),
            $"dropped after {elapsed.TotalMilliseconds:0} ms, before the {RespClusterFixture.RequestTimeout.TotalMilliseconds:0} ms request timeout");
        await AssertServingAsync();
    }

    [Fact]
    public async Task An_idle_connection_is_closed_after_the_idle_timeout()
    {
        await using var wire = await RespWire.ConnectAsync(fixture.Port(Peer));
        Assert.Equal("PONG", await wire.CallAsync("PING"));
        Assert.False(await wire.ClosedByServerAsync(RespClusterFixture.IdleTimeout / 2));
        Assert.True(await wire.ClosedByServerAsync(RespClusterFixture.IdleTimeout + TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task The_connection_after_the_limit_is_told_why_and_closed()
    {
        var peer = "peer-2";
        var open = new List<RespWire>();
        try
        {
            // Fill up to the limit (other tests' connections to peer-2 count too, so fill until refused).
            RespError? refused = null;
            for (var i = 0; i < RespClusterFixture.MaxConnections + 5 && refused is null; i++)
            {
                var wire = await RespWire.ConnectAsync(fixture.Port(peer));
                await wire.SendAsync(RespWire.Command("PING"));
                var reply = await wire.ReadAsync();
                if (reply is RespError e)
                {
                    refused = e;
                    Assert.True(await wire.ClosedByServerAsync(TimeSpan.FromSeconds(10)));
                    await wire.DisposeAsync();
                }
                else
                {
                    Assert.Equal("PONG", reply);
                    open.Add(wire);
                }
            }

            Assert.Equal(new RespError("ERR max number of clients reached"), refused);
            Assert.Equal(RespClusterFixture.MaxConnections, fixture.Gateway(peer).Connections);
        }
        finally
        {
            foreach (var wire in open) await wire.DisposeAsync();
        }

        // Room again once clients leave.
        await Eventually.TrueAsync(() => Task.FromResult(fixture.Gateway(peer).Connections == 0), TimeSpan.FromSeconds(10), "connections close");
        await using var after = await RespWire.ConnectAsync(fixture.Port(peer));
        Assert.Equal("PONG", await after.CallAsync("PING"));
    }

    [Fact]
    public async Task A_pipeline_from_a_client_that_does_not_read_is_held_back_then_dropped()
    {
        var value = new byte[64 * 1024];
        Random.Shared.NextBytes(value);
        Assert.True(fixture.Store(Peer).TrySet("pipeline:v", value, null).Status == P2PShare.Memory.WriteStatus.Stored);
        await using var wire = await RespWire.ConnectAsync(fixture.Port(Peer));
        wire.Socket.ReceiveBufferSize = 4096;
        // A million GETs of a 64 KiB value would be 64 GiB of replies: the peer must stop reading
        // once its reply buffer and the socket are full, so the sender cannot finish sending.
        var oneGet = RespWire.Command("GET", "pipeline:v");
        var batch = Enumerable.Repeat(oneGet, 1000).SelectMany(b => b).ToArray();
        long sent = 0;
        var sending = Task.Run(async () =>
        {
            try
            {
                for (var i = 0; i < 1000; i++)
                {
                    await wire.Socket.SendAsync(batch, SocketFlags.None);
                    Interlocked.Add(ref sent, batch.Length);
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // Dropped by the peer: expected.
            }
        });

        var finished = await Task.WhenAny(sending, Task.Delay(RespClusterFixture.WriteTimeout + TimeSpan.FromSeconds(15))) == sending;
        Assert.True(finished, "the non-reading client was never dropped");
        Assert.True(Interlocked.Read(ref sent) < 1000L * batch.Length, "the peer read the whole pipeline without anyone taking the replies");
        Assert.True(Interlocked.Read(ref sent) < 64L * 1024 * 1024, $"the peer took {Interlocked.Read(ref sent)} bytes of requests before holding the sender back");
        Assert.Equal(value, await fixture.Peers.Peer(Peer).GetAsync("pipeline:v"));
        await AssertServingAsync();
    }

    [Fact]
    public async Task Unknown_commands_and_wrong_arguments_get_redis_errors_and_the_connection_stays()
    {
        await using var wire = await RespWire.ConnectAsync(fixture.Port(Peer));
        Assert.Equal(new RespError("ERR unknown command 'FLUSHALL', with args beginning with:"), await wire.CallAsync("FLUSHALL"));
        Assert.Equal(new RespError("ERR unknown command 'x?y', with args beginning with: 'a'"), await wire.CallAsync("x\ny", "a"));
        Assert.Equal(new RespError("ERR wrong number of arguments for 'get' command"), await wire.CallAsync("GET"));
        Assert.Equal(new RespError("ERR syntax error"), await wire.CallAsync("SET", "k", "v", "NX", "XX"));
        Assert.Equal(new RespError("ERR invalid expire time in 'set' command"), await wire.CallAsync("SET", "k", "v", "EX", "0"));
        Assert.Equal(new RespError("ERR invalid expire time in 'set' command"), await wire.CallAsync("SET", "k", "v", "EX", "99999999999999"));
        Assert.Equal(new RespError("ERR value is not an integer or out of range"), await wire.CallAsync("EXPIRE", "k", "soon"));
        Assert.Equal(new RespError("ERR DB index is out of range (this endpoint has one database, 0: the peer's memory)"), await wire.CallAsync("SELECT", "1"));
        Assert.Equal(new RespError("NOPROTO unsupported protocol version (this endpoint speaks RESP2)"), await wire.CallAsync("HELLO", "3"));
        Assert.Equal("OK", await wire.CallAsync("SELECT", "0"));
        Assert.Equal("OK", await wire.CallAsync("CLIENT", "SETNAME", "tester"));
        Assert.Equal("tester"u8.ToArray(), await wire.CallAsync("CLIENT", "GETNAME"));
        var hello = (object?[])(await wire.CallAsync("HELLO", "2"))!;
        Assert.Equal("proto"u8.ToArray(), hello[4]);
        Assert.Equal(2L, hello[5]);
        Assert.Equal("OK", await wire.CallAsync("QUIT"));
        Assert.True(await wire.ClosedByServerAsync(TimeSpan.FromSeconds(10)));
    }

    private async Task AssertServingAsync()
    {
        await using var wire = await RespWire.ConnectAsync(fixture.Port(Peer));
        Assert.Equal("OK", await wire.CallAsync("SET", "alive", Encoding.UTF8.GetBytes("yes")));
        Assert.Equal("yes"u8.ToArray(), await wire.CallAsync("GET", "alive"));
    }
}
