using System.Net;
using Microsoft.Extensions.Time.Testing;
using Orleans.Runtime;
using P2PShare.Tracker;

namespace P2PShare.Tests.Tracker;

public sealed class PeerRegistryTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly PeerRegistry _registry;
    private long _sequence;

    public PeerRegistryTests() => _registry = new PeerRegistry(_time, missedReportsLimit: 3);

    private static SiloAddress Silo(int port, int generation = 1) =>
        SiloAddress.New(new IPEndPoint(IPAddress.Loopback, port), generation);

    private LoadReport Report(string peer, SiloAddress silo, int queued = 0, int slots = 2, long accepted = 0) => new(
        peer, silo, "127.0.0.1:1", slots, 0, queued, 0, 100, 0, 0, 100, 0,
        TimeSpan.FromSeconds(2), DateTime.UnixEpoch, _time.GetUtcNow().UtcDateTime, ++_sequence, accepted);

    [Fact]
    public void Burst_of_picks_with_stale_equal_reports_is_spread_exactly()
    {
        for (var i = 1; i <= 3; i++) _registry.Accept(Report($"p{i}", Silo(i)));
        var counts = Enumerable.Range(0, 300).Select(_ => _registry.Pick(PickRequest.Any))
            .GroupBy(p => p).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(100, counts["p1"]);
        Assert.Equal(100, counts["p2"]);
        Assert.Equal(100, counts["p3"]);
    }

    [Fact]
    public void Picks_fill_the_least_loaded_peer_first()
    {
        _registry.Accept(Report("busy", Silo(1), queued: 6));
        _registry.Accept(Report("idle", Silo(2), queued: 0));
        // idle needs 6 reservations before it is as loaded as busy.
        var first = Enumerable.Range(0, 6).Select(_ => _registry.Pick(PickRequest.Any)).ToList();
        Assert.All(first, p => Assert.Equal("idle", p));
    }

    [Fact]
    public void Reports_in_the_middle_of_a_burst_do_not_cause_a_herd()
    {
        for (var i = 1; i <= 3; i++) _registry.Accept(Report($"p{i}", Silo(i)));
        var picks = new List<string>();
        for (var i = 0; i < 300; i++)
        {
            picks.Add(_registry.Pick(PickRequest.Any));
            // p1 keeps reporting, but the tasks it was assigned have not reached it yet.
            if (i % 10 == 0) _registry.Accept(Report("p1", Silo(1)));
        }

        Assert.All(picks.GroupBy(p => p), g => Assert.Equal(100, g.Count()));
    }

    [Fact]
    public void Reservations_are_released_as_the_peer_acknowledges_tasks()
    {
        _registry.Accept(Report("a", Silo(1)));
        _registry.Accept(Report("b", Silo(2)));
        for (var i = 0; i < 10; i++) _registry.Pick(PickRequest.Any); // 5 each
        // a received 3 of its 5 and finished them: 2 are still on their way.
        _registry.Accept(Report("a", Silo(1), queued: 0, accepted: 3));
        var rows = _registry.Snapshot().ToDictionary(s => s.Name);
        Assert.Equal(2, rows["a"].Reservations);
        Assert.Equal(5, rows["b"].Reservations);
        Assert.Equal("a", _registry.Pick(PickRequest.Any));
    }

    [Fact]
    public void Reservations_that_are_never_acknowledged_expire()
    {
        _registry.Accept(Report("a", Silo(1)));
        _registry.Accept(Report("b", Silo(2)));
        for (var i = 0; i < 6; i++) _registry.Pick(new PickRequest(["b"])); // a: 6 reserved
        _time.Advance(PeerRegistry.ReservationLifetime + TimeSpan.FromSeconds(1));
        _registry.Accept(Report("a", Silo(1)));
        _registry.Accept(Report("b", Silo(2)));
        _registry.Pick(PickRequest.Any); // expires a's stale reservations before choosing
        Assert.Equal(1, _registry.Snapshot().Sum(s => s.Reservations));
    }

    [Fact]
    public void Silent_peer_is_not_picked_and_is_pruned()
    {
        _registry.Accept(Report("quiet", Silo(1)));
        _registry.Accept(Report("chatty", Silo(2)));
        _time.Advance(TimeSpan.FromSeconds(5));
        _registry.Accept(Report("chatty", Silo(2)));
        _time.Advance(TimeSpan.FromSeconds(2)); // quiet: 7 s > 3 x 2 s
        Assert.Equal("chatty", _registry.Pick(PickRequest.Any));
        Assert.Equal(["quiet"], _registry.PruneSilent());
        Assert.Equal(["chatty"], _registry.Snapshot().Select(s => s.Name));
    }

    [Fact]
    public void Late_report_from_a_departed_silo_does_not_resurrect_it()
    {
        var silo = Silo(1);
        _registry.Accept(Report("p", silo));
        Assert.Equal("p", _registry.MarkDeparted(silo));
        Assert.False(_registry.Accept(Report("p", silo)));
        Assert.Empty(_registry.Snapshot());
    }

    [Fact]
    public void Restarted_peer_replaces_its_old_silo_instance()
    {
        _registry.Accept(Report("p", Silo(1, generation: 1)));
        Assert.True(_registry.Accept(Report("p", Silo(1, generation: 2))));
        Assert.Equal(Silo(1, generation: 2), _registry.Snapshot().Single().Report.Silo);
        Assert.False(_registry.Accept(Report("p", Silo(1, generation: 1)))); // the old instance is gone for good
    }

    [Fact]
    public void Reordered_older_report_is_ignored()
    {
        var silo = Silo(1);
        var older = Report("p", silo, queued: 9);
        var newer = Report("p", silo, queued: 1);
        _registry.Accept(newer);
        _registry.Accept(older);
        Assert.Equal(1, _registry.Snapshot().Single().Report.QueuedTasks);
    }

    [Fact]
    public void No_peers_is_a_clear_error()
    {
        var ex = Assert.Throws<NoPeersAvailableException>(() => _registry.Pick(PickRequest.Any));
        Assert.Contains("no peers", ex.Message);
    }

    [Fact]
    public void Picks_for_a_language_go_only_to_peers_that_run_it()
    {
        _registry.Accept(Report("both", Silo(1)) with { Runtimes = ["csharp", "python"] });
        _registry.Accept(Report("csharp-only", Silo(2)) with { Runtimes = ["csharp"] });
        var python = Enumerable.Range(0, 20).Select(_ => _registry.Pick(new PickRequest([], "python"))).Distinct().ToList();
        Assert.Equal(["both"], python);
        // C# still spreads over both (the python picks above loaded "both").
        Assert.Equal("csharp-only", _registry.Pick(new PickRequest([], "csharp")));

        var ex = Assert.Throws<NoPeersAvailableException>(() => _registry.Pick(new PickRequest(["both"], "python")));
        Assert.Contains("no live peer can run python tasks", ex.Message);
    }
}
