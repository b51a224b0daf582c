using System.Diagnostics;
using P2PShare.EndToEnd.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace P2PShare.EndToEnd;

/// <summary>
/// Real peer processes in postgres clustering mode: they find each other through the database,
/// the CLI finds them through the database, and a killed peer leaves routing quickly.
/// </summary>
[Collection(LocalClusterCollection.Name)]
public sealed class PostgresClusterTests(PostgresCluster cluster, ITestOutputHelper output) : IClassFixture<PostgresCluster>
{
    private static readonly TimeSpan LeaveDeadline = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan DeadDeadline = TimeSpan.FromSeconds(10);

    [PostgresFact]
    public async Task Peers_join_through_the_database_and_a_killed_peer_is_gone_from_peers_within_5_s()
    {
        var members = await cluster.MembershipAsync();
        Assert.All(cluster.PeerNames, name => Assert.Equal(3, members.GetValueOrDefault(name)));

        await cluster.CliEventuallyAsync(r => r.ExitCode == 0, "status", "--peer", "pg-peer-1");

        var killedAtUtc = DateTime.UtcNow;
        cluster.Peer("pg-peer-3").Kill();
        var sinceKill = Stopwatch.StartNew();
        var declaredDead = WhenDeadInTableAsync("pg-peer-3", sinceKill);

        // `peers` must not list the dead peer in any call made from 5 s on. A call reads the tracker
        // at some moment between its start and its end, so a call that started before the deadline
        // may still list it; one that started after may not. Calls take 1-2 s, so poll back to back.
        var survivors = new[] { "pg-peer-1", "pg-peer-2" };
        var calls = new List<string>();
        string gone;
        while (true)
        {
            var callStart = sinceKill.Elapsed;
            var result = await cluster.CliAsync("peers", "--json");
            var callEnd = sinceKill.Elapsed;
            var listed = PostgresCluster.PeerNamesIn(result);
            calls.Add($"{callStart.TotalSeconds:0.00}-{callEnd.TotalSeconds:0.00}s: " +
                      (listed is null ? $"exit {result.ExitCode} {result.Stderr.Trim()}" : string.Join(",", listed)));
            if (listed is not null && listed.SequenceEqual(survivors))
            {
                gone = $"first `peers` without it ran {callStart.TotalSeconds:0.00}-{callEnd.TotalSeconds:0.00}s after the kill";
                break;
            }

            Assert.True(callStart < LeaveDeadline,
                $"`peers` calls after the kill:\n{string.Join('\n', calls)}\n{cluster.Logs()}");
        }

        // Orleans declared the silo dead in the membership table (watched since the kill).
        var deadAfter = await declaredDead;

        output.WriteLine($"`peers` calls after the kill: {string.Join("; ", calls)}");
        output.WriteLine($"kill -9 of pg-peer-3: {gone}; the tracker removed it {TrackerRemoval(killedAtUtc)}; " +
                         $"Dead in the membership table {deadAfter.TotalSeconds:0.00}s after the kill (polled every 50 ms)");

        // The survivors keep serving; the dead peer is reported unavailable in one line.
        // (Eventually: on this shared 2-core machine a CLI may miss its 8 s connect deadline.)
        await cluster.CliEventuallyAsync(r => r.ExitCode == 0, "mem", "set", "after-kill", "still here", "--peer", "pg-peer-2");
        var dead = await cluster.CliEventuallyAsync(r => r.ExitCode == 5 && r.Stderr.Contains("pg-peer-3", StringComparison.Ordinal),
            "mem", "get", "after-kill", "--peer", "pg-peer-3");
        Assert.Single(dead.StderrLines);
        Assert.Contains("unavailable", dead.Stderr);
    }

    /// <summary>Polls the membership table from the kill on until the silo's row says Dead.</summary>
    private async Task<TimeSpan> WhenDeadInTableAsync(string peer, Stopwatch sinceKill)
    {
        while (true)
        {
            if ((await cluster.MembershipAsync()).GetValueOrDefault(peer) == 6)
            {
                return sinceKill.Elapsed;
            }

            Assert.True(sinceKill.Elapsed < DeadDeadline, $"{peer} not Dead in the membership table after {DeadDeadline.TotalSeconds:0}s");
            await Task.Delay(50);
        }
    }

