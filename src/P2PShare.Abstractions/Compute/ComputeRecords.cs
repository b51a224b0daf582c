using System.Collections.Immutable;

namespace P2PShare.Compute;

/// <summary>Where a job is in its life. Terminal: Succeeded, Failed, TimedOut, Cancelled, PeerLost.</summary>
public enum JobStatus
{
    Queued = 0,
    Running = 1,
    Succeeded = 2,
    Failed = 3,
    TimedOut = 4,
    Cancelled = 5,
    /// <summary>
    /// The peer running it died or was cut off, and it could not be run elsewhere: it is
    /// confidential (never leaves its origin) or used up its retries.
    /// </summary>
    PeerLost = 6,
}

/// <summary>Why a job failed, when it did. Shown to users as <c>Kind: message</c>.</summary>
public enum TaskErrorKind
{
    None = 0,
    /// <summary>The program does not compile; the message lists <c>(line,col): error CSxxxx: ...</c>.</summary>
    CompileError = 1,
    /// <summary>The program uses an API the sandbox forbids; the message names it.</summary>
    NotAllowed = 2,
    /// <summary>Function not found, wrong argument count or types, bad args JSON.</summary>
    InvalidArguments = 3,
    /// <summary>The program threw; the message is the exception type and text.</summary>
    Exception = 4,
    /// <summary>Ran past its timeout and was killed.</summary>
    TimedOut = 5,
    /// <summary>Exceeded the worker's heap cap.</summary>
    OutOfMemory = 6,
    /// <summary>The worker process died (stack overflow, Environment.Exit, FailFast, crash).</summary>
    Crashed = 7,
    /// <summary>The result is larger than the cap.</summary>
    ResultTooLarge = 8,
    /// <summary>Cancelled by a user.</summary>
    Cancelled = 9,
    /// <summary>No peer could take the task.</summary>
    Unschedulable = 10,
    /// <summary>The executing peer died or was cut off and the task could not be re-run elsewhere.</summary>
    PeerLost = 11,
}

/// <summary>What a user asks to run.</summary>
/// <param name="Program">C# in script syntax: top-level methods, e.g. <c>int main(int x) => x * x;</c>.</param>
/// <param name="Function">Method to call; null means <c>main</c>, or the only top-level method.</param>
/// <param name="ArgsJson">A JSON array of arguments, converted to the parameter types.</param>
/// <param name="Confidential">Runs only on the origin peer; the tracker is never asked.</param>
/// <param name="Timeout">Null means the peer's default (60 s), capped by its maximum.</param>
/// <param name="Submitter">Who asked; the scheduler is fair across submitters.</param>
/// <param name="PinnedPeer">Run on this peer instead of asking the tracker (<c>--on</c>).</param>
/// <param name="MaxRetries">
/// How many times a non-confidential task is re-run on another peer when its peer dies or is cut
/// off before it finishes; null means the origin peer's default (3). A task that fails by itself
/// (exception, timeout, compile error) is never retried.
/// </param>
/// <param name="Language">
/// What <see cref="Program"/> is written in: <see cref="TaskLanguages.CSharp"/> (default) or
/// <see cref="TaskLanguages.Python"/>. Routed only to peers that advertise that runtime.
/// </param>
[GenerateSerializer, Immutable]
public sealed record TaskSpec(
    [property: Id(0)] string Program,
    [property: Id(1)] string? Function,
    [property: Id(2)] string ArgsJson,
    [property: Id(3)] bool Confidential,
    [property: Id(4)] TimeSpan? Timeout,
    [property: Id(5)] string Submitter,
    [property: Id(6)] string? PinnedPeer,
    [property: Id(7)] int? MaxRetries = null,
    [property: Id(8)] string Language = TaskLanguages.CSharp);

/// <summary>The languages tasks can be written in; also the runtime names peers advertise.</summary>
public static class TaskLanguages
{
    public const string CSharp = "csharp";
    public const string Python = "python";

    public static readonly IReadOnlyList<string> All = [CSharp, Python];

    /// <summary>The canonical name of a language, or null when it is not one we know.</summary>
    public static string? Normalize(string? language) => language?.Trim().ToLowerInvariant() switch
    {
        null or "" or "csharp" or "c#" or "cs" => CSharp,
        "python" or "python3" or "py" => Python,
        _ => null,
    };
}

/// <summary>
/// A job: its current (or final) attempt's record plus the history of attempts. The same type
/// describes one attempt as the executing peer records it; then <see cref="Attempts"/> is empty.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record JobInfo(
    [property: Id(0)] string JobId,
    [property: Id(1)] JobStatus Status,
    [property: Id(2)] string Origin,
    [property: Id(3)] string ExecutedBy,
    [property: Id(4)] string Submitter,
    [property: Id(5)] bool Confidential,
    [property: Id(6)] string? Function,
    [property: Id(7)] DateTime SubmittedUtc,
    [property: Id(8)] DateTime? StartedUtc,
    [property: Id(9)] DateTime? FinishedUtc,
    [property: Id(10)] double QueueMs,
    [property: Id(11)] double RunMs,
    [property: Id(12)] string? ResultJson,
    [property: Id(13)] TaskErrorKind ErrorKind,
    [property: Id(14)] string? Error,
    [property: Id(15)] string Output,
    [property: Id(16)] bool CompileCached)
{
    /// <summary>1-based number of the attempt this record describes.</summary>
    [Id(17)]
    public int Attempt { get; init; } = 1;

    /// <summary>Every attempt so far, oldest first (kept by the job's supervisor).</summary>
    [Id(18)]
    public ImmutableArray<JobAttempt> Attempts { get; init; } = [];

    public bool IsTerminal => Status.IsTerminal();
}

