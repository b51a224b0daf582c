using P2PShare.Compute;
using P2PShare.Peers;

namespace P2PShare.Cli.Commands;

/// <summary>
/// Calls to a job's grain. When the silo holding it dies, the grain comes back on a live silo
/// once membership has noticed (a few seconds), reading its record from storage; until then a
/// call fails with a connection error, so such a call is retried for a while instead of failing.
/// </summary>
public static class JobCalls
{
    public static async Task<JobInfo> RunAsync(CommandContext ctx, string jobId, Func<IJobGrain, Task<JobInfo>> call)
    {
        var grain = ctx.Cluster.Client.GetJob(jobId);
        var giveUpAt = DateTime.UtcNow + CallLimits.RetryWindow;
        while (true)
        {
            try
            {
                return await call(grain).WaitAsync(ctx.Cancel).ConfigureAwait(false);
            }
            catch (Exception ex) when ((PeerCall.IsUnavailable(ex) || ex is TimeoutException) && DateTime.UtcNow < giveUpAt
                                       && !ctx.Cancel.IsCancellationRequested)
            {
                await Task.Delay(CallLimits.RetryBackoff, ctx.Cancel).ConfigureAwait(false);
            }
        }
    }
}
