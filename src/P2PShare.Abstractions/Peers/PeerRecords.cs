namespace P2PShare.Peers;

/// <summary>A peer's identity and limits, as its own grain reports them.</summary>
[GenerateSerializer, Immutable]
public sealed record PeerDescription(
    [property: Id(0)] string Name,
    [property: Id(1)] SiloAddress Silo,
    [property: Id(2)] string Gateway,
    [property: Id(3)] long MemoryQuota,
    [property: Id(4)] long MaxValueBytes,
    [property: Id(5)] long DiskQuota,
    [property: Id(6)] long MaxFileBytes,
    [property: Id(7)] DateTime StartedUtc);
