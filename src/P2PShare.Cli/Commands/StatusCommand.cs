using System.CommandLine;
using System.Globalization;
using P2PShare.Peers;
using P2PShare.Status;

namespace P2PShare.Cli.Commands;

/// <summary>A peer's description with its silo address as text, since scripts cannot use a SiloAddress.</summary>
public sealed record PeerDescriptionView(
    string Name,
    string Silo,
    string Gateway,
    long MemoryQuota,
    long MaxValueBytes,
    long DiskQuota,
    long MaxFileBytes,
    DateTime StartedUtc)
{
    public static PeerDescriptionView From(PeerDescription d) => new(
        d.Name, d.Silo?.ToString() ?? "", d.Gateway, d.MemoryQuota, d.MaxValueBytes, d.DiskQuota, d.MaxFileBytes, d.StartedUtc);
}

/// <param name="TrackerHost">The peer whose silo hosts the tracker now (it moves when that peer dies).</param>
public sealed record StatusView(ClusterSummary Cluster, string TrackerHost, PeerDescriptionView Origin);

public static class StatusCommand
{
    public static Command Create(CommandRunner runner)
    {
        var peerOption = CommonOptions.NewPeerOption();
        var command = new Command("status", "Summarize the cluster and describe the origin peer") { peerOption };
        command.SetAction((parse, ct) => runner.RunAsync(parse, ct, async ctx =>
        {
            var peers = await PeersCommands.LoadAsync(ctx.Cluster).ConfigureAwait(false);
            var trackerHost = await ctx.Cluster.Tracker.GetHostAsync().ConfigureAwait(false);
            var peerName = await ctx.PeerAsync(peerOption).ConfigureAwait(false);
            var description = await PeerCall.RunAsync(peerName, () => ctx.Cluster.Peer(peerName).DescribeAsync())
                .ConfigureAwait(false);
            var view = new StatusView(ClusterSummary.Of(peers), trackerHost, PeerDescriptionView.From(description));
            if (ctx.Output.Json)
            {
                ctx.Output.WriteJson(view);
                return;
            }

            Render(ctx.Output, view);
        }));
        return command;
    }

    private static void Render(Output output, StatusView view)
    {
        output.Line(SummaryLine(view.Cluster));
        var c = view.Cluster;
        var cluster = Output.NewTable("Cluster", "");
        Output.AddRow(cluster, "Peers alive", c.Peers.ToString(CultureInfo.InvariantCulture));
        Output.AddRow(cluster, "Memory", Output.Used(c.MemoryUsed, c.MemoryQuota));
        Output.AddRow(cluster, "Disk", Output.Used(c.DiskUsed, c.DiskQuota));
        Output.AddRow(cluster, "Tasks", $"{c.RunningTasks} running, {c.QueuedTasks} queued, {c.Slots} slots");
        Output.AddRow(cluster, "Tracker on", view.TrackerHost);
        output.WriteTable(cluster);

        var o = view.Origin;
        var origin = Output.NewTable("Origin peer", o.Name);
        Output.AddRow(origin, "Gateway", o.Gateway);
        Output.AddRow(origin, "Silo", o.Silo);
        Output.AddRow(origin, "Memory quota", Bytes.Format(o.MemoryQuota));
        Output.AddRow(origin, "Largest value", Bytes.Format(o.MaxValueBytes));
        Output.AddRow(origin, "Disk quota", Bytes.Format(o.DiskQuota));
        Output.AddRow(origin, "Largest file", Bytes.Format(o.MaxFileBytes));
        Output.AddRow(origin, "Started", $"{Output.Timestamp(o.StartedUtc)} ({Output.Age(o.StartedUtc, DateTime.UtcNow)})");
        output.WriteTable(origin);
    }

    /// <summary>The cluster in one line: what <c>status</c> prints first and <c>watch</c> heads its tables with.</summary>
    public static string SummaryLine(ClusterSummary c) => string.Create(CultureInfo.InvariantCulture,
        $"{c.Peers} {(c.Peers == 1 ? "peer" : "peers")} alive; tasks: {c.RunningTasks} running, {c.QueuedTasks} queued, {c.Slots} slots; " +
        $"memory {Output.Used(c.MemoryUsed, c.MemoryQuota)}; disk {Output.Used(c.DiskUsed, c.DiskQuota)}");
}
