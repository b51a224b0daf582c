using System.Collections.Immutable;

namespace P2PShare.Legacy;

/// <summary>
/// A peer of the original Python system that registered through a seed-protocol tracker port.
/// Its address is what it told us; P2PShare never calls it, it only hands it out on REQUEST_CPU.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record ExternalPeer(
    [property: Id(0)] string Ip,
    [property: Id(1)] int Port,
    [property: Id(2)] double CpuLoad,
    [property: Id(3)] DateTime LastUpdateUtc,
    [property: Id(4)] DateTime RegisteredUtc)
{
    public string Endpoint => $"{Ip}:{Port}";
}

/// <summary>
/// The original peers registered with any of the cluster's tracker-protocol listeners, shared so
/// that every listener answers the same. One activation (key 0). Soft state, like the tracker's:
/// original peers send UPDATE_LOAD every few seconds, and an update from an unknown peer registers it,
/// so the registry refills by itself after its silo dies.
/// </summary>
[Alias("P2PShare.ILegacyRegistryGrain")]
public interface ILegacyRegistryGrain : IGrainWithIntegerKey
{
    /// <summary>Adds or refreshes a peer; returns its entry.</summary>
    [Alias("Register")]
    Task<ExternalPeer> RegisterAsync(string ip, int port, double cpuLoad);

    /// <summary>Removes a peer; false when it was not registered.</summary>
    [Alias("Unregister")]
    Task<bool> UnregisterAsync(string ip, int port);

    /// <summary>Live peers: those heard from within the registration timeout.</summary>
    [Alias("List")]
    Task<ImmutableArray<ExternalPeer>> ListAsync();
}

public static class LegacyRegistryGrainExtensions
{
    public static ILegacyRegistryGrain GetLegacyRegistry(this IGrainFactory grains) => grains.GetGrain<ILegacyRegistryGrain>(0);
}
