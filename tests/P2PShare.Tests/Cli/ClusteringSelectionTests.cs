using P2PShare.Cli;

namespace P2PShare.Tests.Cli;

public sealed class ClusteringSelectionTests
{
    private const string Db = "Host=db;Database=p2pshare;Username=p2pshare;Password=x";

    [Theory]
    // option mode, option db, --gateway given, env mode, env db => expected mode, expected db
    [InlineData(null, null, false, null, null, ClusteringMode.Local, null)]
    [InlineData(null, null, true, null, null, ClusteringMode.Local, null)]
    [InlineData(null, Db, false, null, null, ClusteringMode.Postgres, Db)]
    [InlineData("postgres", Db, false, null, null, ClusteringMode.Postgres, Db)]
    [InlineData(null, null, false, "postgres", Db, ClusteringMode.Postgres, Db)]
    [InlineData(null, null, false, null, Db, ClusteringMode.Postgres, Db)]
    [InlineData(null, null, false, "local", Db, ClusteringMode.Local, null)]
    [InlineData("local", null, true, "postgres", Db, ClusteringMode.Local, null)]
    [InlineData(null, Db, false, "local", null, ClusteringMode.Postgres, Db)]
    [InlineData(null, "Host=other", false, "postgres", Db, ClusteringMode.Postgres, "Host=other")]
    public void Options_win_over_the_peers_environment_and_a_database_means_postgres(
        string? mode, string? db, bool gateway, string? envMode, string? envDb, ClusteringMode expectedMode, string? expectedDb)
    {
        var (actualMode, actualDb) = Clustering.Select(mode, db, gateway, envMode, envDb);
        Assert.Equal(expectedMode, actualMode);
        Assert.Equal(expectedDb, actualDb);
    }

    [Theory]
    [InlineData("etcd", null, false, null, null, "invalid clustering mode 'etcd' from --clustering")]
    [InlineData(null, null, false, "etcd", null, "from P2PSHARE__CLUSTERING__MODE")]
    [InlineData("local", Db, false, null, null, "--db needs postgres clustering")]
    [InlineData("postgres", null, false, null, null, "postgres clustering needs --db CONNSTR")]
    [InlineData(null, Db, true, null, null, "--gateway is for local clustering")]
    [InlineData(null, "Nonsense=1", false, null, null, "invalid database connection string")]
    public void Contradictions_and_unknown_modes_are_usage_errors(
        string? mode, string? db, bool gateway, string? envMode, string? envDb, string message)
    {
        var error = Assert.Throws<UsageException>(() => Clustering.Select(mode, db, gateway, envMode, envDb));
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void Database_description_never_shows_the_password() =>
        Assert.Equal("database db:5432/p2pshare", Clustering.DescribeDatabase(Db));
}
