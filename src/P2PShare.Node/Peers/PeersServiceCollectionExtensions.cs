using Microsoft.Extensions.DependencyInjection;

namespace P2PShare.Peers;

public static class PeersServiceCollectionExtensions
{
    /// <summary>
    /// What makes a silo a peer: its identity, liveness and readiness, and the start-up check that
    /// its name is unique. <see cref="PeerOptions"/> are not bound here: the host reads and checks them
    /// before it builds the silo, which they name and place on its ports.
    /// </summary>
    public static IServiceCollection AddP2PSharePeers(this IServiceCollection services)
    {
        services.AddSingleton<PeerIdentity>();
        services.AddSingleton<PeerLiveness>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, UniquePeerNameCheck>();
        services.AddSingleton<PeerReadiness>();
        return services;
    }
}
