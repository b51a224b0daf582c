using System.CommandLine;

namespace P2PShare.Cli;

/// <summary>Options every command understands; declared once on the root and inherited.</summary>
public sealed class CommonOptions
{
    public Option<string[]> Gateway { get; } = new("--gateway")
    {
        Description = $"Cluster gateway HOST:PORT (repeatable; default ${Gateways.EnvironmentVariable} or {Gateways.Default})",
        HelpName = "HOST:PORT",
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

    public ConnectionSettings ReadSettings(ParseResult result) => new(
        Gateways.Select(result.GetValue(Gateway), Environment.GetEnvironmentVariable(Gateways.EnvironmentVariable)),
        NonEmpty(result.GetValue(Origin)) ?? NonEmpty(Environment.GetEnvironmentVariable(ConnectionSettings.OriginEnvironmentVariable)));

    private static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();
}
