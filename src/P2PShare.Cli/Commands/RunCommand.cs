using System.CommandLine;
using System.Text.Json;
using P2PShare.Compute;
using P2PShare.Peers;

namespace P2PShare.Cli.Commands;

/// <summary><c>p2pshare run</c>: submit a program, wait for it (unless --detach) and print the result.</summary>
public static class RunCommand
{
    private const int MaxInFlight = 64;

    /// <summary>The peers' own limit (Compute options), checked here too so a typo is a usage error.</summary>
    private const int MaxRetriesLimit = 10;

    /// <summary>--lang if given, else python for a .py file, else C#.</summary>
    internal static string LanguageOf(string? lang, string? file) =>
        lang is not null ? TaskLanguages.Normalize(lang)!
        : file is not null && file.EndsWith(".py", StringComparison.OrdinalIgnoreCase) ? TaskLanguages.Python
        : TaskLanguages.CSharp;

    public static Command Create(CommandRunner runner)
    {
        var file = new Argument<string?>("FILE") { Description = "Program file: C# script with top-level methods, or Python (.py)", Arity = ArgumentArity.ZeroOrOne };
        var code = new Option<string?>("--code") { Description = "Program text instead of FILE", HelpName = "TEXT" };
        var function = new Option<string?>("--function") { Description = "Function to call (default: main, or the only one)", HelpName = "F" };
        var args = new Option<string?>("--args") { Description = "Arguments as a JSON array, e.g. '[7]'", HelpName = "JSON" };
        var each = new Option<string?>("--each") { Description = "One task per argument array: '[[1],[2],...]'", HelpName = "JSON" };
        var confidential = new Option<bool>("--confidential") { Description = "Run only on the origin peer; never routed elsewhere" };
        var on = new Option<string?>("--on") { Description = "Run on this peer instead of the least-loaded one", HelpName = "PEER" };
        var timeout = new Option<double?>("--timeout") { Description = "Seconds before the task is killed (default: the peer's, 60)", HelpName = "S" };
        var detach = new Option<bool>("--detach") { Description = "Print the job id and return at once" };
        var retries = new Option<int?>("--max-retries") { Description = $"Re-runs on another peer if its peer dies (default: the origin's, 3; 0..{MaxRetriesLimit})", HelpName = "N" };
        var lang = new Option<string?>("--lang") { Description = "Language of the program: csharp (default) or python (default for a .py FILE)", HelpName = "LANG" };
        var submitter = new Option<string?>("--submitter") { Description = "Who is asking, for fair scheduling (default $P2PSHARE_SUBMITTER or user@host)", HelpName = "NAME" };
        CommonOptions.AddCheck(timeout, t => t is null or > 0, "--timeout must be positive");
        CommonOptions.AddCheck(lang, l => l is null || TaskLanguages.Normalize(l) is not null, $"--lang must be one of: {string.Join(", ", TaskLanguages.All)}");
        CommonOptions.AddCheck(retries, r => r is null or >= 0 and <= MaxRetriesLimit, $"--max-retries must be 0..{MaxRetriesLimit}");

        var command = new Command("run", "Run a C# or Python program on the least-loaded peer (or the origin, if confidential)")
        {
            file, code, lang, function, args, each, confidential, on, timeout, retries, detach, submitter,
        };
        command.SetAction((parse, ct) => runner.RunAsync(parse, ct, async ctx =>
        {
            var program = ReadProgram(parse.GetValue(file), parse.GetValue(code));
            var argSets = ReadArgSets(parse.GetValue(args), parse.GetValue(each));
            if (parse.GetValue(confidential) && parse.GetValue(on) is not null)
                throw new UsageException("--confidential runs on the origin peer; it cannot be combined with --on");
            var origin = await ctx.Cluster.ResolvePeerAsync(null, ctx.Cancel).ConfigureAwait(false);
            var who = Submitter(parse.GetValue(submitter));
            var seconds = parse.GetValue(timeout);
            var language = LanguageOf(parse.GetValue(lang), parse.GetValue(file));
            var specs = argSets.Select(a => new TaskSpec(program, parse.GetValue(function), a, parse.GetValue(confidential),
                seconds is { } s ? TimeSpan.FromSeconds(s) : null, who, parse.GetValue(on), parse.GetValue(retries), language)).ToList();

            if (parse.GetValue(detach))
            {
                // Detached jobs get a durable record and supervisor at once: they outlive this command.
                PrintDetached(ctx.Output, await SubmitAllAsync(ctx, origin, specs).ConfigureAwait(false), parse.GetValue(each) is not null);
                return;
            }

            // Attached: the fast path; a task still running after the peers' promotion threshold comes
            // back Queued/Running with a durable record, and is followed like a detached one.
            List<JobInfo> jobs;
            List<(int Index, string Error)> refused = [];
            if (parse.GetValue(each) is null) jobs = [await PeerCall.RunAsync(origin, () => ctx.Cluster.Peer(origin).RunAsync(specs[0])).ConfigureAwait(false)];
            else (jobs, refused) = await RunBatchAsync(ctx, origin, specs).ConfigureAwait(false);
            JobInfo[] finished;
            try
            {
                finished = await Task.WhenAll(jobs.Select(j => j.IsTerminal ? Task.FromResult(j) : WaitAsync(ctx, j.JobId, null))).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ctx.Cancel.IsCancellationRequested)
            {
                // Ctrl-C while waiting: the user no longer wants these results.
                await Task.WhenAll(jobs.Where(j => !j.IsTerminal).Select(j => CancelQuietlyAsync(ctx, j.JobId))).ConfigureAwait(false);
                throw;
            }

            foreach (var (index, error) in refused) ctx.Output.Error.WriteLine($"error: task {index + 1} of --each was not run: {error}");
            if (refused.Count > 0 && finished.Length == 0) throw new JobFailedException(ExitCodes.TaskFailed);
            var exit = PrintFinished(ctx.Output, finished, parse.GetValue(each) is not null);
            if (exit != ExitCodes.Success || refused.Count > 0) throw new JobFailedException(ExitCodes.TaskFailed);
        }));
        return command;
    }

