using System.Collections.Immutable;
using P2PShare.Tracker;

namespace P2PShare.Legacy;

/// <summary>
/// The tracker's view of the peers, cached for a moment: which seed-protocol endpoint each peer
/// listens on, for <c>executed_by</c> and for the tracker port's answers.
/// </summary>
internal sealed class LegacyEndpoints(IGrainFactory grains, TimeProvider time)
{
    private static readonly TimeSpan Freshness = TimeSpan.FromSeconds(1);
    private readonly object _gate = new();
    private (ImmutableArray<PeerStatus> Peers, DateTimeOffset At)? _cache;

    public async Task<ImmutableArray<PeerStatus>> PeersAsync(bool fresh = false)
    {
        lock (_gate)
        {
            if (!fresh && _cache is { } c && time.GetUtcNow() - c.At < Freshness) return c.Peers;
        }

        var peers = await grains.GetTracker().GetPeersAsync().ConfigureAwait(false);
        lock (_gate) _cache = (peers, time.GetUtcNow());
        return peers;
    }

    /// <summary>The peer's <c>ip:port</c> on the seed protocol, or its name when it has no such port.</summary>
    public async Task<string> LegacyEndpointOfAsync(string peer)
    {
        if (string.IsNullOrEmpty(peer)) return peer;
        foreach (var status in await PeersAsync().ConfigureAwait(false))
            if (status.Name == peer) return SeedProtocolEndpoint.Of(status.Report) ?? peer;
        return peer;
    }

    /// <summary>Splits <c>ip:port</c> (IPv6 addresses keep their colons).</summary>
    public static (string Ip, int Port) Split(string? endpoint)
    {
        if (endpoint is null) return ("", 0);
        var colon = endpoint.LastIndexOf(':');
        return colon > 0 && int.TryParse(endpoint.AsSpan(colon + 1), out var port) ? (endpoint[..colon], port) : (endpoint, 0);
    }
}
