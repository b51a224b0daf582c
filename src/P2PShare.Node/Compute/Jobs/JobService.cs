using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using P2PShare.Peers;

namespace P2PShare.Compute;

/// <summary>
/// Runs the tasks routed to this peer: validates them, compiles them (once per distinct program),
/// hands them to the scheduler and keeps their job records. All CPU work happens off the Orleans
/// scheduler: compilation in compiler processes, execution in worker processes.
/// </summary>
public sealed partial class JobService(
    JobStore jobs,
    ProgramCompiler compiler,
    ComputeScheduler scheduler,
    PeerIdentity identity,
    IOptions<ComputeOptions> options,
    TimeProvider time,
    ILogger<JobService> logger)
{
    private readonly ComputeOptions _options = options.Value;

    /// <summary>
    /// Registers one attempt of a job and starts it; returns its record at once (Queued). The same
    /// attempt sent twice (a supervisor retrying a call whose answer it lost) is accepted once.
    /// </summary>
    public JobInfo Accept(JobAssignment assignment)
    {
        if (TryAccept(assignment, out var record) is { } refused)
        {
            // Workers that fail to start now may start again (the pool retries): busy, not wrong.
            if (refused.Permanent) throw new InvalidArgumentException($"peer '{identity.Name}' {refused.Reason}");
            throw new PeerUnavailableException(identity.Name, refused.Reason);
        }

        return record!.Snapshot();
    }

    /// <summary>
    /// Runs one attempt sent on the fast path: answers when it ends, or after <paramref name="promoteAfter"/>
    /// with its record so far (its origin then hands it to a durable supervisor). A refusal is a value.
    /// </summary>
    public async Task<AttemptReply> AttemptAsync(JobAssignment assignment, TimeSpan promoteAfter)
    {
        if (TryAccept(assignment, out var record) is { } refused) return AttemptReply.Refused(refused.Reason, refused.Permanent);
        var finished = record!.Finished;
        if (!finished.IsCompleted && promoteAfter > TimeSpan.Zero)
        {
            // A timeout here is the normal way a long task is handed on, so it must not throw.
            await ((Task)finished.WaitAsync(promoteAfter, time)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        return AttemptReply.Ended(finished.IsCompletedSuccessfully ? finished.Result : record.Snapshot());
    }

    /// <summary>Registers and starts an attempt, or says why this peer does not take it (the record is null then).</summary>
    private Refusal? TryAccept(JobAssignment assignment, out JobRecord? record)
    {
        record = jobs.TryGet(assignment.JobId, assignment.Attempt);
        if (record is not null) return null;
        if (!scheduler.CanAccept) return new(scheduler.UnavailableReason ?? "its worker pool cannot take tasks now", false);
        var spec = assignment.Spec;
        var timeout = Validate(spec);
        if (!scheduler.Runtimes.Contains(spec.Language))
        {
            var reason = $"cannot run {spec.Language} tasks: {scheduler.RuntimeMissingReason(spec.Language)}";
            return new(reason, !scheduler.HasRuntime(spec.Language));
        }

        record = jobs.Create(assignment, identity.Name);
        LogAccepted(record.JobId, assignment.Attempt, assignment.Origin, spec.Submitter, spec.Confidential);
        var accepted = record;
        _ = Task.Run(() => RunAsync(accepted, timeout));
        return null;
    }

    private readonly record struct Refusal(string Reason, bool Permanent);

    /// <summary>Checks a task before it is sent anywhere, so a malformed one fails at submission.</summary>
    public void Check(TaskSpec spec) => Validate(spec);

    public JobInfo Get(string jobId, int attempt) => jobs.Get(jobId, attempt).Snapshot();

    public async Task<JobInfo> WaitAsync(string jobId, int attempt, TimeSpan maxWait)
    {
        var record = jobs.Get(jobId, attempt);
        if (maxWait <= TimeSpan.Zero) return record.Snapshot();
        try
        {
            return await record.Finished.WaitAsync(maxWait, time).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return record.Snapshot();
        }
    }

    public async Task<JobInfo> CancelAsync(string jobId, int attempt)
    {
        var record = jobs.Get(jobId, attempt);
        if (record.Scheduled is { } task && scheduler.Cancel(task.Id))
        {
            // The scheduler ends it Cancelled; wait briefly so the answer shows the final state.
            try
            {
                await record.Finished.WaitAsync(TimeSpan.FromSeconds(2), time).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
            }

            return record.Snapshot();
        }

        // Not in the scheduler (still compiling) or already done: finishing here wins the race.
        record.Finish(JobStatus.Cancelled, Now(),
            ExecutionResult.Failure(TaskErrorKind.Cancelled, "Cancelled: cancelled before it started"), TimeSpan.Zero);
        return record.Snapshot();
    }

    public JobListing List(int limit) => new([.. jobs.Recent(Math.Clamp(limit, 1, 10_000))]);

    private async Task RunAsync(JobRecord record, TimeSpan timeout)
    {
        var spec = record.Spec;
        try
        {
            ExecutionRequest request;
            if (spec.Language == TaskLanguages.Python)
            {
                // The Python worker compiles (and caches by hash) itself; syntax errors come back as CompileError.
                var source = Encoding.UTF8.GetBytes(spec.Program);
                var function = string.IsNullOrEmpty(spec.Function) ? "main" : spec.Function;
                record.Compiled(function, fromCache: false);
                request = new ExecutionRequest(Convert.ToHexStringLower(SHA256.HashData(source)), source, function, spec.ArgsJson,
                    _options.MaxResultBytes, _options.MaxOutputBytes, TaskLanguages.Python);
            }
            else
            {
                CompiledProgram program;
                try
                {
                    program = await compiler.CompileAsync(spec.Program, spec.Function).ConfigureAwait(false);
                }
                catch (TaskRejectedException ex)
                {
                    record.Finish(JobStatus.Failed, Now(), ExecutionResult.Failure(ex.TaskError, ex.Message), TimeSpan.Zero);
                    return;
                }

                record.Compiled(program.Function, program.FromCache);
                request = new ExecutionRequest(program.Hash, program.Assembly, program.Function, spec.ArgsJson,
                    _options.MaxResultBytes, _options.MaxOutputBytes);
            }

            if (record.Snapshot().IsTerminal) return; // cancelled while compiling

            var task = scheduler.Submit(spec.Submitter, request, timeout);
            record.Scheduled = task;
            if (record.Snapshot().IsTerminal) scheduler.Cancel(task.Id); // cancelled in between

            var outcome = await task.Completion.ConfigureAwait(false);
            record.Finish(outcome.Status, outcome.FinishedUtc, outcome.Result, outcome.RunTime, outcome.StartedUtc);
        }
        catch (Exception ex)
        {
            LogRunFailed(record.JobId, ex);
            record.Finish(JobStatus.Failed, Now(), ExecutionResult.Failure(TaskErrorKind.Crashed, $"Crashed: {ex.Message}"), TimeSpan.Zero);
        }
        finally
        {
            // The snapshot is a copy of the record: only taken when the line is written.
            if (logger.IsEnabled(LogLevel.Debug))
            {
                var info = record.Snapshot();
                LogFinished(record.JobId, info.Attempt, info.Status, info.RunMs);
            }
        }
    }

    private TimeSpan Validate(TaskSpec spec)
    {
        if (TaskLanguages.Normalize(spec.Language) != spec.Language)
            throw new InvalidArgumentException($"unknown task language '{spec.Language}' (known: {string.Join(", ", TaskLanguages.All)})");
        if (string.IsNullOrWhiteSpace(spec.Program)) throw new InvalidArgumentException("the program is empty");
        if (string.IsNullOrWhiteSpace(spec.Submitter)) throw new InvalidArgumentException("a task needs a submitter");
        CheckArgs(spec.ArgsJson);

        var timeout = spec.Timeout ?? _options.DefaultTimeout;
        if (timeout <= TimeSpan.Zero) throw new InvalidArgumentException("timeout must be positive");
        if (timeout > _options.MaxTimeout)
            throw new InvalidArgumentException($"timeout of {timeout.TotalSeconds:0} s is above this peer's maximum of {_options.MaxTimeout.TotalSeconds:0} s");
        return timeout;
    }

    /// <summary>
    /// The arguments are one JSON array. Checked on the origin and again on the executing peer, so
    /// read with a reader that builds nothing (a <see cref="JsonDocument"/> was a tree per check);
    /// the same rules as JsonDocument.Parse: default depth limit, no comments, nothing after the array.
    /// </summary>
    private static void CheckArgs(string? json)
    {
        if (json is null) throw new InvalidArgumentException("args must be a JSON array");
        const int StackLimit = 512;
        var length = Encoding.UTF8.GetMaxByteCount(json.Length);
        byte[]? rented = null;
        var buffer = length <= StackLimit ? stackalloc byte[StackLimit] : (rented = System.Buffers.ArrayPool<byte>.Shared.Rent(length));
        try
        {
            var reader = new Utf8JsonReader(buffer[..Encoding.UTF8.GetBytes(json, buffer)]);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray)
                throw new InvalidArgumentException("args must be a JSON array");
            while (reader.Read())
            {
            }
        }
        catch (JsonException ex)
        {
            throw new InvalidArgumentException($"args are not valid JSON: {ex.Message}");
        }
        finally
        {
            if (rented is not null) System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private DateTime Now() => time.GetUtcNow().UtcDateTime;

    [LoggerMessage(Level = LogLevel.Debug, Message = "Job {JobId} attempt {Attempt} accepted from origin {Origin} for {Submitter} (confidential: {Confidential})")]
    private partial void LogAccepted(string jobId, int attempt, string origin, string submitter, bool confidential);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Job {JobId} attempt {Attempt} finished {Status} after {RunMs} ms")]
    private partial void LogFinished(string jobId, int attempt, JobStatus status, double runMs);

    [LoggerMessage(Level = LogLevel.Error, Message = "Job {JobId} failed inside the peer")]
    private partial void LogRunFailed(string jobId, Exception ex);
}
