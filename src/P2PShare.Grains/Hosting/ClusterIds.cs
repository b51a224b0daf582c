using Orleans.Configuration;

namespace P2PShare.Hosting;

/// <summary>Names every P2PShare silo and client agree on.</summary>
public static class ClusterIds
{
    public const string ClusterId = "p2pshare";
    public const string ServiceId = "p2pshare";
}

/// <summary>
/// Failure detection tuned for a small cluster of peers: a killed silo is declared dead in about a
/// second instead of ~12 s, so its peer leaves routing quickly. Overridable in section <c>Membership</c>.
/// </summary>
public static class MembershipTuning
{
    public static void Apply(ClusterMembershipOptions o)
    {
        o.ProbeTimeout = TimeSpan.FromSeconds(1);
        o.MinProbeTimeout = TimeSpan.FromMilliseconds(500);
        o.MaxProbeTimeout = TimeSpan.FromSeconds(2);
        o.NumMissedProbesLimit = 2;
    }
}
