namespace P2PShare.Compute;

/// <summary>
/// What a job's supervisor logs, whichever of its parts (<see cref="JobGrain"/>, <see cref="JobRouter"/>,
/// <see cref="AttemptCalls"/>, <see cref="JobReminders"/>) notices it. They all log through the grain's
/// logger, so the category stays <c>P2PShare.Compute.JobGrain</c> for every line.
/// </summary>
internal static partial class JobLog
{
    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} attempt {Attempt} on {Peer} was lost: {Reason}")]
    public static partial void LogAttemptLost(ILogger logger, string jobId, int attempt, string peer, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} re-run as attempt {Attempt} on {Peer}")]
    public static partial void LogRetried(ILogger logger, string jobId, int attempt, string peer);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Job {JobId} ended {Status} after {Attempts} attempt(s)")]
    public static partial void LogEnded(ILogger logger, string jobId, JobStatus status, int attempts);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: peer {Peer} could not take it, trying another: {Reason}")]
    public static partial void LogSkipped(ILogger logger, string jobId, string peer, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: following attempt on {Peer} failed, retrying: {Reason}")]
    public static partial void LogPollFailed(ILogger logger, string jobId, string peer, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Job {JobId} expired: {Reason}")]
    public static partial void LogExpired(ILogger logger, string jobId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId}: reminder not updated: {Reason}")]
    public static partial void LogReminderFailed(ILogger logger, string jobId, string reason);
}
