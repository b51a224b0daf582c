using System.Diagnostics.Metrics;
using P2PShare.Compute;
using P2PShare.Files;
using P2PShare.Memory;

namespace P2PShare.Telemetry;

/// <summary>
/// The peer's usage as observable gauges, read when a scrape asks: the same numbers its load reports
/// give the tracker. Registered once the silo starts, beside <see cref="P2PShareMetrics"/>, which
/// the stores and the scheduler depend on and which therefore cannot depend on them.
/// </summary>
public sealed class UsageGauges(P2PShareMetrics metrics, MemoryStore memory, FileStore files, ComputeScheduler scheduler)
    : ILifecycleParticipant<ISiloLifecycle>
{
    private int _registered;

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(UsageGauges), ServiceLifecycleStage.RuntimeInitialize, _ =>
        {
            Register();
            return Task.CompletedTask;
        });

    public void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 1) return;
        var meter = metrics.Meter;
        meter.CreateObservableUpDownCounter("p2pshare.memory.keys", () => memory.Usage.Keys, "{key}", "Keys in this peer's memory store");
        meter.CreateObservableUpDownCounter("p2pshare.memory.used", () => memory.Usage.UsedBytes, "By", "Bytes of keys and values in memory");
        meter.CreateObservableUpDownCounter("p2pshare.memory.quota", () => memory.QuotaBytes, "By", "Memory quota");
        // As in the load report: uploads in progress hold their quota too.
        meter.CreateObservableUpDownCounter("p2pshare.disk.used", () => DiskUsed(), "By", "Bytes of stored files plus uploads in progress");
        meter.CreateObservableUpDownCounter("p2pshare.disk.quota", () => files.QuotaBytes, "By", "Disk quota");
        meter.CreateObservableUpDownCounter("p2pshare.disk.files", () => files.Usage.Files, "{file}", "Files stored");
        meter.CreateObservableUpDownCounter("p2pshare.scheduler.queue.length", () => scheduler.Load.Queued, "{task}", "Tasks waiting for a slot");
        meter.CreateObservableUpDownCounter("p2pshare.scheduler.running", () => scheduler.Load.Running, "{task}", "Tasks started and not finished (running or paused)");
        meter.CreateObservableUpDownCounter("p2pshare.scheduler.slots", () => scheduler.Load.Slots, "{slot}", "Tasks this peer runs at once");
    }

    private long DiskUsed()
    {
        var (used, reserved, _) = files.Usage;
        return used + reserved;
    }
}
