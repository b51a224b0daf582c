using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using P2PShare.Peers;
using P2PShare.Telemetry;
using P2PShare.Tracker;

namespace P2PShare.Compute;

/// <summary>
/// The fast path of a task, on its origin: pick the executing peer from this silo's
/// <see cref="LoadView"/>, send the attempt in one call (<see cref="IPeerGrain.RunAttemptAsync"/>) and
/// take the finished job from its answer. That awaiting call is the supervision: a peer that dies
/// under it fails the call, and the task is re-run elsewhere under the same rules as a supervised
/// job (<see cref="SupervisedJob.EndInsteadOfRerun(TaskSpec, IReadOnlyList{JobAttempt}, string)"/>).
/// A task still running after <see cref="ComputeOptions.PromoteAfter"/> is handed to its
/// <see cref="JobGrain"/>, which follows it durably from then on. No grain activation, reminder or
/// storage write happens per task otherwise; the record lives in <see cref="RecentJobs"/> (and, in
/// <c>postgres</c> mode, is written in batches by <see cref="FinishedJobWriter"/>).
/// </summary>
/// <remarks>
/// Refusals come back as values and dead peers as failed calls; no exception is thrown on the way
/// of a task that runs. Awaits leave the caller's context (this is a silo service), so the grain
/// that calls it is free for other calls meanwhile.
/// </remarks>
public sealed partial class JobRunner(
    IGrainFactory grains,
    JobService jobs,
    LoadView view,
    RecentJobs recent,
    PeerIdentity identity,
    PeerLiveness liveness,
    IOptions<ComputeOptions> options,
    P2PShareMetrics metrics,
    TimeProvider time,
    ILogger<JobRunner> logger,
    FinishedJobWriter? writer = null)
{
    private static readonly TimeSpan CancelGrace = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan EmptyClusterRecheck = TimeSpan.FromSeconds(1);

    /// <summary>Tasks of one batch in flight at once, at most; the rest wait their turn here, not in the peers' queues.</summary>
    public const int MaxBatchInFlight = 1024;

    /// <summary>
    /// Tasks of one batch in flight per slot of the cluster: enough to keep every slot's worker fed,
    /// few enough that a task does not wait in a peer's queue past <see cref="ComputeOptions.PromoteAfter"/>.
    /// With 1,024 in flight on 6 slots nearly every task of a large batch queued for seconds and was
    /// promoted to its job grain (measured: 5,749 of 6,000), the durable per-task cost the fast path is for avoiding.
    /// </summary>
    public const int BatchTasksPerSlot = 8;

    private readonly ComputeOptions _options = options.Value;

    /// <summary>Runs a task with this peer as origin; the finished job, or its Queued/Running record once promoted.</summary>
    /// <exception cref="InvalidArgumentException">The task is malformed.</exception>
    /// <exception cref="NoPeersAvailableException">No live peer can take it.</exception>
    /// <exception cref="PeerUnavailableException">The peer it is confidential to or pinned to cannot take it.</exception>
    public async Task<JobInfo> RunAsync(TaskSpec task)
    {
        if (task is null) throw new InvalidArgumentException("no task given");
        jobs.Check(task);
        var retries = task.MaxRetries ?? _options.MaxRetries;
        if (retries is < 0 or > ComputeOptions.MaxRetriesLimit)
            throw new InvalidArgumentException($"max retries must be 0..{ComputeOptions.MaxRetriesLimit}, not {retries}");
        if (task.Confidential && task.PinnedPeer is { } pinned && pinned != identity.Name)
            throw new InvalidArgumentException($"a confidential task runs on its origin '{identity.Name}', not on '{pinned}'");

        var job = new FastJob(JobIds.New(identity.Name), identity.Name, task with { MaxRetries = retries }, Now());
        recent.Add(job);
        try
        {
            await DriveAsync(job).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Nothing ran: a failed submission leaves no job behind, as on the supervised path.
            recent.Forget(job);
            job.Abandon(ex);
            throw;
        }

        return await job.Settled.ConfigureAwait(false);
    }

    /// <summary>
    /// Runs every task of <paramref name="tasks"/> as <see cref="RunAsync"/> does, <see cref="BatchTasksPerSlot"/>
    /// per slot of the cluster at once (at most <see cref="MaxBatchInFlight"/>), and yields each as it finishes (or is promoted).
    /// </summary>
    public async IAsyncEnumerable<BatchItem> RunBatchAsync(ImmutableArray<TaskSpec> tasks, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (tasks.IsDefaultOrEmpty) yield break;
        var done = Channel.CreateUnbounded<BatchItem>(new UnboundedChannelOptions { SingleReader = true });
        // Not disposed: tasks still running when the reader leaves early release it after this returns.
        // Before this silo's first load table (a few seconds after it starts) the cluster's slots are
        // unknown: the smallest window then, rather than a tracker call that could fail the whole batch.
        var gate = new SemaphoreSlim(BatchWindow(view.Known ? view.TotalSlots : 0));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var feeding = Task.Run(async () =>
        {
            var running = new List<Task>(tasks.Length);
            for (var i = 0; i < tasks.Length; i++)
            {
                await gate.WaitAsync(stop.Token).ConfigureAwait(false);
                var index = i;
                running.Add(RunOneOfBatchAsync(index, tasks[index], done.Writer, gate));
            }

            await Task.WhenAll(running).ConfigureAwait(false);
        }, stop.Token);
        _ = feeding.ContinueWith(t => done.Writer.TryComplete(t.Exception), TaskScheduler.Default);

        try
        {
            await foreach (var item in done.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false)) yield return item;
        }
        finally
        {
            // The reader stopped early (the caller went away): send no more.
            stop.Cancel();
        }
    }

    /// <summary>How many tasks of a batch are in flight at once on a cluster of <paramref name="slots"/> slots.</summary>
    internal static int BatchWindow(int slots) => (int)Math.Clamp((long)slots * BatchTasksPerSlot, BatchTasksPerSlot, MaxBatchInFlight);

    private async Task RunOneOfBatchAsync(int index, TaskSpec task, ChannelWriter<BatchItem> done, SemaphoreSlim gate)
    {
        BatchItem item;
        try
        {
            item = new BatchItem(index, await RunAsync(task).ConfigureAwait(false), null);
        }
        catch (P2PShareException ex)
        {
            item = new BatchItem(index, null, ex.Message);
        }
        catch (Exception ex)
        {
            LogBatchTaskFailed(index, ex);
            item = new BatchItem(index, null, $"Crashed: {ex.Message}");
        }
        finally
        {
            gate.Release();
        }

        done.TryWrite(item);
    }

    /// <summary>This origin's record of a fast job, waiting up to <paramref name="maxWait"/> for it to end; null when it has none.</summary>
    /// <exception cref="ExpiredException">It finished and its record was dropped.</exception>
    public async Task<JobInfo?> FindAsync(string jobId, TimeSpan maxWait)
    {
        if (recent.Find(jobId) is not { } job) return null;
        if (!job.Terminal && !job.Promoted && maxWait > TimeSpan.Zero)
            await ((Task)job.Settled.WaitAsync(maxWait, time)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        return job.Promoted ? null : job.Info();
    }

    /// <summary>Cancels a fast job of this origin: a running attempt is killed and not re-run. Null when it has none.</summary>
    public async Task<JobInfo?> CancelAsync(string jobId)
    {
        if (recent.Find(jobId) is not { } job || job.Promoted) return null;
        if (job.Terminal) return job.Info();
        job.CancelRequested = true;
        if (job.Running is { } attempt)
        {
            try
            {
                await PeerCall.RunAsync(attempt.Peer,
                    () => grains.GetGrain<IPeerGrain>(attempt.Peer).CancelAttemptAsync(jobId, attempt.Number)).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is PeerUnavailableException or NotFoundException or ExpiredException)
            {
                // The attempt is gone with its peer; the runner sees the loss and, cancel being asked, ends the job Cancelled.
            }
        }

        await ((Task)job.Settled.WaitAsync(CancelGrace, time)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        return job.Info();
    }

    // ---- the attempts ----

    private async Task DriveAsync(FastJob job)
    {
        var spec = job.Spec;
        var fixedPeer = spec.Confidential ? identity.Name : spec.PinnedPeer;
        var refused = new List<string>();
        DateTimeOffset? giveUpAt = null;
        metrics.TaskSubmitted(spec);
        while (true)
        {
            if (job.CancelRequested)
            {
                End(job, JobStatus.Cancelled, TaskErrorKind.Cancelled, "Cancelled: cancelled before it ran");
                return;
            }

            var attempts = job.Attempts;
            var first = attempts.IsEmpty;
            var peer = fixedPeer ?? await PickAsync(spec, attempts, refused, first).ConfigureAwait(false);
            if (peer is null)
            {
                // A retry with no peer to take it: peers may come back (restart) within the patience.
                giveUpAt ??= time.GetUtcNow() + JobRouter.NoPeerPatience;
                if (time.GetUtcNow() >= giveUpAt)
                {
                    var (status, kind, error) = SupervisedJob.Lost($"{attempts[^1].Note}; no live peer took it within {JobRouter.NoPeerPatience.TotalSeconds:0} s");
                    End(job, status, kind, error);
                    return;
                }

                refused.Clear();
                await Task.Delay(EmptyClusterRecheck, time).ConfigureAwait(false);
                continue;
            }

            var number = attempts.Length + 1;
            job.Sending(number, peer, Now());
            var (reply, lost) = await SendAsync(job, peer, number).ConfigureAwait(false);
            if (reply is { Outcome: AttemptOutcome.Refused })
            {
                job.NotSent();
                metrics.Routed(RoutingOutcome.PeerRefused);
                LogSkipped(job.JobId, peer, reply.Refusal!);
                if (fixedPeer is null)
                {
                    refused.Add(peer);
                    continue;
                }

                if (first)
                {
                    if (reply.Permanent) throw new InvalidArgumentException($"peer '{peer}' {reply.Refusal}");
                    throw new PeerUnavailableException(peer, reply.Refusal!);
                }

                lost = $"peer '{peer}' no longer takes tasks ({reply.Refusal})";
                job.Sending(number, peer, Now());
            }
            else if (reply is { Job: { } info })
            {
                metrics.Routed(spec.Confidential ? RoutingOutcome.Origin : fixedPeer is not null ? RoutingOutcome.Pinned : RoutingOutcome.LeastLoaded);
                job.Observe(info, Now());
                if (info.IsTerminal) Finished(job);
                else await PromoteAsync(job).ConfigureAwait(false);
                return;
            }
            else if (lost is null)
            {
                // Never reached (its silo had already left the cluster): not an attempt.
                job.NotSent();
                if (fixedPeer is not null && first) throw new PeerUnavailableException(peer, "its silo is not in the cluster");
                if (fixedPeer is null)
                {
                    refused.Add(peer);
                    continue;
                }

                lost = $"peer '{peer}' left the cluster";
                job.Sending(number, peer, Now());
            }

            LogAttemptLost(job.JobId, number, peer, lost);
            job.Lose(lost, Now());
            if (job.CancelRequested)
            {
                End(job, JobStatus.Cancelled, TaskErrorKind.Cancelled, $"Cancelled: cancelled while {lost}");
                return;
            }

            if (SupervisedJob.EndInsteadOfRerun(spec, job.Attempts, lost) is { } end)
            {
                End(job, end.Status, end.Kind, end.Error);
                return;
            }
        }
    }

    /// <summary>
    /// The least-loaded peer of this silo's view that has not refused or lost this task; null on a
    /// retry when there is none (the caller waits), an error on a first attempt.
    /// </summary>
    private async Task<string?> PickAsync(TaskSpec spec, ImmutableArray<JobAttempt> attempts, List<string> refused, bool first)
    {
        if (!view.Known) view.Update(await grains.GetTracker().GetPeersAsync().ConfigureAwait(false));
        IReadOnlyCollection<string> exclude = refused;
        if (!attempts.IsEmpty)
        {
            // Peers that lost an earlier attempt are skipped unless nobody else can take it.
            var skip = new HashSet<string>(refused, StringComparer.Ordinal);
            foreach (var attempt in attempts)
                if (attempt.Status == JobStatus.PeerLost) skip.Add(attempt.Peer);
            exclude = skip;
        }

        if (view.Pick(spec.Language, exclude, out var whyNone) is { } pick) return pick;
        metrics.Routed(RoutingOutcome.NoPeer);
        if (first) throw new NoPeersAvailableException(whyNone!);
        return null;
    }

    /// <summary>One attempt: the peer's reply, or why it was lost with its peer (both null: the peer was never reached).</summary>
    private async Task<(AttemptReply? Reply, string? Lost)> SendAsync(FastJob job, string peer, int number)
    {
        var assignment = new JobAssignment(job.JobId, number, identity.Name, job.Spec);
        using var reservation = view.Reserve(peer);
        try
        {
            var reply = await grains.GetGrain<IPeerGrain>(peer).RunAttemptAsync(assignment, _options.PromoteAfter).ConfigureAwait(false);
            return (reply, null);
        }
        catch (Exception ex) when (ex is PeerUnavailableException || IsNotConnected(ex))
        {
            // The placement director's answer, or no connection at all: the call never reached the
            // peer (its silo left or is dying), so nothing of the task ran there.
            return (null, null);
        }
        catch (Exception ex) when (PeerCall.IsUnavailable(ex))
        {
            return (null, $"peer '{peer}' died or was cut off ({ex.Message})");
        }
        catch (TimeoutException) when (!liveness.IsLive(peer))
        {
            return (null, $"peer '{peer}' stopped answering and left the cluster");
        }
        catch (TimeoutException)
        {
            // The peer is there but did not answer in time (overloaded): its grain follows the
            // attempt from here, and re-runs it if the peer turns out not to have it.
            return (AttemptReply.Ended(job.Info() with { Status = JobStatus.Queued }), null);
        }
    }

    private static bool IsNotConnected(Exception ex) =>
        ex is Orleans.Runtime.Messaging.ConnectionFailedException || (ex.InnerException is { } inner && IsNotConnected(inner));

    private async Task PromoteAsync(FastJob job)
    {
        var current = job.Info();
        // A confidential task is never re-run, so its grain needs no program: it stays in this silo's memory only.
        var spec = job.Spec.Confidential ? job.Spec with { Program = "", ArgsJson = "[]" } : job.Spec;
        var adopted = await grains.GetJob(job.JobId)
            .AdoptAsync(new JobAdoption(identity.Name, spec, job.Attempts, current with { Attempts = [] }, job.SubmittedUtc))
            .ConfigureAwait(false);
        recent.Promoted(job);
        job.Promote(adopted);
        LogPromoted(job.JobId, current.ExecutedBy);
    }

    private void End(FastJob job, JobStatus status, TaskErrorKind kind, string error)
    {
        job.End(status, kind, error, Now());
        Finished(job);
    }

    private void Finished(FastJob job)
    {
        var final = job.Info();
        metrics.JobEnded(final);
        recent.Finished(job, final);
        writer?.Add(job, final);
    }

    private DateTime Now() => time.GetUtcNow().UtcDateTime;

    [LoggerMessage(Level = LogLevel.Debug, Message = "Job {JobId}: peer {Peer} refused it ({Reason}); trying another")]
    private partial void LogSkipped(string jobId, string peer, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} attempt {Attempt} lost on {Peer}: {Reason}")]
    private partial void LogAttemptLost(string jobId, int attempt, string peer, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Job {JobId} outlived the fast path on {Peer}; its grain follows it now")]
    private partial void LogPromoted(string jobId, string peer);

    [LoggerMessage(Level = LogLevel.Error, Message = "Task {Index} of a batch failed inside the peer")]
    private partial void LogBatchTaskFailed(int index, Exception ex);
}
