namespace P2PShare.Connecting;

/// <summary>How a client finds the cluster: fixed gateways (<c>local</c>) or the cluster database (<c>postgres</c>).</summary>
public enum ClusteringMode
{
    Local,
    Postgres,
}

/// <summary>The clustering a client uses; or, when its settings contradict each other, only what is wrong.</summary>
/// <param name="ConnectionString">The cluster database's connection string in <c>postgres</c> mode, else null.</param>
/// <param name="Problem">One line naming the setting to fix; null when the choice is sound.</param>
public sealed record ClusteringChoice(ClusteringMode Mode, string? ConnectionString, string? Problem = null)
{
    internal static ClusteringChoice Invalid(string problem) => new(ClusteringMode.Local, null, problem);
}

/// <summary>
/// Picks the clustering mode from options and environment. The environment variables are the ones
/// peers read for section <c>Clustering</c>, so one environment file serves peers and CLI alike.
/// </summary>
public static class Clustering
{
    public const string ModeEnvironmentVariable = "P2PSHARE__CLUSTERING__MODE";
    public const string ConnectionStringEnvironmentVariable = "P2PSHARE__CLUSTERING__CONNECTIONSTRING";

    /// <summary>
    /// Options win over the environment. A connection string without a mode means <c>postgres</c>:
    /// <c>p2pshare --db CONNSTR peers</c> needs nothing else. An unknown mode, or options that
    /// contradict the mode, give a <see cref="ClusteringChoice.Problem"/>.
    /// </summary>
    public static ClusteringChoice Select(
        string? modeOption, string? databaseOption, bool gatewayOptionGiven, string? modeEnvironment, string? databaseEnvironment)
    {
        modeOption = NonEmpty(modeOption);
        databaseOption = NonEmpty(databaseOption);
        modeEnvironment = NonEmpty(modeEnvironment);
        databaseEnvironment = NonEmpty(databaseEnvironment);

        // The mode's text and where it came from, for the message when it is not a mode.
        var (modeText, source) = modeOption is not null ? (modeOption, "--clustering")
            : databaseOption is not null ? (ClusteringOptions.PostgresMode, "--db")
            : modeEnvironment is not null ? (modeEnvironment, ModeEnvironmentVariable)
            : databaseEnvironment is not null ? (ClusteringOptions.PostgresMode, ConnectionStringEnvironmentVariable)
            : (ClusteringOptions.LocalMode, "the default");
        if (ParseMode(modeText) is not { } mode)
        {
            return ClusteringChoice.Invalid(
                $"invalid clustering mode '{modeText}' from {source}: expected {ClusteringOptions.LocalMode} or {ClusteringOptions.PostgresMode}");
        }

        if (mode == ClusteringMode.Local)
        {
            return databaseOption is not null
                ? ClusteringChoice.Invalid("--db needs postgres clustering; drop --clustering local or --db")
                : new ClusteringChoice(mode, null);
        }

        if (gatewayOptionGiven)
        {
            return ClusteringChoice.Invalid("--gateway is for local clustering; in postgres mode the CLI finds gateways in the cluster database");
        }

        var connectionString = databaseOption ?? databaseEnvironment;
        if (connectionString is null)
        {
            return ClusteringChoice.Invalid($"postgres clustering needs --db CONNSTR (or {ConnectionStringEnvironmentVariable})");
        }

        return ClusterDatabase.ConnectionStringError(connectionString) is { } error
            ? ClusteringChoice.Invalid($"invalid database connection string: {FirstLine(error)}")
            : new ClusteringChoice(mode, connectionString);
    }

    private static ClusteringMode? ParseMode(string text) => text.Trim().ToLowerInvariant() switch
    {
        ClusteringOptions.LocalMode => ClusteringMode.Local,
        ClusteringOptions.PostgresMode => ClusteringMode.Postgres,
        _ => null,
    };

    /// <summary>The first non-empty line of the message, as the CLI shows every error.</summary>
    private static string FirstLine(Exception ex)
    {
        var line = ex.Message
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .FirstOrDefault();
        return string.IsNullOrEmpty(line) ? ex.GetType().Name : line;
    }

    private static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();
}
