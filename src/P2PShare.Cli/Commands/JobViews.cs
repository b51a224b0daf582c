using System.Globalization;
using System.Text.Json;
using P2PShare.Compute;

namespace P2PShare.Cli.Commands;

/// <summary>A job as <c>run --json</c> and <c>job ... --json</c> print it; the result is embedded as JSON.</summary>
public sealed record JobView(
    string JobId,
    string Status,
    JsonElement? Result,
    string? Error,
    string? ErrorKind,
    string ExecutedBy,
    string Origin,
    string Submitter,
    bool Confidential,
    string? Function,
    double QueueMs,
    double RunMs,
    string Output,
    bool CompileCached,
    DateTime SubmittedUtc,
    DateTime? StartedUtc,
    DateTime? FinishedUtc,
    int Attempt,
    IReadOnlyList<AttemptView> Attempts)
{
    public static JobView From(JobInfo j) => new(
        j.JobId, j.Status.ToString(), ParseResult(j.ResultJson), j.Error,
        j.ErrorKind == TaskErrorKind.None ? null : j.ErrorKind.ToString(),
        j.ExecutedBy, j.Origin, j.Submitter, j.Confidential, j.Function,
        Math.Round(j.QueueMs, 3), Math.Round(j.RunMs, 3), j.Output, j.CompileCached,
        j.SubmittedUtc, j.StartedUtc, j.FinishedUtc, j.Attempt,
        j.Attempts.Select(a => new AttemptView(a.Number, a.Peer, a.Status.ToString(), a.AssignedUtc, a.FinishedUtc, a.Note)).ToList());

    private static JsonElement? ParseResult(string? json)
    {
        if (json is null) return null;
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.Clone();
    }
}

/// <summary>One try at running a job, as <c>--json</c> prints it.</summary>
public sealed record AttemptView(int Number, string Peer, string Status, DateTime AssignedUtc, DateTime? FinishedUtc, string? Note);

public static class JobRendering
{
    /// <summary>Exit code of a finished job: 0 when it succeeded, 7 otherwise.</summary>
    public static int ExitCodeOf(JobInfo job) => job.Status == JobStatus.Succeeded ? ExitCodes.Success : ExitCodes.TaskFailed;

    /// <summary>The one line a failed job prints on stderr.</summary>
    public static string ErrorLine(JobInfo job)
    {
        if (job.Status == JobStatus.Succeeded) return "";
        var what = job.Status switch
        {
            JobStatus.TimedOut => "timed out",
            JobStatus.PeerLost => "lost its peer",
            _ => job.Status.ToString().ToLowerInvariant(),
        };
        if (string.IsNullOrEmpty(job.Error)) return $"job {job.JobId} {what}";
        var message = FirstLine(job.Error!);
        // Every message says its kind first (CompileError: ..., NotAllowed: ...), as users grep for them.
        var kind = job.ErrorKind.ToString();
        if (job.ErrorKind != TaskErrorKind.None && !message.StartsWith(kind + ":", StringComparison.Ordinal))
            message = $"{kind}: {message}";
        return $"job {job.JobId} {what}: {message}";
    }

    /// <summary>Compile errors list one diagnostic per line; the rest of the message stays in --json.</summary>
    public static string FirstLine(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length <= 1 ? text.Trim() : $"{lines[0]} (+{lines.Length - 1} more)";
    }

    public static string Ms(double ms) => ms < 1000
        ? string.Create(CultureInfo.InvariantCulture, $"{ms:0.#} ms")
        : string.Create(CultureInfo.InvariantCulture, $"{ms / 1000:0.##} s");
}
