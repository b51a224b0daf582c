using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace P2PShare.Tests.Legacy;

/// <summary>A raw TCP client of the seed protocol: 4-byte big-endian length + UTF-8 JSON.</summary>
internal sealed class LegacyClient : IAsyncDisposable
{
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;

    private LegacyClient(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
    }

    public static async Task<LegacyClient> ConnectAsync(IPEndPoint endpoint)
    {
        var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(endpoint);
        return new LegacyClient(tcp);
    }

    /// <summary>One request on a fresh connection, as the original client does it.</summary>
    public static async Task<JsonObject> CallAsync(IPEndPoint endpoint, object message)
    {
        await using var client = await ConnectAsync(endpoint);
        return await client.RequestAsync(message);
    }

    public async Task<JsonObject> RequestAsync(object message, TimeSpan? timeout = null)
    {
        await SendAsync(JsonSerializer.SerializeToUtf8Bytes(message));
        return await ReceiveAsync(timeout ?? DefaultTimeout) ?? throw new IOException("the connection closed instead of replying");
    }

    /// <summary>Sends <paramref name="payload"/> with a correct length prefix.</summary>
    public Task SendAsync(byte[] payload)
    {
        var frame = new byte[4 + payload.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)payload.Length);
        payload.CopyTo(frame, 4);
        return SendRawAsync(frame);
    }

    public async Task SendRawAsync(byte[] bytes) => await _stream.WriteAsync(bytes);

    public void ShutdownSend() => _tcp.Client.Shutdown(SocketShutdown.Send);

    /// <summary>The next reply, or null when the server closed the connection (FIN or RST).</summary>
    public async Task<JsonObject?> ReceiveAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            var prefix = new byte[4];
            if (!await ReadExactlyOrEndAsync(prefix, cts.Token)) return null;
            var body = new byte[BinaryPrimitives.ReadUInt32BigEndian(prefix)];
            if (!await ReadExactlyOrEndAsync(body, cts.Token)) throw new IOException("the reply was cut short");
            return JsonNode.Parse(Encoding.UTF8.GetString(body))!.AsObject();
        }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
            return null;
        }
    }

    /// <summary>True when the server closes the connection within <paramref name="timeout"/> (replies before that are skipped).</summary>
    public async Task<bool> ClosedWithinAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var buffer = new byte[4096];
        try
        {
            while (DateTime.UtcNow < deadline)
            {
                using var cts = new CancellationTokenSource(deadline - DateTime.UtcNow);
                if (await _stream.ReadAsync(buffer, cts.Token) == 0) return true;
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (IOException)
        {
            return true;
        }

        return false;
    }

    private async Task<bool> ReadExactlyOrEndAsync(byte[] buffer, CancellationToken token)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await _stream.ReadAsync(buffer.AsMemory(read), token);
            if (n == 0) return false;
            read += n;
        }

        return true;
    }

    public ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        return ValueTask.CompletedTask;
    }
}
