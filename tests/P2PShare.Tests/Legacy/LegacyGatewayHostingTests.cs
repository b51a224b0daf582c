using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using P2PShare.Legacy;
using P2PShare.Tests.Http;
using P2PShare.Tests.Postgres;
using P2PShare.Tests.Support;
using P2PShare.Tracker;

namespace P2PShare.Tests.Legacy;

/// <summary>The peer host adds the seed-protocol gateway only when a port asks for it; the engine only carries its endpoint.</summary>
public sealed class LegacyGatewayHostingTests
{
    [Theory]
    [InlineData(null, null, false)]
    [InlineData("", "", false)]
    [InlineData("9000", null, true)]
    [InlineData(null, "8888", true)]
    [InlineData("0", null, true)]
    public void The_gateway_is_wanted_only_when_a_seed_protocol_port_is_set(string? peerPort, string? trackerPort, bool wanted)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Legacy:PeerPort"] = peerPort,
            ["Legacy:TrackerPort"] = trackerPort,
            ["Legacy:BindAddress"] = "127.0.0.1",
        }).Build();

        Assert.Equal(wanted, LegacyGatewayExtensions.IsConfigured(configuration));
    }

    [Fact]
    public async Task A_peer_with_a_seed_protocol_port_reports_it_as_an_endpoint_and_a_peer_without_one_runs_no_gateway()
    {
        using var data = new TempDirectory();
        var ports = FreeTcpPorts.Pick(4);
        var settings = WebPeer.BaseSettings("seed-1", Path.Combine(data.Path, "seed-1"), ports[0], ports[1], null);
        settings["Legacy:PeerPort"] = "0";
        settings["Legacy:BindAddress"] = "127.0.0.1";
        await using var seeded = await WebPeer.StartAsync(settings);
        await using var plain = await WebPeer.StartAsync(WebPeer.BaseSettings("plain-2", Path.Combine(data.Path, "plain-2"), ports[2], ports[3], ports[0]));

        Assert.Null(plain.Host.Services.GetService<LegacyGateway>());
        var port = seeded.Host.Services.GetRequiredService<LegacyGateway>().PeerEndpoint!.Port;
        var expected = $"127.0.0.1:{port}";
        await Eventually.TrueAsync(async () =>
        {
            var peers = (await plain.Grains.GetTracker().GetPeersAsync()).ToDictionary(p => p.Name);
            return peers.Count == 2
                && SeedProtocolEndpoint.Of(peers["seed-1"].Report) == expected
                && peers["plain-2"].Report.Endpoints.IsEmpty;
        }, TimeSpan.FromSeconds(20), $"the tracker shows seed-1's seed-protocol endpoint {expected} and none for plain-2");

        // What `peers --json` and the status page read: the same map, under `endpoints`.
        using var status = await plain.GetJsonAsync("api/status");
        var rows = status.RootElement.GetProperty("peers").EnumerateArray().ToDictionary(p => p.GetProperty("name").GetString()!, p => p.GetProperty("endpoints"));
        Assert.Equal(expected, rows["seed-1"].GetProperty(SeedProtocolEndpoint.Key).GetString());
        Assert.Empty(rows["plain-2"].EnumerateObject());
    }
}
