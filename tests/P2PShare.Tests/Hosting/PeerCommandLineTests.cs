using System.CommandLine;
using System.CommandLine.Help;
using P2PShare.Peer;

namespace P2PShare.Tests.Hosting;

/// <summary>
/// <c>p2pshare-peer</c>'s command line: each switch is declared once, and its option, its line in
/// <c>--help</c> and the setting it writes agree.
/// </summary>
public sealed class PeerCommandLineTests
{
    /// <summary>Every switch of the peer, the setting it writes and its default as help states it.</summary>
    public static TheoryData<string, string, string> Switches => new()
    {
        { "--name", "Peer:Name", "none, required" },
        { "--silo-port", "Peer:SiloPort", "11111" },
        { "--gateway-port", "Peer:GatewayPort", "30000" },
        { "--primary", "Peer:Primary", "none, this peer is the primary" },
        { "--clustering", "Clustering:Mode", "local" },
        { "--db", "Clustering:ConnectionString", "none" },
        { "--address", "Clustering:AdvertisedAddress", "this host's first non-loopback IPv4" },
        { "--data-dir", "Peer:DataDir", "data/NAME" },
        { "--memory-quota", "Memory:QuotaBytes", "268435456 (256 MiB)" },
        { "--disk-quota", "Disk:QuotaBytes", "10737418240 (10 GiB)" },
        { "--max-file-size", "Disk:MaxFileBytes", "4294967296 (4 GiB)" },
        { "--report-interval", "Tracker:ReportInterval", "00:00:02" },
        { "--slots", "Compute:Slots", "the cores the peer really has (affinity and cgroup CPU quota)" },
        { "--quantum", "Compute:Quantum", "00:00:00.100" },
        { "--legacy-port", "Legacy:PeerPort", "off" },
        { "--tracker-legacy-port", "Legacy:TrackerPort", "off" },
        { "--legacy-bind", "Legacy:BindAddress", "0.0.0.0" },
        { "--resp-port", "Resp:Port", "off" },
        { "--resp-bind", "Resp:Address", "127.0.0.1" },
        { "--http-port", "Http:Port", "off" },
        { "--http-bind", "Http:BindAddress", "127.0.0.1" },
        { "--dashboard", "Http:Dashboard", "off" },
    };

    [Fact]
    public void The_peer_has_exactly_these_switches()
    {
        Assert.Equal(Switches.Select(row => (string)row[0]), PeerSwitches.All.Select(s => s.Name));
    }

    [Theory]
    [MemberData(nameof(Switches))]
    public void Help_lists_every_switch_with_its_setting_environment_variable_and_default(string name, string key, string defaultText)
    {
        var line = HelpLines().SingleOrDefault(l => l.TrimStart().StartsWith(name + " ", StringComparison.Ordinal));

        Assert.NotNull(line);
        Assert.Contains($"[{key}, P2PSHARE__{key.Replace(":", "__", StringComparison.Ordinal).ToUpperInvariant()}; default: {defaultText}]", line);
    }

    [Fact]
    public void Help_says_how_to_give_any_other_setting_and_exits_0()
    {
        var help = string.Join('\n', HelpLines());

        Assert.Contains("--Section:Key=value", help);
        Assert.Contains("P2PSHARE__SECTION__KEY", help);
        Assert.Contains("--Membership:ProbeTimeout=00:00:02", help);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("--name peer-1 --help")]
    [InlineData("--no-such-switch --help")]
    public void Help_wins_over_everything_else(string args)
    {
        Assert.True(PeerCommandLine.IsHelp(PeerCommandLine.Parse(args.Split(' '))));
    }

    [Theory]
    [MemberData(nameof(Switches))]
    public void Each_switch_sets_its_setting(string name, string key, string defaultText)
    {
        _ = defaultText;
        var declared = PeerSwitches.All.Single(s => s.Name == name);
        var value = declared.IsFlag ? null
            : declared.ValueType == typeof(TimeSpan) ? "00:00:01"
            : declared.ValueType == typeof(string) ? "some-value"
            : "1234";
        string[] args = value is null ? [name] : [name, value];

        var settings = PeerCommandLine.Settings(PeerCommandLine.Parse(args));

        Assert.Equal(new KeyValuePair<string, string?>(key, value ?? "true"), Assert.Single(settings));
    }

    [Theory]
    [InlineData("--dashboard --http-port 5000", "true")]
    [InlineData("--http-port 5000 --dashboard", "true")]
    [InlineData("--http-port 5000 --dashboard true", "true")]
    [InlineData("--http-port 5000 --dashboard false", "false")]
    public void The_dashboard_flag_stands_alone_or_takes_a_value(string args, string expected)
    {
        var settings = PeerCommandLine.Settings(PeerCommandLine.Parse(args.Split(' ')));

        Assert.Equal(expected, settings["Http:Dashboard"]);
        Assert.Equal("5000", settings["Http:Port"]);
    }

    [Fact]
    public void Any_setting_can_be_spelled_out_by_its_key()
    {
        var settings = PeerCommandLine.Settings(PeerCommandLine.Parse(
            ["--name", "peer-1", "--Membership:ProbeTimeout=00:00:02", "--Http:RecentJobs", "100", "/Compute:Slots=3", "Compute:MaxRetries=5"]));

        Assert.Equal("peer-1", settings["Peer:Name"]);
        Assert.Equal("00:00:02", settings["Membership:ProbeTimeout"]);
        Assert.Equal("100", settings["Http:RecentJobs"]);
        Assert.Equal("3", settings["Compute:Slots"]);
        Assert.Equal("5", settings["Compute:MaxRetries"]);
    }

    [Fact]
    public void A_switch_wins_over_its_spelled_out_key_and_over_appsettings()
    {
        var configuration = PeerHost.LoadConfiguration(["--silo-port", "12345", "--Peer:SiloPort=23456", "--Peer:GatewayPort=34567"]);

        Assert.Equal("12345", configuration["Peer:SiloPort"]);
        Assert.Equal("34567", configuration["Peer:GatewayPort"]); // appsettings.json says 30000
    }

    [Theory]
    [InlineData("--nmae peer-1", "unknown switch '--nmae' (see --help)")]
    [InlineData("--name peer-1 -x", "unknown switch '-x' (see --help)")]
    [InlineData("--name peer-1 extra", "unexpected argument 'extra' (see --help)")]
    [InlineData("--name peer-1 --Http:Port", "'--Http:Port' needs a value")]
    [InlineData("--name peer-1 --silo-port abc", "Failed to convert configuration value 'abc' at 'Peer:SiloPort' to type 'System.Int32'.")]
    [InlineData("--name peer-1 --report-interval soon", "Failed to convert configuration value 'soon' at 'Tracker:ReportInterval' to type 'System.TimeSpan'.")]
    public void A_mistake_is_one_line(string args, string expected)
    {
        var parse = PeerCommandLine.Parse(args.Split(' '));

        Assert.Equal(expected, PeerCommandLine.Problem(parse));
        Assert.Equal(expected, Assert.Throws<FormatException>(() => PeerHost.LoadConfiguration(args.Split(' '))).Message);
    }

    private static string[] HelpLines()
    {
        var parse = PeerCommandLine.Parse(["--help"]);
        // One line per switch, whatever the width of the terminal running the tests.
        ((HelpAction)parse.Action!).MaxWidth = int.MaxValue;
        using var output = new StringWriter();
        Assert.Equal(0, parse.Invoke(new InvocationConfiguration { Output = output }));
        return output.ToString().Split('\n');
    }
}
