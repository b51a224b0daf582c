using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace P2PShare.Placement;

/// <summary>
/// Places a grain keyed by a peer name on the silo whose <c>SiloName</c> is that name. A peer's
/// memory and disk are physically on its machine, so activating it anywhere else would be wrong.
/// </summary>
[Serializable, GenerateSerializer, Immutable]
public sealed class PeerPlacementStrategy : PlacementStrategy
{
    public static PeerPlacementStrategy Instance { get; } = new();
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class PeerPlacementAttribute() : PlacementAttribute(PeerPlacementStrategy.Instance);

/// <summary>
/// Chooses the active silo named like the grain's key, refreshing membership once before giving up;
/// never falls back to another silo.
/// </summary>
public sealed class PeerPlacementDirector(IClusterMembershipService membership) : IPlacementDirector
{
    public async Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var peer = target.GrainIdentity.Key.ToString()!;
        var compatible = context.GetCompatibleSilos(target);

        var silo = Find(peer, compatible);
        if (silo is null)
        {
            // Our view may lag a peer that just joined.
            await membership.Refresh().ConfigureAwait(false);
            silo = Find(peer, compatible);
        }

        return silo ?? throw new PeerUnavailableException(peer, WhyMissing(peer));
    }

    private SiloAddress? Find(string peer, SiloAddress[] compatible)
    {
        foreach (var member in membership.CurrentSnapshot.Members.Values)
        {
            if (member.Status == SiloStatus.Active
                && string.Equals(member.Name, peer, StringComparison.Ordinal)
                && Array.IndexOf(compatible, member.SiloAddress) >= 0)
            {
                return member.SiloAddress;
            }
        }

        return null;
    }

    private string WhyMissing(string peer)
    {
        var members = membership.CurrentSnapshot.Members.Values
            .Where(m => string.Equals(m.Name, peer, StringComparison.Ordinal))
            .ToList();
        if (members.Count == 0) return "no such peer in the cluster";
        return members.Any(m => m.Status is SiloStatus.ShuttingDown or SiloStatus.Stopping)
            ? "it is shutting down"
            : "its silo is dead";
    }
}
