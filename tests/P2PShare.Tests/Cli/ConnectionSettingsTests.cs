using System.CommandLine;
using P2PShare.Cli;

namespace P2PShare.Tests.Cli;

public sealed class ConnectionSettingsTests
{
    private const string Db = "Host=db;Database=p2pshare;Username=p2pshare;Password=x";

    [Theory]
    [InlineData(new[] { "--clustering", "etcd" }, "invalid clustering mode 'etcd' from --clustering: expected local or postgres")]
    [InlineData(new[] { "--clustering", "local", "--db", Db }, "--db needs postgres clustering; drop --clustering local or --db")]
    [InlineData(new[] { "--db", Db, "--gateway", "a:1" }, "--gateway is for local clustering; in postgres mode the CLI finds gateways in the cluster database")]
    [InlineData(new[] { "--db", "Nonsense=1" }, "invalid database connection string: Couldn't set nonsense (Parameter 'nonsense')")]
    [InlineData(new[] { "--clustering", "local", "--gateway", "::1:30000" }, "invalid gateway '::1:30000': expected host:port (port 1-65535)")]
    public void Bad_connection_options_are_usage_errors_on_one_line(string[] args, string message)
    {
        var common = new CommonOptions();
        var root = new RootCommand { common.Gateway, common.Mode, common.Database, common.Origin, common.Json };
        var error = Assert.Throws<UsageException>(() => common.ReadSettings(root.Parse(args)));
        Assert.Equal(message, error.Message);
    }

    [Fact]
    public void Database_description_never_shows_the_password() =>
        Assert.Equal("database db:5432/p2pshare", new ConnectionSettings([], null, Db).Describe());
}
