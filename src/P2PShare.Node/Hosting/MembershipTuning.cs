using Orleans.Configuration;

namespace P2PShare.Hosting;

/// <summary>
/// Failure detection tuned for a small cluster of peers, so that a killed peer leaves routing
/// within 5 s (measured: about a second) and a peer cut off from the network is declared dead
/// within 10 s, instead of ~12 s and ~66 s with Orleans' defaults. Applied before section
/// <c>Membership</c> (Orleans' <see cref="ClusterMembershipOptions"/>), which overrides any value.
/// </summary>
/// <remarks>
/// A killed silo refuses connections, so its probes fail at once; a cut one stays silent, so each
/// probe waits for its timeout. Orleans' <c>EnableConnectionLivenessCheck</c> (left on) ignores
/// suspicions while messages from the suspect arrived within the last
/// <c>ProbeTimeout × NumMissedProbesLimit</c>; with the values here that window is 2 s, not 15 s.
/// </remarks>
public static class MembershipTuning
{
    /// <summary>Initial timeout of a liveness probe (Orleans default 5 s).</summary>
    public static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(1);

    /// <summary>Lower bound of the adaptive probe timeout (Orleans default: half of ProbeTimeout).</summary>
    public static readonly TimeSpan MinProbeTimeout = TimeSpan.FromMilliseconds(500);

    /// <summary>Upper bound of the adaptive probe timeout (Orleans default: 4 × ProbeTimeout).</summary>
    public static readonly TimeSpan MaxProbeTimeout = TimeSpan.FromSeconds(2);

    /// <summary>Missed probes before a silo is suspected (Orleans default 3).</summary>
    public const int NumMissedProbesLimit = 2;

    /// <summary>
    /// Period of a silo's heartbeat row update in the membership table (Orleans default 30 s). Two
    /// missed heartbeats make an entry stale, which joining silos ignore.
    /// </summary>
    public static readonly TimeSpan IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Period of a full read of the membership table, besides gossip (Orleans default 60 s).</summary>
    public static readonly TimeSpan TableRefreshTimeout = TimeSpan.FromSeconds(10);

    public static void Apply(ClusterMembershipOptions o)
    {
        o.ProbeTimeout = ProbeTimeout;
        o.MinProbeTimeout = MinProbeTimeout;
        o.MaxProbeTimeout = MaxProbeTimeout;
        o.NumMissedProbesLimit = NumMissedProbesLimit;
        o.IAmAliveTablePublishTimeout = IAmAliveTablePublishTimeout;
        o.TableRefreshTimeout = TableRefreshTimeout;
    }
}
