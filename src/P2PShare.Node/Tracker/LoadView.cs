using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Runtime.CompilerServices;

namespace P2PShare.Tracker;

/// <summary>
/// This silo's copy of the tracker's load table, refreshed by every load report it sends (the answer
/// of <see cref="ITrackerGrain.ExchangeAsync"/>), plus the tasks this silo has sent to each peer and
/// not yet seen end. The fast path picks the executing peer here, so a task costs no tracker call.
/// </summary>
/// <remarks>
/// The table is at most one report gap old; what this silo sent since is counted by its own
/// reservations, so a burst from one origin spreads evenly instead of herding onto the peer that
/// looked least loaded at the last report. Tasks other origins sent meanwhile are seen at the next
/// report (and through the tracker's reservations, for detached jobs). Thread-safe: the table is
/// swapped whole, the counters are interlocked.
/// </remarks>
public sealed class LoadView
{
    private readonly ConcurrentDictionary<string, StrongBox<int>> _inFlight = new(StringComparer.Ordinal);
    // Never changed once published; replaced whole by each table.
    private volatile PeerStatus[] _peers = [];

    /// <summary>False until the first table arrived.</summary>
    public bool Known => _peers.Length > 0;

    /// <summary>The peers as last reported (without this silo's reservations).</summary>
    public ImmutableArray<PeerStatus> Peers => [.. _peers];

    /// <summary>Takes the tracker's table; peers missing from it are no longer picked.</summary>
    public void Update(ImmutableArray<PeerStatus> peers) => _peers = peers.IsDefault ? [] : [.. peers];

    /// <summary>Slots of every peer in the last table (a peer reporting none counts one, as routing does).</summary>
    public int TotalSlots
    {
        get
        {
            var total = 0;
            foreach (var peer in _peers) total += peer.Report.Slots <= 0 ? 1 : peer.Report.Slots;
            return total;
        }
    }

    /// <summary>Tasks this silo has sent to <paramref name="peer"/> and not seen end.</summary>
    public int InFlight(string peer) => _inFlight.TryGetValue(peer, out var box) ? Volatile.Read(ref box.Value) : 0;

    /// <summary>
    /// The live peer with the least load that can run <paramref name="language"/>, skipping
    /// <paramref name="exclude"/>; ties broken at random. Null (with why in <paramref name="whyNone"/>) when none fits.
    /// </summary>
    public string? Pick(string language, IReadOnlyCollection<string> exclude, out string? whyNone)
    {
        var peers = _peers;
        string? best = null;
        var bestLoad = double.MaxValue;
        var ties = 0;
        var wrongRuntime = 0;
        foreach (var peer in peers)
        {
            var name = peer.Name;
            if (exclude.Count > 0 && exclude.Contains(name)) continue;
            if (!peer.Report.CanRun(language))
            {
                wrongRuntime++;
                continue;
            }

            var load = Load(peer);
            if (load < bestLoad - 1e-9)
            {
                (best, bestLoad, ties) = (name, load, 1);
            }
            else if (Math.Abs(load - bestLoad) <= 1e-9 && Random.Shared.Next(++ties) == 0)
            {
                best = name; // reservoir choice among equals: no fixed order to herd on
            }
        }

        whyNone = best is not null ? null
            : peers.Length == 0 ? "no peers are registered with the tracker"
            : wrongRuntime > 0 && wrongRuntime + exclude.Count >= peers.Length ? $"no live peer can run {language} tasks ({wrongRuntime} live peer(s) lack that runtime)"
            : "no live peer fits the request";
        return best;
    }

    /// <summary>Counts a task sent to <paramref name="peer"/> until the returned reservation is disposed.</summary>
    public Reservation Reserve(string peer)
    {
        var box = _inFlight.GetOrAdd(peer, static _ => new StrongBox<int>());
        Interlocked.Increment(ref box.Value);
        return new Reservation(box);
    }

    /// <summary>Work per slot as routed by: reported running and queued, the tracker's reservations, and this silo's.</summary>
    private double Load(PeerStatus peer)
    {
        var report = peer.Report;
        var slots = report.Slots <= 0 ? 1 : report.Slots;
        return (double)(report.RunningTasks + report.QueuedTasks + peer.Reservations + InFlight(peer.Name)) / slots;
    }

    /// <summary>One task in flight to a peer; disposing it (once) ends the reservation.</summary>
    public readonly struct Reservation(StrongBox<int> box) : IDisposable
    {
        public void Dispose() => Interlocked.Decrement(ref box.Value);
    }
}
