using System.CommandLine;
using System.Globalization;
using P2PShare.Status;
using Spectre.Console;

namespace P2PShare.Cli.Commands;

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
        return PeerView.FromAll(statuses);
    }

    private static void Render(Output output, IReadOnlyList<PeerView> peers)
    {
        if (peers.Count == 0)
        {
            output.Line("The tracker knows no peers yet.");
            return;
        }

        output.WriteTable(Table(peers, DateTime.UtcNow));
    }

    /// <summary>The peers table; also the top half of <c>watch</c>.</summary>
    public static Table Table(IReadOnlyList<PeerView> peers, DateTime nowUtc)
    {
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
                RuntimesCell(p),
                Output.Age(p.LastReportUtc, nowUtc));
        }

        return table;
    }

    /// <summary>
    /// The runtimes a peer offers, and how its tasks are walled off when that is not the kernel
    /// sandbox: "refusing tasks: WHY" for a peer that cannot build it, "(unsandboxed)" after the runtimes
    /// for a peer that opted out (Compute:Isolation=none).
    /// </summary>
    public static string RuntimesCell(PeerView peer)
    {
        var runtimes = string.Join(", ", peer.Runtimes);
        return peer.Sandbox switch
        {
            { } s when s.StartsWith("refusing tasks", StringComparison.Ordinal) => s,
            "unsandboxed" => runtimes.Length == 0 ? "unsandboxed" : $"{runtimes} (unsandboxed)",
            _ => runtimes,
        };
    }
}
