using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using P2PShare.Status;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace P2PShare.Cli.Commands;

/// <summary>
/// <c>p2pshare watch</c>: the peers and recent jobs, refreshed in place on a terminal; on a pipe or
/// file, one snapshot per interval (with <c>--json</c>, one JSON document per line).
/// </summary>
public static class WatchCommand
{
    public static Command Create(CommandRunner runner)
    {
        var interval = new Option<double>("--interval")
        {
            Description = "Seconds between refreshes",
            HelpName = "S",
            DefaultValueFactory = _ => 1,
        };
        CommonOptions.AddCheck(interval, s => s is >= 0.1 and <= 3600, "--interval must be 0.1..3600 seconds");
        var count = new Option<int?>("--count") { Description = "Stop after N refreshes (default: until Ctrl-C)", HelpName = "N" };
        CommonOptions.AddCheck(count, n => n is null or > 0, "--count must be positive");
        var once = new Option<bool>("--once") { Description = "Show one snapshot and exit (--count 1)" };
        var jobs = new Option<int>("--jobs") { Description = "Recent jobs to show", HelpName = "N", DefaultValueFactory = _ => 10 };
        CommonOptions.AddCheck(jobs, n => n is >= 0 and <= 1000, "--jobs must be 0..1000");

        var command = new Command("watch", "Follow the cluster live: peers with their load and usage, and recent jobs (Ctrl-C exits)")
        {
            interval, count, once, jobs,
        };
        command.SetAction((parse, ct) => runner.RunAsync(parse, ct, ctx =>
        {
            var settings = new WatchSettings(
                TimeSpan.FromSeconds(parse.GetValue(interval)),
                parse.GetValue(once) ? 1 : parse.GetValue(count),
                parse.GetValue(jobs));
            return WatchAsync(ctx, settings);
        }));
        return command;
    }

    private sealed record WatchSettings(TimeSpan Interval, int? Count, int Jobs);

    private static async Task WatchAsync(CommandContext ctx, WatchSettings settings)
    {
        var reader = new ClusterStatusReader(ctx.Cluster.Client, TimeProvider.System);
        var live = !ctx.Output.Json && !Console.IsOutputRedirected && ctx.Output.Ansi.Profile.Capabilities.Ansi;
        try
        {
            if (live)
            {
                await ctx.Output.Ansi.Live(new Text("reading the cluster..."))
                    .AutoClear(false)
                    .Overflow(VerticalOverflow.Ellipsis)
                    .StartAsync(display => LoopAsync(ctx, reader, settings, frame =>
                    {
                        display.UpdateTarget(frame);
                        display.Refresh();
                    })).ConfigureAwait(false);
            }
            else
            {
                await LoopAsync(ctx, reader, settings, frame =>
                {
                    if (!ctx.Output.Json) ctx.Output.Ansi.Write(frame);
                }).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ctx.Cancel.IsCancellationRequested && !ctx.Cluster.ConnectionLost.IsCancellationRequested)
        {
            // Ctrl-C is how a watch normally ends.
        }
    }

    private static async Task LoopAsync(CommandContext ctx, ClusterStatusReader reader, WatchSettings settings, Action<IRenderable> show)
    {
        for (var shown = 0; settings.Count is null || shown < settings.Count; shown++)
        {
            if (shown > 0) await Task.Delay(settings.Interval, ctx.Cancel).ConfigureAwait(false);
            ClusterStatus? status = null;
            string? problem = null;
            try
            {
                status = await reader.ReadAsync(settings.Jobs, ctx.Cancel).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is TimeoutException || (ex is OrleansException && !ctx.Cluster.ConnectionLost.IsCancellationRequested))
            {
                // One slow answer is worth a line, not the end of the watch.
                problem = $"the tracker did not answer: {ErrorReporting.OneLine(ex)}";
            }

            if (ctx.Output.Json)
            {
                WriteJsonLine(status, problem);
            }
            else if (status is null)
            {
                ctx.Output.Error.WriteLine($"warning: {problem}");
                show(new Text($"{Output.Timestamp(DateTime.UtcNow)}  {problem}"));
            }
            else
            {
                show(Render(status, settings));
            }
        }
    }

    private static readonly JsonSerializerOptions JsonLines = new(JsonSerializerDefaults.Web);

    /// <summary>NDJSON: one complete document per line, so a reader can act on each as it arrives.</summary>
    private static void WriteJsonLine(ClusterStatus? status, string? problem)
    {
        Console.Out.WriteLine(status is not null
            ? JsonSerializer.Serialize(status, JsonLines)
            : JsonSerializer.Serialize(new { generatedUtc = DateTime.UtcNow, error = problem }, JsonLines));
        Console.Out.Flush();
    }

    private static IRenderable Render(ClusterStatus status, WatchSettings settings)
    {
        var header = string.Create(CultureInfo.InvariantCulture,
            $"P2PShare cluster at {Output.Timestamp(status.GeneratedUtc)}{(settings.Count is null ? $" (every {settings.Interval.TotalSeconds:0.#} s; Ctrl-C exits)" : "")}");
        var parts = new List<IRenderable>
        {
            new Text(header, new Style(decoration: Decoration.Bold)),
            new Text(StatusCommand.SummaryLine(status.Cluster)),
            status.Peers.Count == 0 ? new Text("The tracker knows no peers yet.") : PeersCommands.Table(status.Peers, status.GeneratedUtc),
        };
        if (settings.Jobs > 0) parts.Add(status.Jobs.Count == 0 ? new Text("No jobs yet.") : JobsTable(status.Jobs, status.GeneratedUtc));
        if (status.PeersWithoutJobs.Count > 0)
            parts.Add(new Text($"Jobs missing from: {string.Join(", ", status.PeersWithoutJobs)} (did not answer in time)"));
        parts.Add(Text.Empty);
        return new Rows(parts);
    }

    private static Table JobsTable(IReadOnlyList<JobRow> jobs, DateTime nowUtc)
    {
        var table = Output.NewTable("Job", "Status", "Peer", "Origin", "Submitted", "Queue", "Run", "Error");
        foreach (var j in jobs)
        {
            Output.AddRow(table,
                j.Attempt > 1 ? $"{j.JobId} #{j.Attempt}" : j.JobId,
                j.Status,
                j.ExecutedBy,
                j.Origin,
                Output.Age(j.SubmittedUtc, nowUtc),
                JobRendering.Ms(j.QueueMs),
                JobRendering.Ms(j.RunMs),
                j.Error ?? "");
        }

        return table;
    }
}
