using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Orleans.Hosting;
using P2PShare.Compute;
using P2PShare.Files;
using P2PShare.Memory;
using P2PShare.Peers;
using P2PShare.Placement;
using P2PShare.Telemetry;
using P2PShare.Tracker;

namespace P2PShare.Hosting;

public static class PeerSiloBuilderExtensions
{
    /// <summary>
    /// Everything a silo needs to act as a P2PShare peer: the resource services, peer placement and
    /// the load reporter. Used by the peer host and by the cluster tests alike. Each feature binds its
    /// own configuration section and checks it at start.
    /// </summary>
    public static ISiloBuilder AddP2PSharePeer(this ISiloBuilder silo, string dataDirectory)
    {
        var services = silo.Services;
        services.TryAddSingleton(TimeProvider.System);
        services.AddP2PShareTelemetry();
        services.AddP2PSharePeers();
        services.AddP2PShareMemory();
        services.AddP2PShareFiles(dataDirectory);
        services.AddP2PShareCompute();
        services.AddP2PShareTracker();
        silo.AddP2PSharePlacement();
        return silo;
    }
}