public static class JobStatusExtensions
{
    public static bool IsTerminal(this JobStatus status) =>
        status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.TimedOut or JobStatus.Cancelled or JobStatus.PeerLost;
}

/// <summary>One try at running a job on one peer.</summary>
/// <param name="Status">The attempt's last known status; <see cref="JobStatus.PeerLost"/> when its peer died or was cut off.</param>
/// <param name="Note">Why the attempt ended as it did when that is not the task's own result, e.g. "peer-2 died".</param>
[GenerateSerializer, Immutable]
public sealed record JobAttempt(
    [property: Id(0)] int Number,
    [property: Id(1)] string Peer,
    [property: Id(2)] JobStatus Status,
    [property: Id(3)] DateTime AssignedUtc,
    [property: Id(4)] DateTime? FinishedUtc,
    [property: Id(5)] string? Note);

/// <summary>What the supervisor of a job sends a peer to execute one attempt.</summary>
[GenerateSerializer, Immutable]
public sealed record JobAssignment(
    [property: Id(0)] string JobId,
    [property: Id(1)] int Attempt,
    [property: Id(2)] string Origin,
    [property: Id(3)] TaskSpec Spec);

[GenerateSerializer, Immutable]
public sealed record JobListing(
    [property: Id(0)] ImmutableArray<JobInfo> Jobs);

/// <summary>A peer's CPU sharing state, part of its load report.</summary>
[GenerateSerializer, Immutable]
public sealed record SchedulerLoad(
    [property: Id(0)] int Slots,
    [property: Id(1)] int Running,
    [property: Id(2)] int Queued,
    [property: Id(3)] long TasksAccepted);

/// <summary>How an attempt sent on the fast path came back (<c>IPeerGrain.RunAttemptAsync</c>).</summary>
public enum AttemptOutcome
{
    /// <summary>It ended (well or not) within the promotion threshold; <see cref="AttemptReply.Job"/> is final.</summary>
    Finished = 0,
    /// <summary>Still queued or running at the threshold: the origin hands it to a durable supervisor.</summary>
    Running = 1,
    /// <summary>The peer did not take it (stopping, workers broken, no such runtime); nothing runs there.</summary>
    Refused = 2,
}

/// <summary>
/// The executing peer's answer to one fast-path attempt. A refusal is a value, not an exception:
/// the origin simply tries the next peer.
/// </summary>
/// <param name="Job">The attempt's record (final when Finished); null when Refused.</param>
/// <param name="Refusal">Why the peer refused; null otherwise.</param>
/// <param name="Permanent">Refused because the peer can never run it (e.g. no such runtime), not because of its state now.</param>
[GenerateSerializer, Immutable]
public sealed record AttemptReply(
    [property: Id(0)] AttemptOutcome Outcome,
    [property: Id(1)] JobInfo? Job,
    [property: Id(2)] string? Refusal,
    [property: Id(3)] bool Permanent = false)
{
    public static AttemptReply Ended(JobInfo job) => new(job.IsTerminal ? AttemptOutcome.Finished : AttemptOutcome.Running, job, null);

    public static AttemptReply Refused(string reason, bool permanent) => new(AttemptOutcome.Refused, null, reason, permanent);
}

/// <summary>
/// One task of a batch (<c>IPeerGrain.RunBatchAsync</c>) as it finished: the index of its spec in
/// the batch and its job, or why it could not be run at all (no job then).
/// </summary>
/// <param name="Job">Terminal, or Queued/Running when it outlived the promotion threshold: follow it with <c>IJobGrain</c>.</param>
[GenerateSerializer, Immutable]
public sealed record BatchItem(
    [property: Id(0)] int Index,
    [property: Id(1)] JobInfo? Job,
    [property: Id(2)] string? Error);

/// <summary>What the origin hands a job's grain when a fast-path task outlives the promotion threshold.</summary>
/// <param name="Spec">The whole task (a confidential one's program stays on the origin, where the grain is placed).</param>
/// <param name="Attempts">Every attempt so far, the last one still running on its peer.</param>
/// <param name="Current">The running attempt's record as its peer last answered.</param>
[GenerateSerializer, Immutable]
public sealed record JobAdoption(
    [property: Id(0)] string Origin,
    [property: Id(1)] TaskSpec Spec,
    [property: Id(2)] ImmutableArray<JobAttempt> Attempts,
    [property: Id(3)] JobInfo Current,
    [property: Id(4)] DateTime SubmittedUtc);
