using System.Net.Sockets;
using Npgsql;

namespace P2PShare.Connecting;

/// <summary>
/// The PostgreSQL database of <c>postgres</c> clustering, checked before Orleans uses it: Orleans'
/// own failures there (an unreachable server, a missing table) surface as long exception chains
/// after retries; this says in one line what is wrong and how to fix it. A peer checks every
/// statement its providers load before its silo starts; the CLI checks the membership statements
/// within its connect deadline.
/// </summary>
public static class ClusterDatabase
{
    /// <summary>How long a peer waits for the database before it gives up starting.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The statements the Orleans ADO.NET membership and gateway list providers load: all a client needs.</summary>
    public static readonly IReadOnlyList<string> MembershipQueryKeys =
    [
        "MembershipReadAllKey", "MembershipReadRowKey", "InsertMembershipKey", "UpdateMembershipKey",
        "InsertMembershipVersionKey", "UpdateIAmAlivetimeKey", "GatewaysQueryKey",
        "DeleteMembershipTableEntriesKey", "CleanupDefunctSiloEntriesKey",
    ];

    /// <summary>The statements the providers P2PShare uses load from the OrleansQuery table: membership, job storage, reminders.</summary>
    public static readonly IReadOnlyList<string> RequiredQueryKeys =
    [
        .. MembershipQueryKeys,
        "WriteToStorageKey", "ReadFromStorageKey", "ClearStorageKey", "DeleteStorageKey",
        "UpsertReminderRowKey", "ReadReminderRowsKey", "ReadReminderRowKey", "ReadRangeRows1Key",
        "ReadRangeRows2Key", "DeleteReminderRowKey", "DeleteReminderRowsKey",
    ];

    private const string UndefinedTable = "42P01";

    /// <summary>Why Npgsql refuses the connection string, or null when it reads it.</summary>
    public static ArgumentException? ConnectionStringError(string connectionString)
    {
        try
        {
            _ = new NpgsqlConnectionStringBuilder(connectionString);
            return null;
        }
        catch (ArgumentException ex)
        {
            return ex;
        }
    }

    /// <summary><c>host:port/database</c> of a connection string, for messages; never the password.</summary>
    /// <exception cref="ArgumentException">Npgsql cannot read the connection string.</exception>
    public static string Describe(string connectionString) => Describe(new NpgsqlConnectionStringBuilder(connectionString));

    /// <summary>
    /// The connection string with connect and command timeouts no longer than <paramref name="limit"/>,
    /// so that a database that stops answering cannot hold a client past its deadline.
    /// </summary>
    /// <exception cref="ArgumentException">Npgsql cannot read the connection string.</exception>
    public static string Bounded(string connectionString, TimeSpan limit)
    {
        var seconds = Math.Max(1, (int)limit.TotalSeconds);
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        builder.Timeout = Math.Min(builder.Timeout, seconds);
        builder.CommandTimeout = builder.CommandTimeout == 0 ? seconds : Math.Min(builder.CommandTimeout, seconds);
        return builder.ConnectionString;
    }

    /// <summary>A peer's check before its silo starts: every <see cref="RequiredQueryKeys"/>, within <paramref name="timeout"/>.</summary>
    public static Task<DatabaseProblem?> FindProblemAsync(string connectionString, TimeSpan timeout, CancellationToken cancellationToken) =>
        FindProblemAsync(connectionString, RequiredQueryKeys, timeout, cancellationToken);

    /// <summary>Null when the database answers and holds <paramref name="queryKeys"/>; otherwise what is wrong.</summary>
    /// <param name="timeout">
    /// Bounds the check: connect and command timeouts and a deadline. Null leaves both to the
    /// connection string (see <see cref="Bounded"/>) and <paramref name="cancellationToken"/>.
    /// </param>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public static async Task<DatabaseProblem?> FindProblemAsync(
        string connectionString, IReadOnlyList<string> queryKeys, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException ex)
        {
            return new DatabaseProblem(DatabaseProblemKind.InvalidConnectionString, "", $"invalid database connection string: {OneLine(ex)}", ex);
        }

        var seconds = timeout is { } limit ? Math.Max(1, (int)Math.Ceiling(limit.TotalSeconds)) : 0;
        if (timeout is not null)
        {
            builder.Timeout = Math.Min(builder.Timeout, seconds);
            builder.CommandTimeout = seconds;
        }

        // A one-off check must not leave a pooled connection behind in a long-lived process.
        builder.Pooling = false;
        var where = Describe(builder);

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (timeout is { } after)
        {
            deadline.CancelAfter(after);
        }

        try
        {
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            await connection.OpenAsync(deadline.Token).ConfigureAwait(false);
            await using var command = new NpgsqlCommand("SELECT querykey FROM orleansquery WHERE querykey = ANY(@keys)", connection);
            command.Parameters.AddWithValue("keys", queryKeys.ToArray());
            var present = new HashSet<string>(StringComparer.Ordinal);
            await using (var reader = await command.ExecuteReaderAsync(deadline.Token).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(deadline.Token).ConfigureAwait(false))
                {
                    present.Add(reader.GetString(0));
                }
            }

            var missing = queryKeys.Where(k => !present.Contains(k)).ToList();
            return missing.Count == 0
                ? null
                : new DatabaseProblem(DatabaseProblemKind.IncompleteSchema, where,
                    $"the database {where} has an incomplete P2PShare schema (missing {string.Join(", ", missing)}); apply deploy/postgres/schema.sql");
        }
        catch (PostgresException ex) when (ex.SqlState == UndefinedTable)
        {
            return new DatabaseProblem(DatabaseProblemKind.NoSchema, where,
                $"the database {where} has no P2PShare schema; run deploy/postgres/setup.sh (or apply deploy/postgres/schema.sql)", ex);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new DatabaseProblem(DatabaseProblemKind.NoAnswer, where,
                timeout is null ? $"cannot reach the cluster database {where}: no answer" : $"cannot reach the cluster database {where}: no answer within {seconds} s");
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or SocketException)
        {
            var cause = Innermost(ex);
            return new DatabaseProblem(DatabaseProblemKind.Unreachable, where, $"cannot reach the cluster database {where}: {OneLine(cause)}", cause);
        }
    }

    private static string Describe(NpgsqlConnectionStringBuilder builder) => $"{builder.Host}:{builder.Port}/{builder.Database}";

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