    /// <summary>Polls in slices until the job is terminal or <paramref name="limit"/> passes.</summary>
    public static async Task<JobInfo> WaitAsync(CommandContext ctx, string jobId, TimeSpan? limit)
    {
        var deadline = limit is { } l ? DateTime.UtcNow + l : DateTime.MaxValue;
        while (true)
        {
            ctx.Cancel.ThrowIfCancellationRequested();
            var left = deadline - DateTime.UtcNow;
            var slice = left < CallLimits.WaitSlice ? (left < TimeSpan.Zero ? TimeSpan.Zero : left) : CallLimits.WaitSlice;
            var job = await JobCalls.RunAsync(ctx, jobId, j => j.WaitAsync(slice)).ConfigureAwait(false);
            if (job.IsTerminal || DateTime.UtcNow >= deadline) return job;
        }
    }

    /// <summary>
    /// All tasks in one call to the origin, which streams each back as it finishes; returned in the
    /// order of <paramref name="specs"/>, with the tasks no peer took (index, why) beside them.
    /// </summary>
    private static async Task<(List<JobInfo> Jobs, List<(int Index, string Error)> Refused)> RunBatchAsync(
        CommandContext ctx, string origin, List<TaskSpec> specs)
    {
        var results = new JobInfo?[specs.Count];
        var refused = new List<(int, string)>();
        await PeerCall.RunAsync(origin, async () =>
        {
            await foreach (var item in ctx.Cluster.Peer(origin).RunBatchAsync([.. specs]).WithCancellation(ctx.Cancel).ConfigureAwait(false))
            {
                if (item.Index < 0 || item.Index >= results.Length) continue;
                if (item.Job is { } job) results[item.Index] = job;
                else refused.Add((item.Index, item.Error ?? "refused"));
            }
        }).ConfigureAwait(false);
        return ([.. results.OfType<JobInfo>()], [.. refused.OrderBy(r => r.Item1)]);
    }

    private static async Task<List<JobInfo>> SubmitAllAsync(CommandContext ctx, string origin, List<TaskSpec> specs)
    {
        var grain = ctx.Cluster.Peer(origin);
        var results = new JobInfo[specs.Count];
        using var gate = new SemaphoreSlim(MaxInFlight);
        await Task.WhenAll(specs.Select(async (spec, i) =>
        {
            await gate.WaitAsync(ctx.Cancel).ConfigureAwait(false);
            try
            {
                results[i] = await PeerCall.RunAsync(origin, () => grain.SubmitAsync(spec)).ConfigureAwait(false);
            }
            finally
            {
                gate.Release();
            }
        })).ConfigureAwait(false);
        return [.. results];
    }

