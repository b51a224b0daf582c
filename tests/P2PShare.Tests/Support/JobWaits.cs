using System.Globalization;
using P2PShare.Compute;
using P2PShare.Peers;

namespace P2PShare.Tests.Support;

/// <summary>Tasks and waits shared by the job supervision tests.</summary>
public static class JobWaits
{
    /// <summary>Squares its input after burning CPU for the given seconds: the result names the input.</summary>
    public const string SlowSquare = """
        long main(long x, double seconds)
        {
            var until = DateTime.UtcNow.AddSeconds(seconds);
            while (DateTime.UtcNow < until) { }
            return x * x;
        }
        """;

    public static TaskSpec Slow(long x, double seconds, bool confidential = false, int? retries = null, string? on = null) =>
        new(SlowSquare, null, $"[{x}, {seconds.ToString(CultureInfo.InvariantCulture)}]", confidential,
            TimeSpan.FromSeconds(60), "tester", on, retries);

    public static async Task<JobInfo> RunningAsync(PeerCluster peers, string jobId)
    {
        JobInfo? seen = null;
        await Eventually.TrueAsync(async () =>
        {
            seen = await peers.Job(jobId).GetAsync();
            return seen.Status == JobStatus.Running;
        }, TimeSpan.FromSeconds(20), $"job {jobId} runs");
        return seen!;
    }

    /// <summary>Waits for a terminal state; calls that race a silo's death are simply repeated.</summary>
    public static async Task<JobInfo> TerminalAsync(PeerCluster peers, string jobId, TimeSpan limit)
    {
        var deadline = DateTime.UtcNow + limit;
        while (true)
        {
            try
            {
                var job = await peers.Job(jobId).WaitAsync(TimeSpan.FromSeconds(5));
                if (job.IsTerminal) return job;
            }
            catch (Exception ex) when (PeerCall.IsUnavailable(ex) || ex is TimeoutException)
            {
            }

            if (DateTime.UtcNow > deadline) throw new TimeoutException($"job {jobId} did not end within {limit}");
        }
    }
}
