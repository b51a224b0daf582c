using System.Collections.Immutable;

namespace P2PShare.Compute;

/// <summary>Where a job is in its life. Terminal: Succeeded, Failed, TimedOut, Cancelled.</summary>
public enum JobStatus
{
    Queued = 0,
    Running = 1,
    Succeeded = 2,
    Failed = 3,
    TimedOut = 4,
    Cancelled = 5,
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
}

/// <summary>What a user asks to run.</summary>
/// <param name="Program">C# in script syntax: top-level methods, e.g. <c>int main(int x) => x * x;</c>.</param>
/// <param name="Function">Method to call; null means <c>main</c>, or the only top-level method.</param>
/// <param name="ArgsJson">A JSON array of arguments, converted to the parameter types.</param>
/// <param name="Confidential">Runs only on the origin peer; the tracker is never asked.</param>
/// <param name="Timeout">Null means the peer's default (60 s), capped by its maximum.</param>
/// <param name="Submitter">Who asked; the scheduler is fair across submitters.</param>
/// <param name="PinnedPeer">Run on this peer instead of asking the tracker (<c>--on</c>).</param>
[GenerateSerializer, Immutable]
public sealed record TaskSpec(
    [property: Id(0)] string Program,
    [property: Id(1)] string? Function,
    [property: Id(2)] string ArgsJson,
    [property: Id(3)] bool Confidential,
    [property: Id(4)] TimeSpan? Timeout,
    [property: Id(5)] string Submitter,
    [property: Id(6)] string? PinnedPeer);

/// <summary>A job as its executing peer records it.</summary>
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
    public bool IsTerminal => Status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.TimedOut or JobStatus.Cancelled;
}

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
