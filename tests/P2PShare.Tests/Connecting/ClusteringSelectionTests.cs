using P2PShare.Connecting;

namespace P2PShare.Tests.Connecting;

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
        var choice = Clustering.Select(mode, db, gateway, envMode, envDb);
        Assert.Null(choice.Problem);
        Assert.Equal(expectedMode, choice.Mode);
        Assert.Equal(expectedDb, choice.ConnectionString);
    }

    [Theory]
    [InlineData("etcd", null, false, null, null, "invalid clustering mode 'etcd' from --clustering")]
    [InlineData(null, null, false, "etcd", null, "from P2PSHARE__CLUSTERING__MODE")]
    [InlineData("local", Db, false, null, null, "--db needs postgres clustering")]
    [InlineData("postgres", null, false, null, null, "postgres clustering needs --db CONNSTR")]
    [InlineData(null, Db, true, null, null, "--gateway is for local clustering")]
    [InlineData(null, "Nonsense=1", false, null, null, "invalid database connection string")]
    public void Contradictions_and_unknown_modes_are_problems_naming_the_setting(
        string? mode, string? db, bool gateway, string? envMode, string? envDb, string message)
    {
        var problem = Clustering.Select(mode, db, gateway, envMode, envDb).Problem;
        Assert.NotNull(problem);
        Assert.Contains(message, problem);
    }

    [Fact]
    public void Database_description_never_shows_the_password() =>
        Assert.Equal("db:5432/p2pshare", ClusterDatabase.Describe(Db));
}