    /// <summary>
    /// When the tracker logged "Peer pg-peer-3 removed", relative to the kill (peers log UTC times
    /// of day); "after it reactivated" when the tracker lived on the killed peer and so never did.
    /// </summary>
    private string TrackerRemoval(DateTime killedAtUtc)
    {
        foreach (var name in new[] { "pg-peer-1", "pg-peer-2" })
        {
            foreach (var line in cluster.Peer(name).Output.ToString().Split('\n'))
            {
                if (line.Contains("Peer pg-peer-3 removed", StringComparison.Ordinal)
                    && TimeSpan.TryParseExact(line.Split(' ')[0], @"hh\:mm\:ss\.fff", null, out var at))
                {
                    var after = (at - killedAtUtc.TimeOfDay + TimeSpan.FromDays(1)).TotalSeconds % 86400;
                    return $"{after:0.00}s after the kill";
                }
            }
        }

        return "when it reactivated on a survivor (it lived on the killed peer)";
    }
}

/// <summary>Failures a user causes with a wrong database setting: one line, the documented exit code.</summary>
public sealed class PostgresSettingsErrorTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    public Task InitializeAsync() => PostgresCluster.BuildOnceAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Cli_with_an_unreachable_database_says_so_in_one_line_with_exit_5()
    {
        var port = FreePorts.PickBases(1).SiloBase;
        var result = await ProcessRunner.RunAsync("dotnet",
            [RepoPaths.CliDll, "--db", $"Host=127.0.0.1;Port={port};Database=p2pshare;Username=p2pshare;Password=secret", "peers"],
            Timeout, NoClusteringEnvironment());

        Assert.True(result.ExitCode == 5, result.ToString());
        var line = Assert.Single(result.StderrLines);
        Assert.StartsWith($"error: cannot reach the cluster at database 127.0.0.1:{port}/p2pshare:", line);
        Assert.DoesNotContain("secret", line);
    }

    [Fact]
    public async Task Peer_with_an_unreachable_database_says_so_in_one_line_with_exit_1()
    {
        var port = FreePorts.PickBases(1).SiloBase;
        var result = await ProcessRunner.RunAsync(RepoPaths.PeerHost,
            ["--name", "lonely", "--clustering", "postgres", "--db", $"Host=127.0.0.1;Port={port};Database=p2pshare;Username=p2pshare;Password=secret"],
            Timeout, NoClusteringEnvironment());

        Assert.True(result.ExitCode == 1, result.ToString());
        var line = Assert.Single(result.StderrLines);
        Assert.StartsWith($"p2pshare-peer: peer 'lonely' failed: cannot reach the cluster database 127.0.0.1:{port}/p2pshare:", line);
    }

    [Theory]
    [InlineData(new[] { "--clustering", "postgres" }, "Clustering:ConnectionString is required")]
    [InlineData(new[] { "--clustering", "etcd" }, "Clustering:Mode 'etcd' is not one of: local, postgres")]
    [InlineData(new[] { "--clustering", "postgres", "--db", "Host=x", "--address", "not-an-ip" }, "Clustering:AdvertisedAddress 'not-an-ip' is not an IP address")]
    public async Task Peer_with_bad_clustering_settings_exits_2_with_one_line(string[] arguments, string expected)
    {
        var result = await ProcessRunner.RunAsync(RepoPaths.PeerHost, ["--name", "p", .. arguments], Timeout, NoClusteringEnvironment());

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains(expected, Assert.Single(result.StderrLines));
    }

    private static Dictionary<string, string?> NoClusteringEnvironment() => new()
    {
        ["P2PSHARE__CLUSTERING__MODE"] = null,
        ["P2PSHARE__CLUSTERING__CONNECTIONSTRING"] = null,
        ["P2PSHARE__CLUSTERING__ADVERTISEDADDRESS"] = null,
    };
}
