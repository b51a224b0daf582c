namespace P2PShare.Compute;

/// <summary>Where a task is in the scheduler. Only <see cref="Running"/> holds a slot and uses CPU.</summary>
public enum ScheduledTaskState
{
    /// <summary>Waiting in its submitter's queue; no worker yet.</summary>
    Queued = 0,
    /// <summary>Holds a slot while a worker is taken from the pool; its timeout does not run yet.</summary>
    Starting = 1,
    /// <summary>Holds a slot; its worker runs.</summary>
    Running = 2,
    /// <summary>Started, but its worker is stopped (SIGSTOP) until its next turn.</summary>
    Paused = 3,
    /// <summary><see cref="ScheduledTask.Completion"/> has its outcome.</summary>
    Finished = 4,
    /// <summary>
    /// Written to the worker of its submitter's running task, to start the moment that one is answered
    /// (no slot, no timeout yet); it becomes Running (or Paused, if that worker is stopped) then.
    /// </summary>
    SentAhead = 5,
}

/// <summary>How a scheduled task ended.</summary>
/// <param name="Status">Succeeded, Failed, TimedOut or Cancelled.</param>
/// <param name="QueueTime">From submission until the task got its first slot (or finished unstarted).</param>
/// <param name="RunTime">Time the task held a slot, paused time excluded: the measure its timeout applies to.</param>
public sealed record ScheduledOutcome(
    ExecutionResult Result,
    JobStatus Status,
    DateTime SubmittedUtc,
    DateTime? StartedUtc,
    DateTime FinishedUtc,
    TimeSpan QueueTime,
    TimeSpan RunTime);

/// <summary>
/// A handle on one submitted task. Its mutable fields belong to <see cref="ComputeScheduler"/> and
/// change only under its lock; the getters are safe to read from any thread.
/// </summary>
public sealed class ScheduledTask
{
    private readonly TaskCompletionSource<ScheduledOutcome> _completion =
        new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile ScheduledTaskState _state;
    private DateTime? _startedUtc;

    internal ScheduledTask(Guid id, string submitter, ExecutionRequest request, TimeSpan timeout, DateTime submittedUtc, TimeSpan submittedAt)
    {
        Id = id;
        Submitter = submitter;
        Request = request;
        Timeout = timeout;
        SubmittedUtc = submittedUtc;
        SubmittedAt = submittedAt;
    }

    public Guid Id { get; }
    public string Submitter { get; }
    public TimeSpan Timeout { get; }
    public DateTime SubmittedUtc { get; }

    public ScheduledTaskState State
    {
        get => _state;
        internal set => _state = value;
    }

    /// <summary>When the task's worker first started running it; null while queued or starting.</summary>
    public DateTime? StartedUtc
    {
        get { lock (_completion) return _startedUtc; }
        internal set { lock (_completion) _startedUtc = value; }
    }

    /// <summary>Completes (never faults) when the task ends, however it ends.</summary>
    public Task<ScheduledOutcome> Completion => _completion.Task;

    internal ExecutionRequest Request { get; }

    /// <summary>Scheduler clock (time since the scheduler started) at submission.</summary>
    internal TimeSpan SubmittedAt { get; }

    internal IWorker? Worker { get; set; }

    private volatile Task? _run;

    /// <summary>The worker's run, once handed over; set outside the lock, hence volatile.</summary>
    internal Task? Run
    {
        get => _run;
        set => _run = value;
    }

    /// <summary>Node in the submitter's queue while queued.</summary>
    internal LinkedListNode<ScheduledTask>? QueueNode { get; set; }

    /// <summary>Order of first start; a submitter's started tasks get their turns oldest first.</summary>
    internal long StartOrder { get; set; }

    /// <summary>Slot time accumulated in earlier run periods.</summary>
    internal TimeSpan SlotTimeBefore { get; set; }

    /// <summary>Scheduler clock when the current run period (start or resume) began.</summary>
    internal TimeSpan RunningSince { get; set; }

    /// <summary>Scheduler clock when the task last became ready to run (paused); orders its submitter's turns.</summary>
    internal TimeSpan ReadySince { get; set; }

    /// <summary>Scheduler clock at which the current time slice ends.</summary>
    internal TimeSpan SliceEnd { get; set; }

    /// <summary>Scheduler clock when the worker first ran the task.</summary>
    internal TimeSpan? FirstRunAt { get; set; }

    /// <summary>Why the scheduler killed the task's worker, if it did (TimedOut or Cancelled).</summary>
    internal TaskErrorKind KilledFor { get; set; }

    internal void Complete(ScheduledOutcome outcome) => _completion.TrySetResult(outcome);
}
