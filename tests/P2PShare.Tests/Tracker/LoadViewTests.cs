using System.Collections.Immutable;
using System.Net;
using Orleans.Runtime;
using P2PShare.Compute;
using P2PShare.Tracker;

namespace P2PShare.Tests.Tracker;

/// <summary>The silo's local copy of the tracker's table, which the fast path routes by.</summary>
public sealed class LoadViewTests
{
    private static PeerStatus Peer(string name, int port, int running = 0, int queued = 0, int slots = 2, string[]? runtimes = null) =>
        new(new LoadReport(name, SiloAddress.New(new IPEndPoint(IPAddress.Loopback, port), 1), "127.0.0.1:1", slots, running, queued,
            0, 100, 0, 0, 100, 0, TimeSpan.FromSeconds(2), DateTime.UnixEpoch, DateTime.UnixEpoch, 1, 0)
        {
            Runtimes = runtimes is null ? [TaskLanguages.CSharp] : [.. runtimes],
        }, DateTime.UnixEpoch, DateTime.UnixEpoch, 0);

    [Fact]
    public void Burst_of_300_picks_from_one_origin_with_stale_equal_reports_is_spread_exactly()
    {
        var view = new LoadView();
        view.Update([Peer("p1", 1), Peer("p2", 2), Peer("p3", 3)]);
        var held = new List<LoadView.Reservation>();
        var counts = new Dictionary<string, int>();
        for (var i = 0; i < 300; i++)
        {
            var pick = view.Pick(TaskLanguages.CSharp, [], out _)!;
            held.Add(view.Reserve(pick));
            counts[pick] = counts.GetValueOrDefault(pick) + 1;
        }

        Assert.Equal(100, counts["p1"]);
        Assert.Equal(100, counts["p2"]);
        Assert.Equal(100, counts["p3"]);
        foreach (var r in held) r.Dispose();
        Assert.Equal(0, view.InFlight("p1"));
    }

    [Fact]
    public void Reported_work_counts_until_the_reservations_make_up_for_it()
    {
        var view = new LoadView();
        view.Update([Peer("busy", 1, running: 2, queued: 4), Peer("idle", 2)]);
        var first = Enumerable.Range(0, 6).Select(i =>
        {
            var pick = view.Pick(TaskLanguages.CSharp, [], out _)!;
            view.Reserve(pick);
            return pick;
        }).ToList();
        Assert.All(first, p => Assert.Equal("idle", p));
    }

    [Fact]
    public void Excluded_peers_and_peers_without_the_runtime_are_never_picked()
    {
        var view = new LoadView();
        view.Update([Peer("csharp-only", 1), Peer("both", 2, 0, 5, 2, [TaskLanguages.CSharp, TaskLanguages.Python]), Peer("lost", 3)]);
        for (var i = 0; i < 50; i++)
        {
            Assert.Equal("both", view.Pick(TaskLanguages.Python, [], out _));
            Assert.NotEqual("lost", view.Pick(TaskLanguages.CSharp, ["lost"], out _));
        }

        Assert.Null(view.Pick(TaskLanguages.Python, ["both"], out var why));
        Assert.Equal("no live peer can run python tasks (2 live peer(s) lack that runtime)", why);
    }

    [Fact]
    public void Nothing_is_picked_before_the_first_table()
    {
        var view = new LoadView();
        Assert.False(view.Known);
        Assert.Null(view.Pick(TaskLanguages.CSharp, [], out var why));
        Assert.Equal("no peers are registered with the tracker", why);
        view.Update(ImmutableArray<PeerStatus>.Empty);
        Assert.False(view.Known);
    }
}
