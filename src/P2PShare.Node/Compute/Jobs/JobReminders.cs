namespace P2PShare.Compute;

/// <summary>
/// The backstop of a job's supervision: a reminder every <see cref="Period"/> brings the job's grain
/// back on a live silo if its own silo dies while nobody is asking about the job. It is removed when
/// the job ends.
/// </summary>
/// <remarks>Owned by the job's grain and used in its turns: the reminder calls need the grain's context.</remarks>
internal sealed class JobReminders(Grain grain, string jobId, TimeProvider time, ILogger logger)
{
    public static readonly TimeSpan Period = TimeSpan.FromMinutes(1);

    private const string Name = "supervise";

    /// <summary>
    /// The backstop reminder is registered only for jobs still running after this long: most tasks end
    /// sooner, and registering and removing a reminder costs three calls to the cluster's reminder
    /// table per job (PostgreSQL round trips in postgres mode). A supervisor lost before then is
    /// replaced by the next read of the job, as always.
    /// </summary>
    private static readonly TimeSpan BackstopDelay = TimeSpan.FromSeconds(10);

    // Whether a reminder may exist for this job: this activation registered one, or it is not the
    // job's first activation (an earlier one may have). Then the end of the job removes it.
    private bool _mayExist;

    /// <summary>An earlier activation may have registered the reminder: the job is known already, or the reminder fired.</summary>
    public void MayExist() => _mayExist = true;

    /// <summary>
    /// Called when following starts: renews the reminder at once if one may exist, else registers it
    /// after <see cref="BackstopDelay"/> unless <paramref name="ended"/> by then.
    /// </summary>
    public async Task KeepAsync(Func<bool> ended, CancellationToken deactivating)
    {
        if (_mayExist) await RememberAsync();
        else _ = RememberLaterAsync(ended, deactivating);
    }

    public async Task ForgetAsync()
    {
        if (!_mayExist) return;
        try
        {
            if (await grain.GetReminder(Name) is { } reminder) await grain.UnregisterReminder(reminder);
        }
        catch (Exception ex)
        {
            JobLog.LogReminderFailed(logger, jobId, ex.Message);
        }
    }

    private async Task RememberAsync()
    {
        try
        {
            await grain.RegisterOrUpdateReminder(Name, Period, Period);
        }
        catch (Exception ex)
        {
            // Only the backstop is missing: the job is still followed while this activation lives.
            JobLog.LogReminderFailed(logger, jobId, ex.Message);
        }
    }

    private async Task RememberLaterAsync(Func<bool> ended, CancellationToken deactivating)
    {
        try
        {
            await Task.Delay(BackstopDelay, time, deactivating);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        if (!ended() && !_mayExist)
        {
            _mayExist = true;
            await RememberAsync();
        }
    }
}