    private static async Task CancelQuietlyAsync(CommandContext ctx, string jobId)
    {
        try
        {
            await ctx.Cluster.Client.GetJob(jobId).CancelAsync().WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Best effort: the job may already be gone or its peer down.
        }
    }

    private static void PrintDetached(Output output, List<JobInfo> jobs, bool many)
    {
        if (output.Json)
        {
            if (many) output.WriteJson(jobs.Select(JobView.From));
            else output.WriteJson(JobView.From(jobs[0]));
            return;
        }

        foreach (var job in jobs) output.Line(job.JobId);
    }

    private static int PrintFinished(Output output, JobInfo[] jobs, bool many)
    {
        var exit = jobs.All(j => j.Status == JobStatus.Succeeded) ? ExitCodes.Success : ExitCodes.TaskFailed;
        if (output.Json)
        {
            if (many) output.WriteJson(jobs.Select(JobView.From));
            else output.WriteJson(JobView.From(jobs[0]));
            foreach (var job in jobs.Where(j => j.Status != JobStatus.Succeeded)) output.Error.WriteLine($"error: {JobRendering.ErrorLine(job)}");
            return exit;
        }

        if (!many)
        {
            var job = jobs[0];
            if (job.Output.Length > 0) Console.Out.Write(job.Output);
            if (job.Status == JobStatus.Succeeded) output.Line(job.ResultJson ?? "null");
            else output.Error.WriteLine($"error: {JobRendering.ErrorLine(job)}");
            return exit;
        }

        var table = Output.NewTable("Job", "Status", "Result / error", "Peer", "Run");
        foreach (var job in jobs)
        {
            Output.AddRow(table, job.JobId, job.Status.ToString(),
                job.Status == JobStatus.Succeeded ? job.ResultJson ?? "null" : JobRendering.FirstLine(job.Error ?? ""),
                job.ExecutedBy, JobRendering.Ms(job.RunMs));
        }

        output.WriteTable(table);
        foreach (var job in jobs.Where(j => j.Status != JobStatus.Succeeded)) output.Error.WriteLine($"error: {JobRendering.ErrorLine(job)}");
        return exit;
    }

    private static string ReadProgram(string? file, string? code)
    {
        if (file is not null && code is not null) throw new UsageException("give either FILE or --code, not both");
        if (code is not null) return code;
        if (file is null) throw new UsageException("give the program as FILE or --code TEXT");
        if (!File.Exists(file)) throw new UsageException($"no such local file '{file}'");
        return File.ReadAllText(file);
    }

    /// <summary>One JSON array per task: --args gives one, --each an array of them.</summary>
    public static List<string> ReadArgSets(string? args, string? each)
    {
        if (args is not null && each is not null) throw new UsageException("give either --args or --each, not both");
        if (each is null) return [NormalizeArray(args ?? "[]", "--args")];

        JsonElement root;
        try
        {
            using var doc = JsonDocument.Parse(each);
            root = doc.RootElement.Clone();
        }
        catch (JsonException ex)
        {
            throw new UsageException($"--each is not valid JSON: {ex.Message}");
        }

        if (root.ValueKind != JsonValueKind.Array || root.GetArrayLength() == 0)
            throw new UsageException("--each must be a non-empty JSON array of argument arrays, e.g. '[[1],[2]]'");
        return root.EnumerateArray().Select((e, i) => e.ValueKind == JsonValueKind.Array
            ? e.GetRawText()
            : throw new UsageException($"--each item {i} is not a JSON array of arguments")).ToList();
    }

    private static string NormalizeArray(string json, string option)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Array)
                throw new UsageException($"{option} must be a JSON array, e.g. '[7]'");
            return doc.RootElement.GetRawText();
        }
        catch (JsonException ex)
        {
            throw new UsageException($"{option} is not valid JSON: {ex.Message}");
        }
    }

    private static string Submitter(string? given)
    {
        var name = given ?? Environment.GetEnvironmentVariable("P2PSHARE_SUBMITTER");
        return string.IsNullOrWhiteSpace(name) ? $"{Environment.UserName}@{Environment.MachineName}" : name.Trim();
    }
}

/// <summary>The job ran but did not succeed; its error line was already printed.</summary>
public sealed class JobFailedException(int exitCode) : Exception("job failed")
{
    public int ExitCode { get; } = exitCode;
}
