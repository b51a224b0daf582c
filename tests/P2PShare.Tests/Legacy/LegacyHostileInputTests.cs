using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using P2PShare.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace P2PShare.Tests.Legacy;

/// <summary>
/// Hostile clients on the seed-protocol port: broken frames, slow-loris connections, floods. Each
/// ends in an ERROR reply or a closed connection, and never stops the peer answering others.
/// </summary>
public sealed class LegacyHostileInputTests(LegacyClusterFixture fixture, ITestOutputHelper output) : IClassFixture<LegacyClusterFixture>
{
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(5);

    private System.Net.IPEndPoint Port => fixture.PeerPort("peer-1");

    [Theory]
    [InlineData(0xFFFFFFFFu)]
    [InlineData(0x80000000u)]
    [InlineData((uint)LegacyClusterFixture.MaxFrameBytes + 1)]
    public async Task An_oversized_length_is_refused_at_once_and_the_connection_closed(uint length)
    {
        await using var client = await LegacyClient.ConnectAsync(Port);
        var prefix = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(prefix, length);
        await client.SendRawAsync(prefix);
        var reply = await client.ReceiveAsync(Prompt);
        Assert.NotNull(reply);
        Assert.Equal("ERROR", (string?)reply["type"]);
        Assert.Contains("larger than", (string?)reply["error"]);
        Assert.True(await client.ClosedWithinAsync(Prompt));
        await AssertServingAsync();
    }

    [Fact]
    public async Task A_truncated_message_gets_an_error_and_a_close()
    {
        await using var client = await LegacyClient.ConnectAsync(Port);
        var frame = new byte[4 + 10];
        BinaryPrimitives.WriteUInt32BigEndian(frame, 100);
        "{\"type\":\"P"u8.ToArray().CopyTo(frame, 4);
        await client.SendRawAsync(frame);
        client.ShutdownSend();
        var reply = await client.ReceiveAsync(Prompt);
        Assert.NotNull(reply);
        Assert.Contains("truncated", (string?)reply["error"]);
        Assert.True(await client.ClosedWithinAsync(Prompt));

        // Cut inside the length prefix too.
        await using var half = await LegacyClient.ConnectAsync(Port);
        await half.SendRawAsync([0, 0]);
        half.ShutdownSend();
        Assert.True(await half.ClosedWithinAsync(Prompt));
        await AssertServingAsync();
    }

    [Fact]
    public async Task Empty_and_invalid_utf8_messages_get_errors_and_the_connection_goes_on()
    {
        await using var client = await LegacyClient.ConnectAsync(Port);
        await client.SendAsync([]);
        Assert.Contains("empty message", (string?)(await client.ReceiveAsync(Prompt))!["error"]);

        await client.SendAsync([.. "{\"type\":\"PING\",\"x\":\""u8, 0xff, 0xfe, 0xc0, .. "\"}"u8]);
        Assert.Contains("UTF-8", (string?)(await client.ReceiveAsync(Prompt))!["error"]);

        await client.SendAsync(Encoding.UTF8.GetBytes(new string('[', 10_000) + new string(']', 10_000)));
        Assert.Equal("ERROR", (string?)(await client.ReceiveAsync(Prompt))!["type"]);

        Assert.Equal("PONG", (string?)(await client.RequestAsync(new { type = "PING" }))["type"]);
    }

    [Fact]
    public async Task A_silent_connection_is_closed_after_the_idle_timeout()
    {
        await using var client = await LegacyClient.ConnectAsync(Port);
        var watch = Stopwatch.StartNew();
        Assert.True(await client.ClosedWithinAsync(LegacyClusterFixture.IdleTimeout + TimeSpan.FromSeconds(10)));
        Assert.True(watch.Elapsed >= LegacyClusterFixture.IdleTimeout - TimeSpan.FromSeconds(1), $"closed after {watch.Elapsed}");
    }

    [Fact]
    public async Task A_trickling_message_is_dropped_while_others_are_served()
    {
        await using var slow = await LegacyClient.ConnectAsync(Port);
        var prefix = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(prefix, 1_000);
        await slow.SendRawAsync(prefix);
        var watch = Stopwatch.StartNew();
        var dropped = false;
        // One byte a second: each read makes progress within the stall timeout, but the message as a
        // whole is far below the minimum rate.
        while (watch.Elapsed < TimeSpan.FromSeconds(30))
        {
            try
            {
                await slow.SendRawAsync("{"u8.ToArray());
            }
            catch (IOException)
            {
                dropped = true;
                break;
            }

            var ping = Stopwatch.StartNew();
            Assert.Equal("PONG", (string?)(await LegacyClient.CallAsync(Port, new { type = "PING" }))["type"]);
            Assert.True(ping.Elapsed < TimeSpan.FromSeconds(2), $"PING took {ping.Elapsed} beside a slow client");
            if (await slow.ClosedWithinAsync(TimeSpan.FromSeconds(1)))
            {
                dropped = true;
                break;
            }
        }

        Assert.True(dropped, "the trickling client was never dropped");
        output.WriteLine($"trickling client dropped after {watch.Elapsed.TotalSeconds:0.0} s");
    }

