using System.CommandLine;
using System.Globalization;
using P2PShare.Tracker;

namespace P2PShare.Cli.Commands;

/// <summary>One row of <c>peers --json</c>: the tracker's view of a peer, flattened for scripts.</summary>
public sealed record PeerView(
    string Name,
    string Gateway,
    string Silo,
    double CpuLoad,
    int Slots,
    int RunningTasks,
    int QueuedTasks,
    long MemoryUsed,
    long MemoryQuota,
    long MemoryKeys,
    long DiskUsed,
    long DiskQuota,
    long DiskFiles,
    DateTime StartedUtc,
    DateTime LastReportUtc,
    IReadOnlyList<string> Runtimes,
    string? LegacyEndpoint)
{
    public static PeerView From(PeerStatus s) => new(
        s.Name, s.Report.Gateway, s.Report.Silo?.ToString() ?? "", s.Report.CpuLoad,
        s.Report.Slots, s.Report.RunningTasks, s.Report.QueuedTasks,
        s.Report.MemoryUsed, s.Report.MemoryQuota, s.Report.MemoryKeys,
        s.Report.DiskUsed, s.Report.DiskQuota, s.Report.DiskFiles,
        s.Report.StartedUtc, s.LastReportUtc,
        s.Report.Runtimes.IsDefault ? [] : [.. s.Report.Runtimes], s.Report.LegacyEndpoint);
}

public static class PeersCommands
{
    public static Command Create(CommandRunner runner)
    {
        var command = new Command("peers", "List the peers the tracker knows, with their load and usage");
        command.SetAction((parse, ct) => runner.RunAsync(parse, ct, async ctx =>
        {
            var peers = await LoadAsync(ctx.Cluster).ConfigureAwait(false);
            if (ctx.Output.Json)
            {
                ctx.Output.WriteJson(peers);
                return;
            }

            Render(ctx.Output, peers);
        }));
        return command;
    }

    public static async Task<IReadOnlyList<PeerView>> LoadAsync(ClusterConnection cluster)
    {
        var statuses = await cluster.Tracker.GetPeersAsync().ConfigureAwait(false);
        return statuses.IsDefault
            ? []
            : statuses.Select(PeerView.From).OrderBy(p => p.Name, StringComparer.Ordinal).ToList();
    }

    private static void Render(Output output, IReadOnlyList<PeerView> peers)
    {
        if (peers.Count == 0)
        {
            output.Line("The tracker knows no peers yet.");
            return;
        }

        var now = DateTime.UtcNow;
        var table = Output.NewTable("Peer", "Gateway", "CPU load", "Memory", "Disk", "Runtimes", "Last report");
        foreach (var p in peers)
        {
            Output.AddRow(table,
                p.Name,
                p.Gateway,
                string.Create(CultureInfo.InvariantCulture,
                    $"{p.CpuLoad:0.00} ({p.RunningTasks} running, {p.QueuedTasks} queued, {p.Slots} slots)"),
                Output.Used(p.MemoryUsed, p.MemoryQuota),
                Output.Used(p.DiskUsed, p.DiskQuota),
                string.Join(", ", p.Runtimes),
                Output.Age(p.LastReportUtc, now));
        }

        output.WriteTable(table);
    }
}
