using Npgsql;

namespace P2PShare.Hosting;

/// <summary>
/// The PostgreSQL database of <c>postgres</c> clustering, checked before a silo starts: Orleans'
/// own failures there (an unreachable server, a missing table) surface as long exception chains
/// after retries; this says in one line what is wrong and how to fix it.
/// </summary>
public static class ClusterDatabase
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The statements the providers P2PShare uses load from the OrleansQuery table.</summary>
    public static readonly IReadOnlyList<string> RequiredQueryKeys =
    [
        "MembershipReadAllKey", "MembershipReadRowKey", "InsertMembershipKey", "UpdateMembershipKey",
        "InsertMembershipVersionKey", "UpdateIAmAlivetimeKey", "GatewaysQueryKey",
        "DeleteMembershipTableEntriesKey", "CleanupDefunctSiloEntriesKey",
        "WriteToStorageKey", "ReadFromStorageKey", "ClearStorageKey", "DeleteStorageKey",
        "UpsertReminderRowKey", "ReadReminderRowsKey", "ReadReminderRowKey", "ReadRangeRows1Key",
        "ReadRangeRows2Key", "DeleteReminderRowKey", "DeleteReminderRowsKey",
    ];

    private const string UndefinedTable = "42P01";

    /// <summary>Null when the database answers and holds the schema; otherwise what is wrong, on one line.</summary>
    public static async Task<string?> FindProblemAsync(string connectionString, TimeSpan timeout, CancellationToken cancellationToken)
    {
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException ex)
        {
            return $"invalid database connection string: {OneLine(ex)}";
        }

        var seconds = Math.Max(1, (int)Math.Ceiling(timeout.TotalSeconds));
        builder.Timeout = Math.Min(builder.Timeout, seconds);
        builder.CommandTimeout = seconds;
        // A one-off check must not leave a pooled connection behind in a long-lived process.
        builder.Pooling = false;
        var where = $"{builder.Host}:{builder.Port}/{builder.Database}";

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            await connection.OpenAsync(deadline.Token).ConfigureAwait(false);
            await using var command = new NpgsqlCommand("SELECT querykey FROM orleansquery WHERE querykey = ANY(@keys)", connection);
            command.Parameters.AddWithValue("keys", RequiredQueryKeys.ToArray());
            var present = new HashSet<string>(StringComparer.Ordinal);
            await using (var reader = await command.ExecuteReaderAsync(deadline.Token).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(deadline.Token).ConfigureAwait(false))
                {
                    present.Add(reader.GetString(0));
                }
            }

            var missing = RequiredQueryKeys.Where(k => !present.Contains(k)).ToList();
            return missing.Count == 0
                ? null
                : $"the database {where} has an incomplete P2PShare schema (missing {string.Join(", ", missing)}); apply deploy/postgres/schema.sql";
        }
        catch (PostgresException ex) when (ex.SqlState == UndefinedTable)
        {
            return $"the database {where} has no P2PShare schema; run deploy/postgres/setup.sh (or apply deploy/postgres/schema.sql)";
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return $"cannot reach the cluster database {where}: no answer within {seconds} s";
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException)
        {
            return $"cannot reach the cluster database {where}: {OneLine(Innermost(ex))}";
        }
    }

    private static Exception Innermost(Exception ex)
    {
        // PostgreSQL's own message ("password authentication failed ...") beats Npgsql's wrapper,
        // and a socket error beats "Failed to connect to ...".
        while (ex.InnerException is not null && ex is not PostgresException)
        {
            ex = ex.InnerException;
        }

        return ex;
    }

    private static string OneLine(Exception ex) => ex.Message.ReplaceLineEndings(" ").Trim();
}
