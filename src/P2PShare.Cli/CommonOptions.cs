using System.CommandLine;
using P2PShare.Connecting;

namespace P2PShare.Cli;

/// <summary>Options every command understands; declared once on the root and inherited.</summary>
public sealed class CommonOptions
{
    public Option<string[]> Gateway { get; } = new("--gateway")
    {
        Description = $"Cluster gateway HOST:PORT, local clustering (repeatable; default ${Gateways.EnvironmentVariable} or {Gateways.Default})",
        HelpName = "HOST:PORT",
        Recursive = true,
    };

    public Option<string> Mode { get; } = new("--clustering")
    {
        Description = $"How to find the cluster: local (fixed --gateway list) or postgres (gateways from the cluster database; default ${Clustering.ModeEnvironmentVariable}, else postgres when a database is given, else local)",
        HelpName = "local|postgres",
        Recursive = true,
    };

    public Option<string> Database { get; } = new("--db")
    {
        Description = $"Npgsql connection string of the cluster database; implies --clustering postgres (default ${Clustering.ConnectionStringEnvironmentVariable})",
        HelpName = "CONNSTR",
        Recursive = true,
    };

    public Option<string> Origin { get; } = new("--origin")
    {
        Description = $"The peer you submit from, the default for --peer (default ${ConnectionSettings.OriginEnvironmentVariable}, else the peer serving the first gateway)",
        HelpName = "NAME",
        Recursive = true,
    };

    public Option<bool> Json { get; } = new("--json")
    {
        Description = "Print one JSON document on stdout instead of tables",
        Recursive = true,
    };

    /// <summary>A fresh instance per command group, so <c>peers</c> (which spans all peers) does not offer it.</summary>
    public static Option<string> NewPeerOption() => new("--peer")
    {
        Description = "The peer to act on (default: the origin peer)",
        HelpName = "NAME",
        Recursive = true,
    };

    /// <summary>
    /// Adds a range check. Reading a value the parser could not convert throws, and the parser
    /// already reports that error itself, so such values are left alone here.
    /// </summary>
    public static void AddCheck<T>(Option<T> option, Func<T?, bool> valid, string message) =>
        option.Validators.Add(result =>
        {
            T? value;
            try
            {
                value = result.GetValueOrDefault<T>();
            }
            catch (InvalidOperationException)
            {
                return;
            }

            if (!valid(value))
            {
                result.AddError(message);
            }
        });

    /// <exception cref="UsageException">A malformed gateway, an unknown mode, or options that contradict each other.</exception>
    public ConnectionSettings ReadSettings(ParseResult result)
    {
        var gatewayOptions = result.GetValue(Gateway) ?? [];
        var clustering = Clustering.Select(
            result.GetValue(Mode),
            result.GetValue(Database),
            gatewayOptions.Any(g => !string.IsNullOrWhiteSpace(g)),
            Environment.GetEnvironmentVariable(Clustering.ModeEnvironmentVariable),
            Environment.GetEnvironmentVariable(Clustering.ConnectionStringEnvironmentVariable));
        if (clustering.Problem is { } problem)
        {
            throw new UsageException(problem);
        }

        var origin = NonEmpty(result.GetValue(Origin)) ?? NonEmpty(Environment.GetEnvironmentVariable(ConnectionSettings.OriginEnvironmentVariable));
        return clustering.Mode == ClusteringMode.Postgres
            ? new ConnectionSettings([], origin, clustering.ConnectionString)
            : new ConnectionSettings(Gateways.Select(gatewayOptions, Environment.GetEnvironmentVariable(Gateways.EnvironmentVariable)), origin);
    }

    private static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();
}
