namespace P2PShare.Connecting;

/// <summary>Names every P2PShare silo and client agree on.</summary>
public static class ClusterIds
{
    public const string ClusterId = "p2pshare";
    public const string ServiceId = "p2pshare";
}
