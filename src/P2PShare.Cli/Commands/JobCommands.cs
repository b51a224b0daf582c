using System.CommandLine;
using P2PShare.Compute;
using P2PShare.Peers;

namespace P2PShare.Cli.Commands;

/// <summary><c>p2pshare job get|wait|cancel|ls</c>.</summary>
public static class JobCommands
{
    public static Command Create(CommandRunner runner)
    {
        var command = new Command("job", "Inspect, wait for and cancel jobs");
        command.Subcommands.Add(Get(runner));
        command.Subcommands.Add(Wait(runner));
        command.Subcommands.Add(Cancel(runner));
        command.Subcommands.Add(List(runner));
        return command;
    }

    private static Argument<string> IdArgument() => new("ID") { Description = "Job id (PEER:ID)" };

    private static Command Get(CommandRunner runner)
    {
        var id = IdArgument();
        var command = new Command("get", "Show a job's status and result") { id };
        command.SetAction((parse, ct) => runner.RunAsync(parse, ct, async ctx =>
        {
            var job = await JobCalls.RunAsync(ctx, parse.GetValue(id)!, j => j.GetAsync()).ConfigureAwait(false);
            Show(ctx.Output, job);
        }));
        return command;
    }

    private static Command Wait(CommandRunner runner)
    {
        var id = IdArgument();
        var timeout = new Option<double?>("--timeout") { Description = "Give up after this many seconds (default: wait as long as it takes)", HelpName = "S" };
        CommonOptions.AddCheck(timeout, t => t is null or > 0, "--timeout must be positive");
        var command = new Command("wait", "Wait until a job finishes, then show it") { id, timeout };
        command.SetAction((parse, ct) => runner.RunAsync(parse, ct, async ctx =>
        {
            var seconds = parse.GetValue(timeout);
            var job = await RunCommand.WaitAsync(ctx, parse.GetValue(id)!, seconds is { } s ? TimeSpan.FromSeconds(s) : null).ConfigureAwait(false);
            Show(ctx.Output, job);
            if (!job.IsTerminal) throw new UsageException($"job {job.JobId} is still {job.Status.ToString().ToLowerInvariant()} after {seconds} s");
            if (job.Status != JobStatus.Succeeded) throw new JobFailedException(ExitCodes.TaskFailed);
        }));
        return command;
    }

    private static Command Cancel(CommandRunner runner)
    {
        var id = IdArgument();
        var command = new Command("cancel", "Remove a queued job or kill a running one") { id };
        command.SetAction((parse, ct) => runner.RunAsync(parse, ct, async ctx =>
        {
            var job = await JobCalls.RunAsync(ctx, parse.GetValue(id)!, j => j.CancelAsync()).ConfigureAwait(false);
            Show(ctx.Output, job);
        }));
        return command;
    }

    private static Command List(CommandRunner runner)
    {
        var peerOption = new Option<string?>("--peer") { Description = "Only this peer's jobs (default: every peer)", HelpName = "NAME" };
        var limit = new Option<int>("--limit") { Description = "Most jobs per peer", DefaultValueFactory = _ => 50 };
        CommonOptions.AddCheck(limit, l => l > 0, "--limit must be positive");
        var command = new Command("ls", "List recent jobs, per peer or cluster-wide") { peerOption, limit };
        command.Aliases.Add("list");
        command.SetAction((parse, ct) => runner.RunAsync(parse, ct, async ctx =>
        {
            IEnumerable<string> peers = parse.GetValue(peerOption) is { } one
                ? [one]
                : (await ctx.Cluster.Tracker.GetPeersAsync().ConfigureAwait(false)).Select(p => p.Name);
            var lists = await Task.WhenAll(peers.Select(p =>
                PeerCall.RunAsync(p, () => ctx.Cluster.Peer(p).ListJobsAsync(parse.GetValue(limit))))).ConfigureAwait(false);
            var jobs = lists.SelectMany(l => l.Jobs).OrderByDescending(j => j.SubmittedUtc).ToList();
            if (ctx.Output.Json)
            {
                ctx.Output.WriteJson(jobs.Select(JobView.From));
                return;
            }

            if (jobs.Count == 0)
            {
                ctx.Output.Line("No jobs.");
                return;
            }

            var table = Output.NewTable("Job", "Status", "Peer", "Origin", "Submitter", "Submitted", "Queue", "Run");
            foreach (var j in jobs)
            {
                Output.AddRow(table, j.JobId, j.Status.ToString(), j.ExecutedBy, j.Origin, j.Submitter,
                    Output.Timestamp(j.SubmittedUtc), JobRendering.Ms(j.QueueMs), JobRendering.Ms(j.RunMs));
            }

            ctx.Output.WriteTable(table);
        }));
        return command;
    }

    private static void Show(Output output, JobInfo job)
    {
        if (output.Json)
        {
            output.WriteJson(JobView.From(job));
            return;
        }

        var table = Output.NewTable(job.JobId, job.Status.ToString());
        Output.AddRow(table, "Peer", job.ExecutedBy);
        Output.AddRow(table, "Origin", job.Origin);
        Output.AddRow(table, "Submitter", job.Submitter);
        Output.AddRow(table, "Confidential", job.Confidential ? "yes" : "no");
        Output.AddRow(table, "Function", job.Function ?? "-");
        Output.AddRow(table, "Submitted", Output.Timestamp(job.SubmittedUtc));
        Output.AddRow(table, "Queue / run", $"{JobRendering.Ms(job.QueueMs)} / {JobRendering.Ms(job.RunMs)}");
        if (job.Status == JobStatus.Succeeded) Output.AddRow(table, "Result", job.ResultJson ?? "null");
        if (job.Error is not null) Output.AddRow(table, "Error", job.Error);
        if (job.Output.Length > 0) Output.AddRow(table, "Output", job.Output);
        if (job.Attempts.Length > 1 || job.Attempts.Any(a => a.Note is not null))
        {
            foreach (var a in job.Attempts)
                Output.AddRow(table, $"Attempt {a.Number}", $"{a.Peer}: {a.Status}{(a.Note is null ? "" : $" ({a.Note})")}");
        }

        output.WriteTable(table);
    }
}
