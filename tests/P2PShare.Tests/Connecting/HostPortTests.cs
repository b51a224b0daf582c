using System.Net;
using P2PShare.Connecting;

namespace P2PShare.Tests.Connecting;

/// <summary>One host:port reader for the CLI's gateways and a peer's primary.</summary>
public sealed class HostPortTests
{
    [Theory]
    [InlineData("127.0.0.1:30000", "127.0.0.1", 30000)]
    [InlineData(" peer-a.lan:30001 ", "peer-a.lan", 30001)]
    [InlineData("[::1]:30002", "::1", 30002)]
    [InlineData("[fd00::5]:11111", "fd00::5", 11111)]
    public void Host_and_port_are_read_as_users_write_them(string text, string host, int port)
    {
        foreach (var allowBareIPv6 in new[] { false, true })
        {
            Assert.True(HostPort.TryParse(text, out var address, allowBareIPv6));
            Assert.Equal(new HostPort(host, port), address);
        }
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("host")]
    [InlineData("host:")]
    [InlineData(":30000")]
    [InlineData("host:0")]
    [InlineData("host:70000")]
    [InlineData("host:-1")]
    [InlineData("host:+1")]
    [InlineData("[::1]")]
    [InlineData("[::1]30000")]
    [InlineData("[]:30000")]
    public void Text_that_is_not_a_host_and_a_port_is_refused(string? text)
    {
        Assert.False(HostPort.TryParse(text, out _));
        Assert.False(HostPort.TryParse(text, out _, allowBareIPv6: true));
    }

    [Theory]
    [InlineData("::1:11111", "::1", 11111)]
    [InlineData("fd00::5:11111", "fd00::5", 11111)]
    public void A_bare_IPv6_address_takes_the_last_colon_as_the_port_only_where_asked(string text, string host, int port)
    {
        // The CLI refuses it (which colon starts the port?); a peer's Peer:Primary always read it this way.
        Assert.False(HostPort.TryParse(text, out _));
        Assert.True(HostPort.TryParse(text, out var primary, allowBareIPv6: true));
        Assert.Equal(new HostPort(host, port), primary);
    }

    [Fact]
    public void IPv6_hosts_are_written_back_in_brackets()
    {
        Assert.Equal("[::1]:30000", new HostPort("::1", 30000).ToString());
        Assert.Equal("peer-a:30000", new HostPort("peer-a", 30000).ToString());
    }

    [Fact]
    public async Task An_address_resolves_to_itself_and_a_name_prefers_IPv4()
    {
        Assert.Equal(new IPEndPoint(IPAddress.IPv6Loopback, 5), await new HostPort("::1", 5).ResolveAsync(CancellationToken.None));
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 5), new HostPort("127.0.0.1", 5).Resolve());
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 6), await new HostPort("localhost", 6).ResolveAsync(CancellationToken.None));
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 6), new HostPort("localhost", 6).Resolve());
    }
}
