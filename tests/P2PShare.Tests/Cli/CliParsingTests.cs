using System.Text;
using P2PShare.Cli;
using P2PShare.Cli.Commands;
using P2PShare.Connecting;

namespace P2PShare.Tests.Cli;

public sealed class CliParsingTests
{
    [Theory]
    [InlineData("127.0.0.1:30000", "127.0.0.1", 30000)]
    [InlineData(" peer-a.lan:30001 ", "peer-a.lan", 30001)]
    [InlineData("[::1]:30002", "::1", 30002)]
    public void Gateway_parses_host_and_port(string text, string host, int port)
    {
        var gateway = Gateways.Parse(text);
        Assert.Equal(host, gateway.Host);
        Assert.Equal(port, gateway.Port);
    }

    [Theory]
    [InlineData("")]
    [InlineData("host")]
    [InlineData("host:")]
    [InlineData(":30000")]
    [InlineData("host:0")]
    [InlineData("host:70000")]
    [InlineData("::1:30000")]
    public void Bad_gateway_is_a_usage_error(string text)
    {
        Assert.Throws<UsageException>(() => Gateways.Parse(text));
    }

    [Fact]
    public void Gateways_from_options_win_over_environment_which_wins_over_the_default()
    {
        Assert.Equal([new HostPort("a", 1), new HostPort("b", 2)], Gateways.Select(["a:1", "b:2"], "c:3"));
        Assert.Equal([new HostPort("c", 3), new HostPort("d", 4)], Gateways.Select([], "c:3,d:4"));
        Assert.Equal([Gateways.Default], Gateways.Select(null, null));
    }

    [Fact]
    public void Values_are_text_files_or_escaped_at_signs()
    {
        var text = MemCommands.ParseValue("hello");
        Assert.Equal(Encoding.UTF8.GetBytes("hello"), text.Literal);
        Assert.Null(text.File);

        var file = MemCommands.ParseValue("@data.bin");
        Assert.Null(file.Literal);
        Assert.Equal("data.bin", file.File);

        var escaped = MemCommands.ParseValue("@@literal");
        Assert.Equal(Encoding.UTF8.GetBytes("@literal"), escaped.Literal);
        Assert.Null(escaped.File);
    }

    [Theory]
    [InlineData(ErrorKind.InvalidName, 2)]
    [InlineData(ErrorKind.InvalidArgument, 2)]
    [InlineData(ErrorKind.NotFound, 3)]
    [InlineData(ErrorKind.QuotaExceeded, 4)]
    [InlineData(ErrorKind.PeerUnavailable, 5)]
    [InlineData(ErrorKind.NoPeersAvailable, 5)]
    [InlineData(ErrorKind.IntegrityError, 6)]
    [InlineData(ErrorKind.Internal, 1)]
    public void Each_error_kind_has_its_exit_code(ErrorKind kind, int exitCode)
    {
        Assert.Equal(exitCode, ExitCodes.For(kind));
    }

    [Fact]
    public void Errors_are_reported_on_one_line()
    {
        var stderr = new StringWriter();
        var code = ErrorReporting.Report(new InvalidOperationException("first line\nsecond line"), stderr);
        Assert.Equal(1, code);
        Assert.Equal("error: first line" + Environment.NewLine, stderr.ToString());

        stderr = new StringWriter();
        Assert.Equal(3, ErrorReporting.Report(new NotFoundException("key", "k"), stderr));
        Assert.Equal("error: key 'k' not found" + Environment.NewLine, stderr.ToString());
    }

    [Fact]
    public void Download_destination_defaults_to_the_remote_leaf_name()
    {
        Assert.Equal(Path.GetFullPath("report.pdf"), FileCommands.DestinationFor("docs/2026/report.pdf", null));
        Assert.Equal(Path.GetFullPath("/tmp/x.bin"), FileCommands.DestinationFor("a/b.bin", "/tmp/x.bin"));
        Assert.Equal(Path.Combine(Path.GetTempPath().TrimEnd('/'), "b.bin"), FileCommands.DestinationFor("a/b.bin", Path.GetTempPath()));
    }
}
