using System.Collections.Immutable;

namespace P2PShare.Legacy;

/// <inheritdoc cref="ILegacyRegistryGrain"/>
public sealed class LegacyRegistryGrain(IOptions<LegacyOptions> options, TimeProvider time) : Grain, ILegacyRegistryGrain
{
    private readonly Dictionary<string, ExternalPeer> _peers = new(StringComparer.Ordinal);

    public Task<ExternalPeer> RegisterAsync(string ip, int port, double cpuLoad)
    {
        var now = Now();
        var key = $"{ip}:{port}";
        var entry = _peers.TryGetValue(key, out var old)
            ? old with { CpuLoad = cpuLoad, LastUpdateUtc = now }
            : new ExternalPeer(ip, port, cpuLoad, now, now);
        _peers[key] = entry;
        return Task.FromResult(entry);
    }

    public Task<bool> UnregisterAsync(string ip, int port) => Task.FromResult(_peers.Remove($"{ip}:{port}"));

    public Task<ImmutableArray<ExternalPeer>> ListAsync()
    {
        var cutoff = Now() - options.Value.ExternalPeerTimeout;
        foreach (var stale in _peers.Values.Where(p => p.LastUpdateUtc < cutoff).Select(p => p.Endpoint).ToList())
            _peers.Remove(stale);
        return Task.FromResult(_peers.Values.OrderBy(p => p.Endpoint, StringComparer.Ordinal).ToImmutableArray());
    }

    private DateTime Now() => time.GetUtcNow().UtcDateTime;
}
