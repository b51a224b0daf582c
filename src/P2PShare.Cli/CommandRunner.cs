using System.CommandLine;
using Spectre.Console;

namespace P2PShare.Cli;

/// <summary>What a command body needs: its arguments, the cluster, where to write, when to stop.</summary>
public sealed record CommandContext(ParseResult Parse, ClusterConnection Cluster, Output Output, CancellationToken Cancel)
{
    /// <summary>The peer named by <paramref name="peerOption"/>, or the origin peer.</summary>
    public Task<string> PeerAsync(Option<string> peerOption) =>
        Cluster.ResolvePeerAsync(Parse.GetValue(peerOption), Cancel);
}

/// <summary>Connects, runs a command body, disconnects. Failures propagate to Program, which reports them.</summary>
public sealed class CommandRunner(CommonOptions common)
{
    public CommonOptions Common { get; } = common;

    public bool IsJson(ParseResult parse) => parse.GetValue(Common.Json);

    public async Task<int> RunAsync(ParseResult parse, CancellationToken ct, Func<CommandContext, Task> body)
    {
        // Settings are read before connecting so a malformed --gateway is a usage error, not a network one.
        var settings = Common.ReadSettings(parse);
        var output = CreateOutput(IsJson(parse));
        await using var cluster = await ClusterConnection.ConnectAsync(settings, ct).ConfigureAwait(false);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct, cluster.ConnectionLost);
        try
        {
            // Grain calls take no token, so only racing them lets a lost connection end the command now.
            // Ctrl-C is not raced: the body sees it and must be allowed to abort its upload session.
            await body(new CommandContext(parse, cluster, output, stop.Token)).WaitAsync(cluster.ConnectionLost).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (cluster.ConnectionLost.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            throw new ClusterUnreachableException(cluster.GatewaysText, "the connection was lost", ex);
        }

        return ExitCodes.Success;
    }

    private static Output CreateOutput(bool json)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
        if (Console.IsOutputRedirected)
        {
            // Spectre assumes 80 columns when it cannot ask a terminal; wide rows would wrap in files.
            console.Profile.Width = 240;
        }

        return new Output(json, console, Console.Out, Console.Error);
    }
}
