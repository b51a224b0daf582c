using System.CommandLine;
using System.CommandLine.Parsing;
using P2PShare.Cli.Commands;

namespace P2PShare.Cli;

/// <summary>The command tree. Built fresh per process: option objects are not shared state.</summary>
public static class CliApp
{
    public static RootCommand Build()
    {
        var runner = new CommandRunner(new CommonOptions());
        var root = new RootCommand("p2pshare: use the CPU, memory and disk of a P2PShare cluster's peers")
        {
            runner.Common.Gateway,
            runner.Common.Mode,
            runner.Common.Database,
            runner.Common.Origin,
            runner.Common.Json,
        };
        root.Subcommands.Add(PeersCommands.Create(runner));
        root.Subcommands.Add(StatusCommand.Create(runner));
        root.Subcommands.Add(WatchCommand.Create(runner));
        root.Subcommands.Add(MemCommands.Create(runner));
        root.Subcommands.Add(FileCommands.Create(runner));
        root.Subcommands.Add(RunCommand.Create(runner));
        root.Subcommands.Add(JobCommands.Create(runner));
        return root;
    }

    /// <summary>
    /// The error worth the user's one line. A mistyped subcommand yields both "required command was
    /// not provided" and "unrecognized 'x'"; the one naming the stray token says what to fix.
    /// </summary>
    public static ParseError MostSpecific(ParseResult parse)
    {
        var stray = parse.UnmatchedTokens.FirstOrDefault();
        return (stray is null ? null : parse.Errors.FirstOrDefault(e => e.Message.Contains($"'{stray}'", StringComparison.Ordinal)))
            ?? parse.Errors[0];
    }

    public static ParserConfiguration Parser() => new()
    {
        // `mem set KEY @FILE` means the file's bytes; System.CommandLine would read it as a response file.
        ResponseFileTokenReplacer = null,
    };

    public static InvocationConfiguration Invocation() => new()
    {
        // Program reports exceptions as one line; the default handler prints a stack trace.
        EnableDefaultExceptionHandler = false,
        // After Ctrl-C, give an interrupted upload time to abort its session on the peer.
        ProcessTerminationTimeout = TimeSpan.FromSeconds(8),
    };
}
