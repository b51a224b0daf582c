using System.Text.Json;
using P2PShare.Compute;

namespace P2PShare.Legacy;

/// <summary>
/// The tracker port of the seed protocol: the cluster standing in for the original tracker.
/// REQUEST_CPU offers the least-loaded peer that speaks the seed protocol and runs Python: a
/// P2PShare peer with a seed-protocol port, or an original peer that registered here. Original peers
/// can register, update their load and unregister; P2PShare peers are known to the tracker already
/// and are listed alongside them.
/// </summary>
internal sealed class LegacyTrackerHandler(IGrainFactory grains, LegacyEndpoints endpoints) : ILegacyHandler
{
    private ILegacyRegistryGrain Registry => grains.GetLegacyRegistry();

    public Task<LegacyReply> HandleAsync(LegacyRequest request, CancellationToken cancellationToken) => request.Type switch
    {
        "REGISTER" => RegisterAsync(request, "REGISTERED"),
        "UPDATE_LOAD" => RegisterAsync(request, "LOAD_UPDATED"),
        "UNREGISTER" => UnregisterAsync(request),
        "REQUEST_CPU" => RequestCpuAsync(),
        "STATUS" => StatusAsync(),
        "PING" => Task.FromResult(LegacyReply.Pong),
        _ => Task.FromResult(LegacyReply.Error($"Unknown message type: {request.Type} (this tracker port answers REGISTER, UNREGISTER, UPDATE_LOAD, REQUEST_CPU, STATUS, PING)")),
    };

    private async Task<LegacyReply> RegisterAsync(LegacyRequest request, string status)
    {
        var ip = request.RequiredString("ip");
        if (ip.Length is 0 or > 255) throw new LegacyProtocolException($"'ip' of {request.Type} must be 1-255 characters");
        var port = request.RequiredPort();
        var load = request.OptionalNumber("cpu_load", 0, 1e9) ?? 0;
        // An update from a peer we lost (the registry moved with a dead silo) registers it again.
        var entry = await Registry.RegisterAsync(ip, port, load).ConfigureAwait(false);
        return LegacyReply.Status(status, w =>
        {
            w.WriteString("ip", entry.Ip);
            w.WriteNumber("port", entry.Port);
            w.WriteNumber("cpu_load", entry.CpuLoad);
        });
    }

    private async Task<LegacyReply> UnregisterAsync(LegacyRequest request)
    {
        var ip = request.RequiredString("ip");
        var port = request.RequiredPort();
        var removed = await Registry.UnregisterAsync(ip, port).ConfigureAwait(false);
        return LegacyReply.Status("UNREGISTERED", w =>
        {
            w.WriteString("ip", ip);
            w.WriteNumber("port", port);
            w.WriteBoolean("was_registered", removed);
        });
    }

    private async Task<LegacyReply> RequestCpuAsync()
    {
        var candidates = await CandidatesAsync(fresh: true).ConfigureAwait(false);
        if (candidates.Count == 0) return LegacyReply.Error("No peers available");
        var best = candidates.Min(c => c.Load);
        var ties = candidates.Where(c => c.Load <= best + 1e-9).ToList();
        var pick = ties[Random.Shared.Next(ties.Count)];
        return new LegacyReply("CPU_RESPONSE", w =>
        {
            w.WriteString("ip", pick.Ip);
            w.WriteNumber("port", pick.Port);
            w.WriteNumber("cpu_load", Math.Round(pick.Load, 4));
            if (pick.Name is not null) w.WriteString("peer", pick.Name);
        });
    }

    private async Task<LegacyReply> StatusAsync()
    {
        var candidates = await CandidatesAsync(fresh: false).ConfigureAwait(false);
        return LegacyReply.Status("OK", w =>
        {
            w.WriteNumber("peer_count", candidates.Count);
            w.WriteStartArray("peers");
            foreach (var c in candidates)
            {
                w.WriteStartObject();
                w.WriteString("ip", c.Ip);
                w.WriteNumber("port", c.Port);
                w.WriteNumber("cpu_load", Math.Round(c.Load, 4));
                w.WriteNumber("last_update", UnixSeconds(c.LastUpdateUtc));
                w.WriteNumber("registered_at", UnixSeconds(c.RegisteredUtc));
                w.WriteString("kind", c.Name is null ? "original" : "p2pshare");
                if (c.Name is not null) w.WriteString("peer", c.Name);
                w.WriteEndObject();
            }

            w.WriteEndArray();
        });
    }

    /// <summary>Seed-protocol peers that run Python: ours with a seed-protocol port, then the registered originals.</summary>
    private async Task<List<Candidate>> CandidatesAsync(bool fresh)
    {
        var list = new List<Candidate>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var peer in await endpoints.PeersAsync(fresh).ConfigureAwait(false))
        {
            if (SeedProtocolEndpoint.Of(peer.Report) is not { } endpoint || !peer.Report.CanRun(TaskLanguages.Python)) continue;
            var (ip, port) = LegacyEndpoints.Split(endpoint);
            if (seen.Add(endpoint)) list.Add(new Candidate(peer.Name, ip, port, peer.EffectiveLoad, peer.LastReportUtc, peer.RegisteredUtc));
        }

        foreach (var peer in await Registry.ListAsync().ConfigureAwait(false))
            if (seen.Add(peer.Endpoint)) list.Add(new Candidate(null, peer.Ip, peer.Port, peer.CpuLoad, peer.LastUpdateUtc, peer.RegisteredUtc));
        return list;
    }

    private static double UnixSeconds(DateTime utc) => Math.Round((utc - DateTime.UnixEpoch).TotalSeconds, 3);

    private sealed record Candidate(string? Name, string Ip, int Port, double Load, DateTime LastUpdateUtc, DateTime RegisteredUtc);
}
