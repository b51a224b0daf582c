using System.Collections.Immutable;
using P2PShare.Hosting;

namespace P2PShare.Tracker;

/// <summary>
/// The registry of live peers. Soft state only: every report is a peer's complete picture, so after
/// this grain's silo dies it reactivates elsewhere on the next report and is whole again within one
/// report interval. A peer leaves the registry when it unregisters, when it misses
/// <see cref="TrackerOptions.MissedReportsLimit"/> report intervals, or as soon as Orleans membership
/// declares its silo dead. The tracker never calls peers, so reports can't deadlock against it.
/// </summary>
public sealed partial class TrackerGrain(
    IClusterMembershipService membership,
    IOptions<TrackerOptions> options,
    TimeProvider time,
    ILogger<TrackerGrain> logger) : Grain, ITrackerGrain
{
    private const int MaxRememberedDepartures = 1024;

    private readonly Dictionary<string, Entry> _peers = new(StringComparer.Ordinal);
    // Silo instances that left or died; a late one-way report from them must not resurrect them.
    private readonly HashSet<SiloAddress> _departed = [];
    private readonly Queue<SiloAddress> _departedOrder = new();
    private readonly CancellationTokenSource _stopping = new();

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        LogActivated(RuntimeIdentity);
        ForgetDeadSilos(membership.CurrentSnapshot);
        _ = WatchMembershipAsync(_stopping.Token);
        var period = TimeSpan.FromMilliseconds(Math.Max(100, options.Value.ReportInterval.TotalMilliseconds / 2));
        this.RegisterGrainTimer(PruneSilentPeers, period, period);
        return Task.CompletedTask;
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _stopping.Cancel();
        return Task.CompletedTask;
    }

    public Task RegisterAsync(LoadReport report)
    {
        Accept(report);
        return Task.CompletedTask;
    }

    public Task ReportAsync(LoadReport report)
    {
        Accept(report);
        return Task.CompletedTask;
    }

    public Task UnregisterAsync(string peer, SiloAddress silo)
    {
        RememberDeparture(silo);
        if (_peers.TryGetValue(peer, out var entry) && entry.Report.Silo.Equals(silo))
        {
            _peers.Remove(peer);
            LogRemoved(peer, "unregistered");
        }

        return Task.CompletedTask;
    }

    public Task<string> PickPeerAsync(PickRequest request)
    {
        var now = Now();
        Entry? best = null;
        var ties = 0;
        foreach (var entry in _peers.Values)
        {
            if (request.Exclude.Contains(entry.Report.Peer) || IsSilent(entry, now)) continue;
            var load = entry.EffectiveLoad;
            if (best is null || load < best.EffectiveLoad - 1e-9)
            {
                best = entry;
                ties = 1;
            }
            else if (Math.Abs(load - best.EffectiveLoad) <= 1e-9 && Random.Shared.Next(++ties) == 0)
            {
                // Reservoir choice among equals, so equal peers share work without a fixed order.
                best = entry;
            }
        }

        if (best is null)
            throw new NoPeersAvailableException(_peers.Count == 0
                ? "no peers are registered with the tracker"
                : "no live peer fits the request");

        best.AssignedSinceReport++;
        return Task.FromResult(best.Report.Peer);
    }

    public Task<ImmutableArray<PeerStatus>> GetPeersAsync()
    {
        var now = Now();
        return Task.FromResult(_peers.Values
            .Where(e => !IsSilent(e, now))
            .OrderBy(e => e.Report.Peer, StringComparer.Ordinal)
            .Select(e => e.ToStatus())
            .ToImmutableArray());
    }

    private void Accept(LoadReport report)
    {
        if (_departed.Contains(report.Silo)) return;
        if (membership.CurrentSnapshot.GetSiloStatus(report.Silo) == SiloStatus.Dead)
        {
            RememberDeparture(report.Silo);
            return;
        }

        var now = Now();
        if (_peers.TryGetValue(report.Peer, out var entry))
        {
            if (!entry.Report.Silo.Equals(report.Silo))
            {
                // Same name, new silo instance: the peer restarted. Keep the newer generation.
                if (report.Silo.Generation < entry.Report.Silo.Generation) return;
                RememberDeparture(entry.Report.Silo);
                entry = new Entry(report, now);
                _peers[report.Peer] = entry;
                LogRegistered(report.Peer, report.Silo.ToString());
                return;
            }

            if (report.Sequence < entry.Report.Sequence) return; // reordered one-way message
            entry.Report = report;
            entry.LastReportUtc = now;
            entry.AssignedSinceReport = 0;
            return;
        }

        _peers[report.Peer] = new Entry(report, now);
        LogRegistered(report.Peer, report.Silo.ToString());
    }

    private Task PruneSilentPeers()
    {
        var now = Now();
        foreach (var entry in _peers.Values.Where(e => IsSilent(e, now)).ToList())
        {
            _peers.Remove(entry.Report.Peer);
            LogRemoved(entry.Report.Peer, "missed its load reports");
        }

        return Task.CompletedTask;
    }

    private async Task WatchMembershipAsync(CancellationToken cancellation)
    {
        try
        {
            // Runs on this grain's scheduler (started from grain code), so it may touch _peers.
            await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(cancellation))
                ForgetDeadSilos(snapshot);
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception ex)
        {
            LogMembershipWatchFailed(ex);
        }
    }

    private void ForgetDeadSilos(ClusterMembershipSnapshot snapshot)
    {
        foreach (var member in snapshot.Members.Values)
        {
            if (member.Status != SiloStatus.Dead) continue;
            RememberDeparture(member.SiloAddress);
            var victim = _peers.Values.FirstOrDefault(e => e.Report.Silo.Equals(member.SiloAddress));
            if (victim is null) continue;
            _peers.Remove(victim.Report.Peer);
            LogRemoved(victim.Report.Peer, "its silo was declared dead");
        }
    }

    private void RememberDeparture(SiloAddress silo)
    {
        if (!_departed.Add(silo)) return;
        _departedOrder.Enqueue(silo);
        if (_departedOrder.Count > MaxRememberedDepartures) _departed.Remove(_departedOrder.Dequeue());
    }

    private bool IsSilent(Entry entry, DateTime now) =>
        now - entry.LastReportUtc > entry.Report.ReportInterval * options.Value.MissedReportsLimit;

    private DateTime Now() => time.GetUtcNow().UtcDateTime;

    [LoggerMessage(Level = LogLevel.Information, Message = "Tracker activated on {Silo}")]
    private partial void LogActivated(string silo);

    [LoggerMessage(Level = LogLevel.Information, Message = "Peer {Peer} registered from silo {Silo}")]
    private partial void LogRegistered(string peer, string silo);

    [LoggerMessage(Level = LogLevel.Information, Message = "Peer {Peer} removed: {Reason}")]
    private partial void LogRemoved(string peer, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Membership watch stopped")]
    private partial void LogMembershipWatchFailed(Exception ex);

    private sealed class Entry(LoadReport report, DateTime now)
    {
        public LoadReport Report { get; set; } = report;
        public DateTime LastReportUtc { get; set; } = now;
        public DateTime RegisteredUtc { get; } = now;
        public int AssignedSinceReport { get; set; }

        public double EffectiveLoad => ToStatus().EffectiveLoad;

        public PeerStatus ToStatus() => new(Report, LastReportUtc, RegisteredUtc, AssignedSinceReport);
    }
}