    [Fact]
    public async Task Twice_the_connection_limit_of_slow_loris_clients_does_not_lock_out_a_new_client()
    {
        var slow = new List<LegacyClient>();
        try
        {
            for (var i = 0; i < 2 * LegacyClusterFixture.MaxConnections; i++)
            {
                var c = await LegacyClient.ConnectAsync(Port);
                slow.Add(c);
                await c.SendRawAsync([0, 0]); // half a length prefix, then nothing
            }

            var watch = Stopwatch.StartNew();
            Assert.Equal("PONG", (string?)(await LegacyClient.CallAsync(Port, new { type = "PING" }))["type"]);
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), $"a new client waited {watch.Elapsed}");
            Assert.True(fixture.Gateway("peer-1").PeerEndpoint is not null);
        }
        finally
        {
            foreach (var c in slow) await c.DisposeAsync();
        }
    }

    [Fact]
    public async Task Large_messages_beyond_the_memory_budget_are_refused_while_small_ones_are_served()
    {
        // Two clients hold the whole budget with large messages they keep trickling.
        var holders = new List<LegacyClient>();
        var size = LegacyClusterFixture.MaxFrameBytes;
        try
        {
            for (var i = 0; i < 2; i++)
            {
                var c = await LegacyClient.ConnectAsync(Port);
                holders.Add(c);
                var prefix = new byte[4];
                BinaryPrimitives.WriteUInt32BigEndian(prefix, (uint)size);
                await c.SendRawAsync(prefix);
                await c.SendRawAsync(new byte[size / 2 + 1024]); // past half: its buffer is the whole message
            }

            // Both bodies are in the gateway's buffers before the third client comes.
            await Eventually.TrueAsync(() => Task.FromResult(fixture.Gateway("peer-1").BufferedBytes >= 2L * (size - 64 * 1024)),
                TimeSpan.FromSeconds(15), "the two large messages hold the budget");
            using var trickle = new CancellationTokenSource();
            var keepAlive = Task.Run(async () =>
            {
                while (!trickle.IsCancellationRequested)
                {
                    foreach (var h in holders) await h.SendRawAsync([32]);
                    await Task.Delay(500, trickle.Token).ContinueWith(_ => { });
                }
            });

            await using var third = await LegacyClient.ConnectAsync(Port);
            var big = new byte[4 + 200_000];
            BinaryPrimitives.WriteUInt32BigEndian(big, (uint)size);
            await third.SendRawAsync(big);
            var refused = await third.ReceiveAsync(TimeSpan.FromSeconds(15));
            Assert.NotNull(refused);
            Assert.Contains("busy", (string?)refused["error"]);

            Assert.Equal("PONG", (string?)(await LegacyClient.CallAsync(Port, new { type = "PING" }))["type"]);
            await trickle.CancelAsync();
            await keepAlive;
        }
        finally
        {
            foreach (var h in holders) await h.DisposeAsync();
        }

        // Once they are gone, a large message fits again.
        await Eventually.TrueAsync(async () =>
        {
            var data = Convert.ToBase64String(new byte[3 * 1024 * 1024]);
            var reply = await LegacyClient.CallAsync(Port, new { type = "PUT_FILE", filename = "after-budget.bin", data });
            return (string?)reply["status"] == "OK";
        }, TimeSpan.FromSeconds(20), "a 3 MiB PUT_FILE is accepted after the holders left");
    }

    [Fact]
    public async Task Many_concurrent_GET_FILEs_of_a_big_file_are_streamed_within_the_byte_budget()
    {
        var data = System.Security.Cryptography.RandomNumberGenerator.GetBytes(LegacyClusterFixture.MaxFileBytes);
        var put = await LegacyClient.CallAsync(Port, new { type = "PUT_FILE", filename = "hostile/big.bin", data = Convert.ToBase64String(data) });
        Assert.Equal("OK", (string?)put["status"]);
        var gateway = fixture.Gateway("peer-1");
        const int Clients = 40;
        var capacity = 2L * LegacyClusterFixture.MaxFrameBytes;

        long peak = 0;
        using var stop = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                peak = Math.Max(peak, gateway.BufferedBytes);
                await Task.Yield();
            }
        });
        var replies = await Task.WhenAll(Enumerable.Range(0, Clients).Select(async _ =>
        {
            await using var client = await LegacyClient.ConnectAsync(Port);
            return await client.RequestAsync(new { type = "GET_FILE", filename = "hostile/big.bin" }, TimeSpan.FromSeconds(60));
        }));
        await stop.CancelAsync();
        await sampler;

        var served = 0;
        foreach (var reply in replies)
        {
            if ((string?)reply["type"] == "ERROR")
            {
                Assert.Contains("busy", (string?)reply["error"]);
                continue;
            }

            Assert.Equal(data, Convert.FromBase64String((string)reply["data"]!));
            served++;
        }

        output.WriteLine($"{served} of {Clients} served; budget peak {peak} of {capacity} bytes");
        Assert.True(served > 0);
        // Each reply counted what it held (a piece or two), never a whole file: 40 files in base64 would be 224 MB.
        Assert.InRange(peak, 1, capacity);
        var deadline = DateTime.UtcNow + Prompt;
        while (gateway.BufferedBytes != 0 && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal(0, gateway.BufferedBytes);
        await AssertServingAsync();
    }

    private async Task AssertServingAsync()
    {
        var reply = await LegacyClient.CallAsync(Port, new { type = "STATUS" });
        Assert.Equal("OK", (string?)reply["status"]);
    }
}
