using System.Collections.Immutable;

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
    ILocalSiloDetails silo,
    IOptions<TrackerOptions> options,
    TimeProvider time,
    ILogger<TrackerGrain> logger) : Grain, ITrackerGrain
{
    private readonly PeerRegistry _registry = new(time, options.Value.MissedReportsLimit);
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

    public Task<ImmutableArray<PeerStatus>> ExchangeAsync(LoadReport report)
    {
        Accept(report);
        return Task.FromResult(_registry.Snapshot());
    }

    public Task UnregisterAsync(string peer, SiloAddress silo)
    {
        if (_registry.MarkDeparted(silo) is { } removed) LogRemoved(removed, "unregistered");
        return Task.CompletedTask;
    }

    public Task<string> PickPeerAsync(PickRequest request) => Task.FromResult(_registry.Pick(request));

    public Task<ImmutableArray<PeerStatus>> GetPeersAsync() => Task.FromResult(_registry.Snapshot());

    public Task<string> GetHostAsync() => Task.FromResult(silo.Name);

    private void Accept(LoadReport report)
    {
        if (membership.CurrentSnapshot.GetSiloStatus(report.Silo) == SiloStatus.Dead)
        {
            _registry.MarkDeparted(report.Silo);
            return;
        }

        if (_registry.Accept(report)) LogRegistered(report.Peer, report.Silo.ToString());
    }

    private Task PruneSilentPeers()
    {
        foreach (var name in _registry.PruneSilent()) LogRemoved(name, "missed its load reports");
        return Task.CompletedTask;
    }

    private async Task WatchMembershipAsync(CancellationToken cancellation)
    {
        try
        {
            // Runs on this grain's scheduler (started from grain code), so it may touch the registry.
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
            if (member.Status == SiloStatus.Dead && _registry.MarkDeparted(member.SiloAddress) is { } removed)
                LogRemoved(removed, "its silo was declared dead");
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Tracker activated on {Silo}")]
    private partial void LogActivated(string silo);

    [LoggerMessage(Level = LogLevel.Information, Message = "Peer {Peer} registered from silo {Silo}")]
    private partial void LogRegistered(string peer, string silo);

    [LoggerMessage(Level = LogLevel.Information, Message = "Peer {Peer} removed: {Reason}")]
    private partial void LogRemoved(string peer, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Membership watch stopped")]
    private partial void LogMembershipWatchFailed(Exception ex);
}
