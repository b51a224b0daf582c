using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Parsing;
using Microsoft.Extensions.Configuration;

namespace P2PShare.Peer;

/// <summary>
/// The peer's command line, made from <see cref="PeerSwitches"/>: the switches, plus any setting as
/// <c>--Section:Key=value</c> or <c>--Section:Key value</c>. What it yields is a set of settings that
/// go over appsettings.json and the environment.
/// </summary>
internal static class PeerCommandLine
{
    public const string Description = """
        p2pshare-peer: runs one P2PShare peer (an Orleans silo sharing its CPU, memory and disk).

        Settings come from, in increasing priority: appsettings.json next to the executable, environment
        variables P2PSHARE__SECTION__KEY (e.g. P2PSHARE__PEER__NAME=peer-1), and this command line: the
        switches below, or any setting by its key, e.g. --Compute:MaxRetries=5. Failure detection is
        section Membership (Orleans ClusterMembershipOptions), e.g. --Membership:ProbeTimeout=00:00:02.
        """;

    private const string SettingsName = "--Section:Key=value";

    public static RootCommand Build()
    {
        var root = new RootCommand(Description);
        // The peer has no version switch; a stray --version is an unknown switch, not a silent no-op.
        root.Options.Remove(root.Options.OfType<VersionOption>().Single());
        foreach (var declared in PeerSwitches.All)
        {
            root.Options.Add(CreateOption(declared));
        }

        var settings = new Argument<string[]>(SettingsName)
        {
            Description = "any setting by its configuration key, e.g. --Membership:ProbeTimeout=00:00:02 or --Http:RecentJobs 100",
            Arity = ArgumentArity.ZeroOrMore,
        };
        settings.Validators.Add(result =>
        {
            if (ReadSettings([.. result.Tokens.Select(t => t.Value)], []) is { } problem)
            {
                result.AddError(problem);
            }
        });
        root.Arguments.Add(settings);
        return root;
    }

    public static ParseResult Parse(IReadOnlyList<string> args) =>
        Build().Parse(args, new ParserConfiguration
        {
            // "@file" is not a response file here; it is refused like any other stray word.
            ResponseFileTokenReplacer = null,
        });

    public static bool IsHelp(ParseResult parse) => parse.Action is HelpAction;

    /// <summary>The first problem with the command line, as one line; null when there is none.</summary>
    public static string? Problem(ParseResult parse) => parse.Errors.Count == 0 ? null : parse.Errors[0].Message;

    /// <summary>
    /// The settings the command line sets, by configuration key: <c>--Section:Key</c> ones first, then
    /// the switches, so a switch wins over a spelled-out key for the same setting.
    /// </summary>
    /// <exception cref="FormatException">The command line has a problem (see <see cref="Problem"/>).</exception>
    public static IReadOnlyDictionary<string, string?> Settings(ParseResult parse)
    {
        if (Problem(parse) is { } problem)
        {
            throw new FormatException(problem);
        }

        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        var root = parse.RootCommandResult;
        var spelledOut = root.GetResult(root.Command.Arguments.Single(a => a.Name == SettingsName));
        ReadSettings([.. spelledOut?.Tokens.Select(t => t.Value) ?? []], settings);
        foreach (var option in root.Command.Options)
        {
            // A flag has an implicit result (false) when absent; only what was typed goes over the
            // environment and appsettings.json.
            if (Declared(option) is not { } declared || root.GetResult(option) is not { Implicit: false } given)
            {
                continue;
            }

            settings[declared.Key] = declared.IsFlag
                ? (given.GetValueOrDefault<bool>() ? "true" : "false")
                : given.GetValueOrDefault<string>();
        }

        return settings;
    }

    private static Option CreateOption(PeerSwitch declared)
    {
        if (declared.IsFlag)
        {
            return new Option<bool>(declared.Name) { Description = declared.Description };
        }

        var option = new Option<string>(declared.Name) { Description = declared.Description, HelpName = declared.ValueName };
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count == 1 && ConversionProblem(declared, result.Tokens[0].Value) is { } problem)
            {
                result.AddError(problem);
            }
        });
        return option;
    }

    private static PeerSwitch? Declared(Option option) => PeerSwitches.All.FirstOrDefault(s => s.Name == option.Name);

    /// <summary>
    /// Converts the value the way the options will be bound, so a bad number or duration is refused
    /// now, in the binder's words, rather than when the silo starts.
    /// </summary>
    private static string? ConversionProblem(PeerSwitch declared, string value)
    {
        if (declared.ValueType == typeof(string))
        {
            return null;
        }

        try
        {
            new ConfigurationBuilder().AddInMemoryCollection([new(declared.Key, value)]).Build().GetValue(declared.ValueType, declared.Key);
            return null;
        }
        catch (InvalidOperationException ex)
        {
            return ex.Message;
        }
    }

    /// <summary>
    /// Reads settings spelled out by key as Microsoft's command-line configuration provider does:
    /// <c>--Key=value</c>, <c>--Key value</c>, <c>/Key=value</c>, <c>/Key value</c>, <c>Key=value</c>.
    /// Every key has a section (<c>Section:Key</c>); anything else is a mistyped switch.
    /// </summary>
    /// <returns>The first problem, or null when every token was read into <paramref name="settings"/>.</returns>
    private static string? ReadSettings(IReadOnlyList<string> tokens, Dictionary<string, string?> settings)
    {
        for (var i = 0; i < tokens.Count; i++)
        {
            var token = tokens[i];
            var prefix = token.StartsWith("--", StringComparison.Ordinal) ? 2 : token.StartsWith('/') ? 1 : 0;
            var body = token[prefix..];
            var equals = body.IndexOf('=', StringComparison.Ordinal);
            var key = equals < 0 ? body : body[..equals];
            if (!IsSettingKey(key) || (prefix == 0 && equals < 0))
            {
                return prefix > 0 || token.StartsWith('-') ? $"unknown switch '{token}' (see --help)" : $"unexpected argument '{token}' (see --help)";
            }

            if (equals >= 0)
            {
                settings[key] = body[(equals + 1)..];
            }
            else if (i + 1 < tokens.Count)
            {
                settings[key] = tokens[++i];
            }
            else
            {
                return $"'{token}' needs a value";
            }
        }

        return null;
    }

    private static bool IsSettingKey(string key) =>
        key.Contains(':', StringComparison.Ordinal) && !key.StartsWith(':') && !key.EndsWith(':') && !key.Any(char.IsWhiteSpace);
}
