namespace P2PShare.Peers;

/// <summary>
/// Answers "is the silo of this peer still a live cluster member?" from Orleans membership, and
/// lets a caller wait for the moment it is not. Job supervisors use it to give up on an attempt as
/// soon as its peer is declared dead, instead of waiting for a call to it to time out.
/// </summary>
public sealed class PeerLiveness(IClusterMembershipService membership)
{
    /// <summary>True while a silo named <paramref name="peer"/> is joining, active or shutting down.</summary>
    public bool IsLive(string peer) => HasLiveMember(membership.CurrentSnapshot, peer);

    /// <summary>Completes once no live silo is named <paramref name="peer"/>; never throws except on cancellation.</summary>
    public async Task WhenGoneAsync(string peer, CancellationToken cancellationToken)
    {
        if (!IsLive(peer)) return;
        await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (!HasLiveMember(snapshot, peer)) return;
        }
    }

    private static bool HasLiveMember(ClusterMembershipSnapshot snapshot, string peer) =>
        snapshot.Members.Values.Any(m =>
            m.Status is SiloStatus.Created or SiloStatus.Joining or SiloStatus.Active or SiloStatus.ShuttingDown or SiloStatus.Stopping
            && string.Equals(m.Name, peer, StringComparison.Ordinal));
}
