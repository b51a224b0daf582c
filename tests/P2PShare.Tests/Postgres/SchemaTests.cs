using P2PShare.Connecting;

namespace P2PShare.Tests.Postgres;

public sealed class SchemaTests(TestDatabase db) : IClassFixture<TestDatabase>
{
    private const string CountObjects = """
        SELECT (SELECT count(*) FROM pg_tables WHERE schemaname = current_schema())
             + (SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema())
        """;

    [PostgresFact]
    public async Task Schema_applied_twice_is_harmless_and_restores_the_stored_queries()
    {
        var objects = await db.ScalarAsync<long>(CountObjects);
        var queries = await db.ScalarAsync<long>("SELECT count(*) FROM orleansquery");
        await TestDatabase.ExecuteAsync(db.ConnectionString, "INSERT INTO p2pshare_membership_version (cluster_id) VALUES ('kept')");
        await TestDatabase.ExecuteAsync(db.ConnectionString, "UPDATE orleansquery SET querytext = 'stale' WHERE querykey = 'GatewaysQueryKey'");

        await TestDatabase.ApplySchemaAsync(db.ConnectionString);

        Assert.Equal(objects, await db.ScalarAsync<long>(CountObjects));
        Assert.Equal(queries, await db.ScalarAsync<long>("SELECT count(*) FROM orleansquery"));
        Assert.Equal(1L, await db.ScalarAsync<long>("SELECT count(*) FROM p2pshare_membership_version WHERE cluster_id = 'kept'"));
        Assert.Contains("p2pshare_membership", await db.ScalarAsync<string>("SELECT querytext FROM orleansquery WHERE querykey = 'GatewaysQueryKey'"));
    }

    [PostgresFact]
    public async Task Schema_stores_every_query_the_providers_load()
    {
        var keys = (await db.RowsAsync("SELECT querykey FROM orleansquery")).Select(r => (string)r[0]!).ToHashSet();
        Assert.All(ClusterDatabase.RequiredQueryKeys, key => Assert.Contains(key, keys));
        Assert.Null(await ClusterDatabase.FindProblemAsync(db.ConnectionString, TimeSpan.FromSeconds(10), CancellationToken.None));
    }

    [PostgresFact]
    public async Task Start_check_names_a_missing_schema_and_an_unreachable_server()
    {
        var empty = new TestDatabase();
        await empty.InitializeAsync();
        try
        {
            await TestDatabase.ExecuteAsync(empty.ConnectionString, "DROP TABLE orleansquery");
            var missing = (await ClusterDatabase.FindProblemAsync(empty.ConnectionString, TimeSpan.FromSeconds(10), CancellationToken.None))?.Message;
            Assert.Contains("has no P2PShare schema", missing);
            Assert.DoesNotContain("Password", missing, StringComparison.OrdinalIgnoreCase);

            await TestDatabase.ExecuteAsync(empty.ConnectionString, "CREATE TABLE orleansquery (querykey text PRIMARY KEY, querytext text)");
            var incomplete = (await ClusterDatabase.FindProblemAsync(empty.ConnectionString, TimeSpan.FromSeconds(10), CancellationToken.None))?.Message;
            Assert.Contains("incomplete", incomplete);
        }
        finally
        {
            await empty.DisposeAsync();
        }

        var closed = new Npgsql.NpgsqlConnectionStringBuilder(db.ConnectionString) { Host = "127.0.0.1", Port = FreeTcpPorts.Pick(1)[0] };
        var unreachable = (await ClusterDatabase.FindProblemAsync(closed.ConnectionString, TimeSpan.FromSeconds(5), CancellationToken.None))?.Message;
        Assert.StartsWith("cannot reach the cluster database 127.0.0.1:", unreachable);
    }
}
