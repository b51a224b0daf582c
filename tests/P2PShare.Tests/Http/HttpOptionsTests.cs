using P2PShare.Configuration;
using P2PShare.Connecting;
using P2PShare.Hosting;
using P2PShare.Peer;
using P2PShare.Peer.Http;
using P2PShare.Peers;

namespace P2PShare.Tests.Http;

public sealed class HttpOptionsTests
{
    private static readonly PeerOptions Peer = new() { Name = "peer-1", SiloPort = 11111, GatewayPort = 30000 };

    [Fact]
    public void Http_is_off_and_loopback_only_unless_configured()
    {
        var options = PeerHost.ReadHttp(PeerHost.LoadConfiguration(["--name", "peer-1"]));

        Assert.False(options.Enabled);
        Assert.Equal("127.0.0.1", options.BindAddress);
        Assert.False(options.Dashboard);
        Assert.Empty(Problems(options));
    }

    [Theory]
    [InlineData("--http-port 5000 --dashboard")]
    [InlineData("--dashboard --http-port 5000")]
    [InlineData("--http-port 5000 --dashboard true")]
    public void Switches_set_the_port_and_the_dashboard_flag(string args)
    {
        var options = PeerHost.ReadHttp(PeerHost.LoadConfiguration(args.Split(' ')));

        Assert.Equal(5000, options.Port);
        Assert.True(options.Dashboard);
        Assert.Empty(Problems(options));
    }

    [Theory]
    [InlineData("70000", "127.0.0.1", false, "Http:Port (--http-port) must be 1..65535, not 70000")]
    [InlineData("30000", "127.0.0.1", false, "Http:Port 30000 is already the silo or gateway port")]
    [InlineData("5000", "localhost", false, "Http:BindAddress (--http-bind) 'localhost' is not an IP address")]
    [InlineData(null, "127.0.0.1", true, "Http:Dashboard (--dashboard) needs Http:Port (--http-port)")]
    public void Bad_settings_are_named_in_one_line(string? port, string bind, bool dashboard, string expected)
    {
        var options = new HttpOptions { Port = port is null ? null : int.Parse(port), BindAddress = bind, Dashboard = dashboard };

        Assert.Equal([expected], Problems(options));
    }

    /// <summary>The HTTP settings' problems, checked as the peer host checks them: beside the peer's own ports.</summary>
    private static IReadOnlyList<string> Problems(HttpOptions options) =>
        AnnotatedOptionsValidator<PeerHostSettings>.Problems(new PeerHostSettings(Peer, new ClusteringOptions(), options));
}
