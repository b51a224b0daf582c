using Npgsql;

namespace P2PShare.Cli;

/// <summary>How the CLI finds the cluster: fixed gateways (<c>local</c>) or the cluster database (<c>postgres</c>).</summary>
public enum ClusteringMode
{
    Local,
    Postgres,
}

/// <summary>
/// Picks the clustering mode from options and environment. The environment variables are the ones
/// peers read for section <c>Clustering</c>, so one environment file serves peers and CLI alike.
/// </summary>
public static class Clustering
{
    public const string ModeEnvironmentVariable = "P2PSHARE__CLUSTERING__MODE";
    public const string ConnectionStringEnvironmentVariable = "P2PSHARE__CLUSTERING__CONNECTIONSTRING";
    public const string LocalName = "local";
    public const string PostgresName = "postgres";

    /// <summary>
    /// Options win over the environment. A connection string without a mode means <c>postgres</c>:
    /// <c>p2pshare --db CONNSTR peers</c> needs nothing else.
    /// </summary>
    /// <exception cref="UsageException">Unknown mode, or options that contradict the mode.</exception>
    public static (ClusteringMode Mode, string? ConnectionString) Select(
        string? modeOption, string? databaseOption, bool gatewayOptionGiven, string? modeEnvironment, string? databaseEnvironment)
    {
        modeOption = NonEmpty(modeOption);
        databaseOption = NonEmpty(databaseOption);
        modeEnvironment = NonEmpty(modeEnvironment);
        databaseEnvironment = NonEmpty(databaseEnvironment);

        var mode = modeOption is not null ? ParseMode(modeOption, "--clustering")
            : databaseOption is not null ? ClusteringMode.Postgres
            : modeEnvironment is not null ? ParseMode(modeEnvironment, ModeEnvironmentVariable)
            : databaseEnvironment is not null ? ClusteringMode.Postgres
            : ClusteringMode.Local;

        if (mode == ClusteringMode.Local)
        {
            if (databaseOption is not null)
            {
                throw new UsageException("--db needs postgres clustering; drop --clustering local or --db");
            }

            return (mode, null);
        }

        if (gatewayOptionGiven)
        {
            throw new UsageException("--gateway is for local clustering; in postgres mode the CLI finds gateways in the cluster database");
        }

        var connectionString = databaseOption ?? databaseEnvironment
            ?? throw new UsageException($"postgres clustering needs --db CONNSTR (or {ConnectionStringEnvironmentVariable})");
        try
        {
            _ = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException ex)
        {
            throw new UsageException($"invalid database connection string: {ErrorReporting.OneLine(ex)}");
        }

        return (mode, connectionString);
    }

    /// <summary><c>host:port/database</c> of a connection string, for messages; never the password.</summary>
    public static string DescribeDatabase(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        return $"database {builder.Host}:{builder.Port}/{builder.Database}";
    }

    private static ClusteringMode ParseMode(string text, string source) => text.Trim().ToLowerInvariant() switch
    {
        LocalName => ClusteringMode.Local,
        PostgresName => ClusteringMode.Postgres,
        _ => throw new UsageException($"invalid clustering mode '{text}' from {source}: expected {LocalName} or {PostgresName}"),
    };

    private static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();
}
