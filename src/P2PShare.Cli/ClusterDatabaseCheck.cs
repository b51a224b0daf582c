using Npgsql;

namespace P2PShare.Cli;

/// <summary>
/// Asks the cluster database, before Orleans does, whether it answers and holds the clustering
/// schema. Orleans' own failure there is a chain of exceptions after its connect timeout; this
/// turns it into one line (exit 5) within the CLI's connect deadline.
/// </summary>
public static class ClusterDatabaseCheck
{
    /// <summary>What the Orleans ADO.NET gateway list provider loads at start; all must exist.</summary>
    private static readonly string[] ClusteringQueryKeys =
    [
        "MembershipReadAllKey", "MembershipReadRowKey", "InsertMembershipKey", "UpdateMembershipKey",
        "InsertMembershipVersionKey", "UpdateIAmAlivetimeKey", "GatewaysQueryKey",
        "DeleteMembershipTableEntriesKey", "CleanupDefunctSiloEntriesKey",
    ];

    private const string UndefinedTable = "42P01";

    /// <summary>
    /// The connection string the client should use: the user's, with connect and command timeouts
    /// no longer than <paramref name="limit"/>, so that a database that stops answering cannot
    /// hold the CLI past its deadline.
    /// </summary>
    public static string Bounded(string connectionString, TimeSpan limit)
    {
        var seconds = Math.Max(1, (int)limit.TotalSeconds);
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        builder.Timeout = Math.Min(builder.Timeout, seconds);
        builder.CommandTimeout = builder.CommandTimeout == 0 ? seconds : Math.Min(builder.CommandTimeout, seconds);
        return builder.ConnectionString;
    }

    /// <exception cref="ClusterUnreachableException">The database does not answer or has no schema.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> was cancelled (the caller's deadline).</exception>
    public static async Task EnsureReadyAsync(string connectionString, CancellationToken ct)
    {
        var where = Clustering.DescribeDatabase(connectionString);
        try
        {
            var builder = new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false };
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            await connection.OpenAsync(ct).ConfigureAwait(false);
            await using var command = new NpgsqlCommand("SELECT count(*) FROM orleansquery WHERE querykey = ANY(@keys)", connection);
            command.Parameters.AddWithValue("keys", ClusteringQueryKeys);
            var found = Convert.ToInt32(await command.ExecuteScalarAsync(ct).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
            if (found != ClusteringQueryKeys.Length)
            {
                throw new ClusterUnreachableException(where, "its P2PShare schema is incomplete; apply deploy/postgres/schema.sql");
            }
        }
        catch (PostgresException ex) when (ex.SqlState == UndefinedTable)
        {
            throw new ClusterUnreachableException(where, "it has no P2PShare schema; run deploy/postgres/setup.sh", ex);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException)
        {
            var cause = ex;
            while (cause.InnerException is not null && cause is not PostgresException)
            {
                cause = cause.InnerException;
            }

            throw new ClusterUnreachableException(where, ErrorReporting.OneLine(cause), ex);
        }
    }
}
