using P2PShare.EndToEnd.Infrastructure;

namespace P2PShare.EndToEnd.Observability;

/// <summary>A local cluster whose peers also serve the Orleans Dashboard on their HTTP ports.</summary>
public sealed class ObservedCluster : LocalCluster
{
    protected override bool Dashboard => true;
}
