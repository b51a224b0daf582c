using System.Collections.Immutable;

namespace P2PShare.Tracker;

/// <summary>
/// The tracker's bookkeeping, free of Orleans so it can be tested directly: who is registered, their
/// last reports, which silo instances have left, and least-loaded picking with reservations.
/// Not thread-safe; the tracker grain's single-threaded turns serialize access.
/// </summary>
public sealed class PeerRegistry(TimeProvider time, int missedReportsLimit)
{
    private const int MaxRememberedDepartures = 1024;

    /// <summary>
    /// A reservation the peer never acknowledges (the caller picked a peer and then did not send it
    /// anything) stops counting after this long, so stale picks cannot skew routing forever.
    /// </summary>
    public static readonly TimeSpan ReservationLifetime = TimeSpan.FromSeconds(10);

    private readonly Dictionary<string, Entry> _peers = new(StringComparer.Ordinal);
    // Silo instances that left or died; a late one-way report from them must not resurrect them.
    private readonly HashSet<SiloAddress> _departed = [];
    private readonly Queue<SiloAddress> _departedOrder = new();

    public int Count => _peers.Count;

    /// <summary>Applies a report. Returns true when it added a peer (first report or restarted silo).</summary>
    public bool Accept(LoadReport report)
    {
        if (_departed.Contains(report.Silo)) return false;
        var now = Now();
        if (_peers.TryGetValue(report.Peer, out var entry))
        {
            if (entry.Report.Silo.Equals(report.Silo))
            {
                if (report.Sequence < entry.Report.Sequence) return false; // reordered one-way message
                // Release only the reservations this report already shows as accepted work; picks the
                // peer has not received yet stay reserved, or a report mid-burst would invite a herd.
                var acknowledged = Math.Max(0, report.TasksAccepted - entry.Report.TasksAccepted);
                entry.Release(acknowledged);
                entry.Report = report;
                entry.LastReportUtc = now;
                return false;
            }

            // Same name, new silo instance: the peer restarted. Keep the newer generation.
            if (report.Silo.Generation < entry.Report.Silo.Generation) return false;
            MarkDeparted(entry.Report.Silo);
        }

        _peers[report.Peer] = new Entry(report, now);
        return true;
    }

    /// <summary>Forgets a silo instance for good. Returns the peer it served, if registered.</summary>
    public string? MarkDeparted(SiloAddress silo)
    {
        if (_departed.Add(silo))
        {
            _departedOrder.Enqueue(silo);
            if (_departedOrder.Count > MaxRememberedDepartures) _departed.Remove(_departedOrder.Dequeue());
        }

        var victim = _peers.Values.FirstOrDefault(e => e.Report.Silo.Equals(silo));
        if (victim is null) return null;
        _peers.Remove(victim.Report.Peer);
        return victim.Report.Peer;
    }

    /// <summary>Removes peers that missed too many reports; returns their names.</summary>
    public IReadOnlyList<string> PruneSilent()
    {
        var now = Now();
        var silent = _peers.Values.Where(e => IsSilent(e, now)).Select(e => e.Report.Peer).ToList();
        foreach (var name in silent) _peers.Remove(name);
        return silent;
    }

    /// <summary>
    /// The live peer with the least effective load, where effective load counts the picks handed to
    /// it that its reports do not show yet; ties are broken at random. The pick is reserved on that peer.
    /// </summary>
    public string Pick(PickRequest request)
    {
        var now = Now();
        Entry? best = null;
        var bestLoad = double.MaxValue;
        var ties = 0;
        var wrongRuntime = 0;
        foreach (var entry in _peers.Values)
        {
            if (request.Exclude.Contains(entry.Report.Peer) || IsSilent(entry, now)) continue;
            if (request.Language is { } language && !entry.Report.CanRun(language))
            {
                wrongRuntime++;
                continue;
            }

            entry.Expire(now - ReservationLifetime);
            var load = entry.ToStatus().EffectiveLoad;
            if (load < bestLoad - 1e-9)
            {
                (best, bestLoad, ties) = (entry, load, 1);
            }
            else if (Math.Abs(load - bestLoad) <= 1e-9 && Random.Shared.Next(++ties) == 0)
            {
                best = entry; // reservoir choice among equals: no fixed order to herd on
            }
        }

        if (best is null)
        {
            throw new NoPeersAvailableException(
                _peers.Count == 0 ? "no peers are registered with the tracker"
                : wrongRuntime > 0 ? $"no live peer can run {request.Language} tasks ({wrongRuntime} live peer(s) lack that runtime)"
                : "no live peer fits the request");
        }

        best.Reserve(now);
        return best.Report.Peer;
    }

    public ImmutableArray<PeerStatus> Snapshot()
    {
        var now = Now();
        return _peers.Values
            .Where(e => !IsSilent(e, now))
            .OrderBy(e => e.Report.Peer, StringComparer.Ordinal)
            .Select(e => e.ToStatus())
            .ToImmutableArray();
    }

    private bool IsSilent(Entry entry, DateTime now) =>
        now - entry.LastReportUtc > entry.Report.ReportInterval * missedReportsLimit;

    private DateTime Now() => time.GetUtcNow().UtcDateTime;

    private sealed class Entry(LoadReport report, DateTime now)
    {
        public LoadReport Report { get; set; } = report;
        public DateTime LastReportUtc { get; set; } = now;
        public DateTime RegisteredUtc { get; } = now;

        // Oldest first, so acknowledgements and expiry both remove from the front.
        private readonly Queue<DateTime> _reservations = new();

        public void Reserve(DateTime now) => _reservations.Enqueue(now);

        public void Release(long count)
        {
            for (var i = 0L; i < count && _reservations.Count > 0; i++) _reservations.Dequeue();
        }

        public void Expire(DateTime cutoff)
        {
            while (_reservations.Count > 0 && _reservations.Peek() < cutoff) _reservations.Dequeue();
        }

        public PeerStatus ToStatus() => new(Report, LastReportUtc, RegisteredUtc, _reservations.Count);
    }
}
