using P2PShare.Cli;
using P2PShare.Compute;

namespace P2PShare.Benchmarks;

/// <summary>One task's end as the batch call streams it back.</summary>
internal sealed record BatchResult(bool Succeeded, string? Error);

/// <summary>
/// The batch call of the fast task path (issue 14 item 4): many tasks in one call to an origin peer,
/// each result streamed back as it finishes. The batch scenario is written against this, so wiring
/// the real API is one adapter in <see cref="BatchSubmitters.Create"/>.
/// </summary>
internal interface IBatchSubmitter
{
    /// <summary>Submits every spec in one call to <paramref name="origin"/> and yields each result as it finishes, in any order.</summary>
    IAsyncEnumerable<BatchResult> RunAsync(string origin, IReadOnlyList<TaskSpec> specs, CancellationToken cancellation);
}

internal static class BatchSubmitters
{
    /// <summary>Why the batch scenario is skipped while <see cref="Create"/> has no adapter.</summary>
    public const string Missing = "the cluster API has no batch submit yet (issue 14 item 4, branch fast); wire it in BatchSubmitters.Create";

    /// <summary>
    /// The adapter over the cluster's batch call, or null while there is none. To wire it: return an
    /// <see cref="IBatchSubmitter"/> whose RunAsync calls the origin peer's batch method
    /// (<c>cluster.Peer(origin)</c>) with the specs and maps each streamed result to a
    /// <see cref="BatchResult"/>. A benchmark-only emulation (many single submits) would not measure
    /// the batch path, so there is none.
    /// </summary>
    public static IBatchSubmitter? Create(ClusterConnection cluster)
    {
        _ = cluster;
        return null;
    }
}
