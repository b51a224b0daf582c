using P2PShare.Peers;

namespace P2PShare.Compute;

/// <summary>What one long poll of an attempt found: its peer's record of it, or that it is lost and why; neither means "ask again".</summary>
internal readonly record struct PollOutcome(JobInfo? Info, string? Lost);

/// <summary>
/// The calls a job's supervisor makes to the peer running its current attempt (follow it, look at
/// it, cancel it), with each failure sorted into "the attempt is lost" or "ask again".
/// </summary>
/// <remarks>
/// Owned by the job's grain and awaited in its turns: its awaits keep the grain's context (Orleans'
/// ORLEANS0014 rule). It changes no state; the grain acts on the answers.
/// </remarks>
internal sealed class AttemptCalls(IGrainFactory grains, PeerLiveness liveness, TimeProvider time, ILogger logger)
{
    /// <summary>One long poll of the attempt (<see cref="CallLimits.PollWait"/>), raced against its peer leaving the cluster.</summary>
    public async Task<PollOutcome> PollAsync(string jobId, JobAttempt attempt, CancellationToken deactivating)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(deactivating);
        var gone = liveness.WhenGoneAsync(attempt.Peer, stop.Token);
        var poll = PeerCall.RunAsync(attempt.Peer,
            () => Peer(attempt).WaitAttemptAsync(jobId, attempt.Number, CallLimits.PollWait));
        try
        {
            var first = await Task.WhenAny(poll, gone);
            if (first == gone && !gone.IsCanceled)
            {
                _ = poll.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
                return new(null, $"peer '{attempt.Peer}' died or was cut off");
            }

            return new(await poll, null);
        }
        catch (PeerUnavailableException ex)
        {
            return new(null, ex.Message);
        }
        catch (ExpiredException ex)
        {
            return new(null, $"peer '{attempt.Peer}' dropped the attempt's record before it was collected ({ex.Message})");
        }
        catch (NotFoundException)
        {
            return new(null, $"peer '{attempt.Peer}' restarted and no longer has the attempt");
        }
        catch (TimeoutException) when (!liveness.IsLive(attempt.Peer))
        {
            return new(null, $"peer '{attempt.Peer}' stopped answering and left the cluster");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            JobLog.LogPollFailed(logger, jobId, attempt.Peer, ex.Message);
            return default;
        }
        finally
        {
            stop.Cancel();
        }
    }

    /// <summary>
    /// The peer's record of the attempt now, without waiting; a <see cref="TimeoutException"/> after
    /// <see cref="CallLimits.RefreshTimeout"/>. Any failure is the caller's to ignore: the follower handles it.
    /// </summary>
    public Task<JobInfo> LookAsync(string jobId, JobAttempt attempt) =>
        Peer(attempt).WaitAttemptAsync(jobId, attempt.Number, TimeSpan.Zero).WaitAsync(CallLimits.RefreshTimeout, time);

    /// <summary>Asks the peer to drop or kill the attempt; null when the attempt is gone with its peer.</summary>
    public async Task<JobInfo?> CancelAsync(string jobId, JobAttempt attempt)
    {
        try
        {
            return await PeerCall.RunAsync(attempt.Peer, () => Peer(attempt).CancelAttemptAsync(jobId, attempt.Number));
        }
        catch (Exception ex) when (ex is PeerUnavailableException or NotFoundException or ExpiredException)
        {
            // The follower sees the loss too and, the cancel being requested, ends the job Cancelled
            // instead of re-running it.
            return null;
        }
    }

    private IPeerGrain Peer(JobAttempt attempt) => grains.GetGrain<IPeerGrain>(attempt.Peer);
}
