using Orleans.Hosting;

namespace P2PShare.Placement;

public static class PlacementSiloBuilderExtensions
{
    /// <summary>Grains marked with the peer placement strategy go to the peer their key names.</summary>
    public static ISiloBuilder AddP2PSharePlacement(this ISiloBuilder silo) =>
        silo.AddPlacementDirector<PeerPlacementStrategy, PeerPlacementDirector>();
}
