using Xunit;

namespace P2PShare.EndToEnd.MultiHost;

/// <summary>
/// A fact that needs root, because it builds hosts out of network namespaces. Without root it is
/// reported as skipped with the reason, never run and never silently passed.
/// </summary>
public sealed class RootFactAttribute : FactAttribute
{
    public const string NotRootReason =
        "needs root: the multi-host lab creates network namespaces (deploy/netns/cluster.sh); CI runs the tests as root";

    public RootFactAttribute()
    {
        if (!NetnsLab.IsRoot)
        {
            Skip = NotRootReason;
        }
    }
}
