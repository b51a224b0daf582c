using Npgsql;

namespace P2PShare.Tests.Postgres;

/// <summary>
/// A test that needs the PostgreSQL server tests/run.sh starts. Without <c>P2PSHARE_TEST_PG</c> it
/// is reported as skipped, with the reason, instead of passing without having run.
/// </summary>
public sealed class PostgresFactAttribute : FactAttribute
{
    public PostgresFactAttribute()
    {
        if (TestDatabase.ServerConnectionString is null)
        {
            Skip = $"needs PostgreSQL: {TestDatabase.EnvironmentVariable} is not set (tests/run.sh starts a throwaway server with deploy/postgres/pg.sh and sets it)";
        }
    }
}

/// <summary>
/// A PostgreSQL schema of its own, in the test server's database, with deploy/postgres/schema.sql
/// applied; dropped afterwards. Connections made with <see cref="ConnectionString"/> (Search Path =
/// that schema) see only its tables, so test classes cannot see each other's clusters, grains or
/// reminders, and each may use the production cluster and service ids.
/// </summary>
public sealed class TestDatabase : IAsyncLifetime
{
    public const string EnvironmentVariable = "P2PSHARE_TEST_PG";

    public static string? ServerConnectionString =>
        Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } value ? value : null;

    public static string SchemaFile { get; } = Path.Combine(FindRepositoryRoot(), "deploy", "postgres", "schema.sql");

    public string SchemaName { get; } = "test_" + Guid.NewGuid().ToString("N")[..16];

    public string ConnectionString { get; private set; } = "";

    public async Task InitializeAsync()
    {
        if (ServerConnectionString is not { } server)
        {
            return; // every test using this is skipped
        }

        await ExecuteAsync(server, $"CREATE SCHEMA \"{SchemaName}\"");
        ConnectionString = new NpgsqlConnectionStringBuilder(server) { SearchPath = SchemaName }.ConnectionString;
        await ApplySchemaAsync(ConnectionString);
    }

    public async Task DisposeAsync()
    {
        if (ServerConnectionString is { } server)
        {
            // Pools still hold sessions of this schema's connection string; they hold no locks.
            NpgsqlConnection.ClearAllPools();
            await ExecuteAsync(server, $"DROP SCHEMA IF EXISTS \"{SchemaName}\" CASCADE");
        }
    }

    /// <summary>Runs schema.sql as one script, the way psql -f would.</summary>
    public static Task ApplySchemaAsync(string connectionString) =>
        ExecuteAsync(connectionString, File.ReadAllText(SchemaFile));

    public static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    public async Task<T?> ScalarAsync<T>(string sql)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        var value = await command.ExecuteScalarAsync();
        return value is null or DBNull ? default : (T)value;
    }

    public async Task<List<object?[]>> RowsAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<object?[]>();
        while (await reader.ReadAsync())
        {
            var row = new object?[reader.FieldCount];
            for (var i = 0; i < row.Length; i++)
            {
                row[i] = reader.IsDBNull(i) ? null : reader.GetValue(i);
            }

            rows.Add(row);
        }

        return rows;
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "P2PShare.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"P2PShare.sln not found above {AppContext.BaseDirectory}");
    }
}
