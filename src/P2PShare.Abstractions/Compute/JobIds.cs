using System.Diagnostics.CodeAnalysis;

namespace P2PShare.Compute;

/// <summary>
/// Job ids are <c>PEER:ID</c>: the origin peer's name (where it was submitted) and a random part.
/// Peer names never contain ':'. The record itself is kept by the job's grain, see <see cref="IJobGrain"/>.
/// </summary>
public static class JobIds
{
    public static string New(string peer) => $"{peer}:{Guid.NewGuid():N}"[..(peer.Length + 13)];

    public static bool TryParse(string? jobId, [NotNullWhen(true)] out string? peer)
    {
        peer = null;
        if (string.IsNullOrWhiteSpace(jobId)) return false;
        var colon = jobId.IndexOf(':');
        if (colon <= 0 || colon == jobId.Length - 1) return false;
        peer = jobId[..colon];
        return true;
    }

    public static string OriginOf(string jobId) =>
        TryParse(jobId, out var peer) ? peer : throw new InvalidArgumentException($"'{jobId}' is not a job id (PEER:ID)");

    /// <summary>Throws <see cref="InvalidArgumentException"/> unless <paramref name="jobId"/> looks like a job id.</summary>
    public static string Validate(string? jobId) =>
        TryParse(jobId, out _) ? jobId! : throw new InvalidArgumentException($"'{jobId}' is not a job id (PEER:ID)");
}
