using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using P2PShare.Cli;
using P2PShare.Compute;

namespace P2PShare.Benchmarks;

/// <summary>One task's end as the batch call streams it back.</summary>
/// <param name="Promoted">It outlived the peers' promotion threshold and was followed through its job's grain (the durable path).</param>
internal sealed record BatchResult(bool Succeeded, string? Error, bool Promoted = false);

/// <summary>
/// The batch call of the fast task path (issue 14 item 4): many tasks in one call to an origin peer,
/// each result streamed back as it finishes. The batch scenario is written against this, so the
/// cluster's API is one adapter in <see cref="BatchSubmitters.Create"/>.
/// </summary>
internal interface IBatchSubmitter
{
    /// <summary>Submits every spec in one call to <paramref name="origin"/> and yields each result as it finishes, in any order.</summary>
    IAsyncEnumerable<BatchResult> RunAsync(string origin, IReadOnlyList<TaskSpec> specs, CancellationToken cancellation);
}

internal static class BatchSubmitters
{
    /// <summary>The adapter over <c>IPeerGrain.RunBatchAsync</c>, the call <c>p2pshare run --each</c> makes.</summary>
    public static IBatchSubmitter Create(ClusterConnection cluster) => new PeerBatchSubmitter(cluster);
}

/// <summary>
/// <c>IPeerGrain.RunBatchAsync</c>, read as the CLI reads it: a finished job is a result; a job the
/// origin promoted (it outlived <c>Compute:PromoteAfter</c>) is followed through its grain, beside the
/// stream so the other results keep flowing; a task no peer took is a failure with the peer's reason.
/// </summary>
internal sealed class PeerBatchSubmitter(ClusterConnection cluster) : IBatchSubmitter
{
    public async IAsyncEnumerable<BatchResult> RunAsync(string origin, IReadOnlyList<TaskSpec> specs,
        [EnumeratorCancellation] CancellationToken cancellation)
    {
        var results = Channel.CreateUnbounded<BatchResult>(new UnboundedChannelOptions { SingleReader = true });
        var reading = ReadAsync(origin, [.. specs], results.Writer, cancellation);
        _ = reading.ContinueWith(t => results.Writer.TryComplete(t.Exception?.GetBaseException()), TaskScheduler.Default);
        await foreach (var result in results.Reader.ReadAllAsync(cancellation)) yield return result;
    }

    private async Task ReadAsync(string origin, ImmutableArray<TaskSpec> specs, ChannelWriter<BatchResult> results, CancellationToken cancellation)
    {
        var promoted = new List<Task>();
        await foreach (var item in cluster.Peer(origin).RunBatchAsync(specs).WithCancellation(cancellation))
        {
            if (item.Job is not { } job) results.TryWrite(new BatchResult(false, $"task {item.Index} was not run: {item.Error}"));
            else if (job.IsTerminal) results.TryWrite(Of(job, promoted: false));
            else promoted.Add(FollowAsync(job, results, cancellation));
        }

        await Task.WhenAll(promoted);
    }

    private async Task FollowAsync(JobInfo job, ChannelWriter<BatchResult> results, CancellationToken cancellation) =>
        results.TryWrite(Of(await Scenarios.FollowAsync(cluster, job, cancellation), promoted: true));

    private static BatchResult Of(JobInfo job, bool promoted) =>
        job.Status == JobStatus.Succeeded ? new BatchResult(true, null, promoted) : new BatchResult(false, $"job {job.JobId} ended {job.Status}: {job.Error}", promoted);
}
