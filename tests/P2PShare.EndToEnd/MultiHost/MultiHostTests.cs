using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using P2PShare.Compute;
using P2PShare.EndToEnd.Infrastructure;
using P2PShare.Tracker;
using Xunit;
using Xunit.Abstractions;

namespace P2PShare.EndToEnd.MultiHost;

/// <summary>
/// Three peers on three hosts (network namespaces on a bridge, deploy/netns/cluster.sh) clustered
/// through PostgreSQL, driven from the root namespace by the real CLI and by an Orleans client of
/// the test: hosts die (<c>kill -9</c>) or lose their network (<c>ip link set ... down</c>) and the
/// cluster must notice in time, lose no job and keep serving. The scenarios share one lab; each
/// first restores every peer. Measured times go to the test output.
/// </summary>
/// <remarks>In the end-to-end collection: one cluster at a time on a 2-core machine.</remarks>
[Collection(LocalClusterCollection.Name)]
public sealed class MultiHostTests(NetnsLab lab, ITestOutputHelper output) : IClassFixture<NetnsLab>
{
    private static readonly TimeSpan KilledPeerDeadline = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan CutPeerDeadline = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan RoutingDeadline = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan JobDeadline = TimeSpan.FromMinutes(3);
    private static readonly TimeSpan QuickCall = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Squares its input after a short busy loop (tens of milliseconds), so that a batch is still
    /// running when a peer dies and every result names the input it came from.
    /// </summary>
    private const string SquareProgram = """
        long main(long x)
        {
            long acc = x;
            for (var i = 0; i < 4_000_000; i++) acc = (acc * 31 + i) % 1_000_003;
            return acc < 0 ? -1 : x * x;
        }
        """;

    private const string QuickSquareProgram = "long main(long x) => x * x;";

    [RootFact]
    public async Task Cluster_forms_on_three_hosts_and_the_cli_in_the_root_namespace_sees_every_peer()
    {
        await lab.RestoreAsync();
        output.WriteLine($"lab up (bridge, 3 hosts, PostgreSQL, 3 peers live): {lab.UpTime.TotalSeconds:0.0} s");

        var result = await lab.CliAsync("peers", "--json");

        Assert.True(result.ExitCode == 0, result.ToString());
        using var json = JsonDocument.Parse(result.StdoutBytes);
        var peers = json.RootElement.EnumerateArray().ToDictionary(p => p.GetProperty("name").GetString()!);
        Assert.Equal(NetnsLab.PeerNames, peers.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, peer) in peers)
        {
            // Each peer advertises its own host's address: they really are on separate hosts.
            Assert.Equal($"{lab.AddressOf(name)}:30000", peer.GetProperty("gateway").GetString());
        }
    }

    [RootFact]
    public async Task Killing_a_peer_during_200_tasks_loses_none_and_it_leaves_peers_within_5_s()
    {
        await lab.RestoreAsync();
        const string victim = "peer-3";
        const string origin = "peer-1";
        var survivors = NetnsLab.PeerNames.Where(p => p != victim).ToArray();
        var batch = Stopwatch.StartNew();

        var jobs = new ConcurrentDictionary<string, long>();
        await Parallel.ForEachAsync(Enumerable.Range(0, 200), new ParallelOptions { MaxDegreeOfParallelism = 16 },
            async (x, _) =>
            {
                var job = await lab.Peer(origin).SubmitAsync(Routed(SquareProgram, $"[{x}]"));
                Assert.True(jobs.TryAdd(job.JobId, x), $"job id {job.JobId} handed out twice");
            });
        Assert.Equal(200, jobs.Count);

        // Mid-batch on the victim: it has finished some of its tasks and holds others.
        var victimGrain = lab.Peer(victim);
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var seen = (await victimGrain.ListJobsAsync(500).WaitAsync(QuickCall)).Jobs;
            if (seen.Any(j => j.Status == JobStatus.Succeeded) && seen.Any(j => !j.IsTerminal))
            {
                break;
            }

            Assert.True(deadline.Elapsed < JobDeadline, $"{victim} never had finished and unfinished tasks at once: {seen.Length} seen");
            await Task.Delay(50);
        }

        var killed = Stopwatch.StartNew();
        await lab.RunAsync("kill", victim);
        var left = await lab.WaitUntilTrackedAsync(survivors, KilledPeerDeadline, killed);

        var finished = await WaitAllAsync(jobs.Keys);
        output.WriteLine($"{victim} killed mid-batch: gone from peers after {left.TotalSeconds:0.00} s; " +
                         $"200 tasks finished {batch.Elapsed.TotalSeconds:0.0} s after submission began, " +
                         $"{finished.Count(j => j.Attempts.Length > 1)} re-run after the kill");

        var failures = finished.Where(j => j.Status != JobStatus.Succeeded).Select(Describe).ToArray();
        Assert.True(failures.Length == 0, $"{failures.Length} of 200 jobs did not succeed:\n{string.Join('\n', failures.Take(20))}");
        foreach (var job in finished)
        {
            var x = jobs[job.JobId];
            Assert.True(long.Parse(job.ResultJson!, CultureInfo.InvariantCulture) == x * x, $"input {x}: {Describe(job)}");
        }

        // No job lost and none counted twice: one result per input, every input once.
        Assert.Equal(Enumerable.Range(0, 200).Select(x => (long)x * x), finished.Select(j => jobs[j.JobId] * jobs[j.JobId]).Order());
        Assert.Equal(200, finished.Select(j => j.JobId).Distinct().Count());
        // The kill landed mid-batch: some tasks of the victim were re-run elsewhere.
        Assert.Contains(finished, j => j.Attempts.Length > 1 && j.Attempts.Any(a => a.Peer == victim) && j.ExecutedBy != victim);
        Assert.Equal(survivors, await lab.CliPeerNamesAsync());
    }

    [RootFact]
    public async Task Cut_peer_is_declared_dead_within_10_s_the_others_keep_serving_and_it_rejoins_after_heal_and_restart()
    {
        await lab.RestoreAsync();
        // Not the tracker's host: losing that is its own scenario.
        var trackerHost = await lab.Client.GetTracker().GetHostAsync().WaitAsync(QuickCall);
        var victim = new[] { "peer-3", "peer-2" }.First(p => p != trackerHost);
        var survivors = NetnsLab.PeerNames.Where(p => p != victim).ToArray();

        var cut = Stopwatch.StartNew();
        await lab.RunAsync("cut", victim);
        var declared = await lab.WaitUntilTrackedAsync(survivors, CutPeerDeadline, cut);
        output.WriteLine($"{victim} cut off: gone from peers after {declared.TotalSeconds:0.00} s");

        foreach (var peer in survivors)
        {
            await MemoryRoundTripAsync(peer);
        }

        await RunSquareAsync(12, "--origin", survivors[0]);
        Assert.Equal(survivors, await lab.CliPeerNamesAsync());

        await lab.RunAsync("heal", victim);
        var back = Stopwatch.StartNew();
        // Reconnected, the old process finds itself declared dead and aborts; restart stops what is
        // left of it and starts a new one.
        await lab.RunAsync("restart", victim);
        var rejoined = await lab.WaitUntilTrackedAsync(NetnsLab.PeerNames, TimeSpan.FromSeconds(30), back);
        output.WriteLine($"{victim} healed and restarted: listed again after {rejoined.TotalSeconds:0.0} s");

        Assert.Equal(NetnsLab.PeerNames, await lab.CliPeerNamesAsync());
        await MemoryRoundTripAsync(victim);
        await RunSquareAsync(7, "--origin", survivors[0], "--on", victim);
    }

    [RootFact]
    public async Task Killing_the_tracker_host_resumes_routing_within_10_s_with_a_correct_load_table()
    {
        await lab.RestoreAsync();
        var host = await lab.Client.GetTracker().GetHostAsync().WaitAsync(QuickCall);
        var survivors = NetnsLab.PeerNames.Where(p => p != host).ToArray();

        var killed = Stopwatch.StartNew();
        await lab.RunAsync("kill", host);
        var probes = new ProbeJobs(lab, survivors[0]);
        var routed = await probes.FirstSuccessAsync(killed, RoutingDeadline);
        var table = await lab.WaitUntilTrackedAsync(survivors, RoutingDeadline, killed);
        output.WriteLine($"tracker host {host} killed: a routed task succeeded after {routed.TotalSeconds:0.00} s, " +
                         $"load table = survivors after {table.TotalSeconds:0.00} s");

        var newHost = await lab.Client.GetTracker().GetHostAsync().WaitAsync(QuickCall);
        Assert.Contains(newHost, survivors);
        var rows = await lab.TrackedPeersAsync();
        Assert.NotNull(rows);
        Assert.Equal(survivors, rows.Select(r => r.Name).Order(StringComparer.Ordinal));
        foreach (var row in rows)
        {
            AssertSaneLoad(row);
        }

        // Every probe submitted while the tracker moved ends, and ends well; a burst afterwards
        // lands on the survivors only.
        var probeJobs = await WaitAllAsync(probes.JobIds);
        Assert.All(probeJobs, j => Assert.True(j.Status == JobStatus.Succeeded, Describe(j)));
        var burst = new List<string>();
        for (var x = 0; x < 6; x++)
        {
            burst.Add((await lab.Peer(survivors[1]).SubmitAsync(Routed(QuickSquareProgram, $"[{x}]"))).JobId);
        }

        Assert.All(await WaitAllAsync(burst), j =>
        {
            Assert.True(j.Status == JobStatus.Succeeded, Describe(j));
            Assert.Contains(j.ExecutedBy, survivors);
        });
    }

    [RootFact]
    public async Task Confidential_task_whose_origin_is_killed_ends_PeerLost_and_never_runs_elsewhere()
    {
        await lab.RestoreAsync();
        var trackerHost = await lab.Client.GetTracker().GetHostAsync().WaitAsync(QuickCall);
        var origin = new[] { "peer-2", "peer-3" }.First(p => p != trackerHost);
        var spec = new TaskSpec("async Task<int> main() { await Task.Delay(600_000); return 1; }", null, "[]",
            Confidential: true, Timeout: TimeSpan.FromMinutes(15), Submitter: "e2e-multihost", PinnedPeer: null);

        var submitted = await lab.Peer(origin).SubmitAsync(spec);
        var job = lab.Client.GetJob(submitted.JobId);
        var running = Stopwatch.StartNew();
        while ((await job.GetAsync().WaitAsync(QuickCall)).Status != JobStatus.Running)
        {
            Assert.True(running.Elapsed < TimeSpan.FromSeconds(30), "the confidential task never started");
            await Task.Delay(100);
        }

        var killed = Stopwatch.StartNew();
        await lab.RunAsync("kill", origin);
        JobInfo info;
        while (true)
        {
            info = await TryGetAsync(submitted.JobId) ?? submitted;
            if (info.IsTerminal)
            {
                break;
            }

            Assert.True(killed.Elapsed < TimeSpan.FromSeconds(30), $"still {info.Status} 30 s after its origin died: {Describe(info)}");
            await Task.Delay(100);
        }

        output.WriteLine($"confidential job on killed origin {origin}: {info.Status} after {killed.Elapsed.TotalSeconds:0.00} s");
        Assert.True(info.Status == JobStatus.PeerLost, Describe(info));
        Assert.Equal(origin, info.ExecutedBy);
        Assert.All(info.Attempts, a => Assert.Equal(origin, a.Peer));

        // The record is read through a surviving peer's gateway by the real CLI as well.
        var cli = await lab.CliAsync("job", "get", submitted.JobId, "--json");
        Assert.True(cli.ExitCode == 0, cli.ToString());
        using var json = JsonDocument.Parse(cli.StdoutBytes);
        Assert.Equal("PeerLost", json.RootElement.GetProperty("status").GetString());
    }

    private static TaskSpec Routed(string program, string argsJson) =>
        new(program, null, argsJson, Confidential: false, Timeout: null, Submitter: "e2e-multihost", PinnedPeer: null);

    private async Task<JobInfo?> TryGetAsync(string jobId)
    {
        try
        {
            return await lab.Client.GetJob(jobId).GetAsync().WaitAsync(QuickCall);
        }
        catch (Exception ex) when (ex is TimeoutException or OrleansException or SiloUnavailableException or PeerUnavailableException)
        {
            // The job's grain was on the dead silo and is moving: ask again.
            return null;
        }
    }

    /// <summary>Waits for every job to be terminal, in slices below Orleans' response timeout.</summary>
    private async Task<JobInfo[]> WaitAllAsync(IEnumerable<string> jobIds)
    {
        var watch = Stopwatch.StartNew();
        var results = new ConcurrentBag<JobInfo>();
        await Parallel.ForEachAsync(jobIds, new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (id, _) =>
        {
            while (true)
            {
                JobInfo? info = null;
                try
                {
                    info = await lab.Client.GetJob(id).WaitAsync(TimeSpan.FromSeconds(10)).WaitAsync(TimeSpan.FromSeconds(20));
                }
                catch (Exception ex) when (ex is TimeoutException or OrleansException or SiloUnavailableException or PeerUnavailableException)
                {
                    // The supervising grain's silo died: the next call reactivates it elsewhere.
                }

                if (info is { IsTerminal: true })
                {
                    results.Add(info);
                    return;
                }

                Assert.True(watch.Elapsed < JobDeadline,
                    $"job {id} not terminal after {watch.Elapsed.TotalSeconds:0} s: {(info is null ? "no answer" : Describe(info))}");
            }
        });
        return results.ToArray();
    }

    private async Task MemoryRoundTripAsync(string peer)
    {
        var key = $"multihost-{Guid.NewGuid():N}";
        var value = $"kept by {peer} {Guid.NewGuid()}";
        var set = await lab.CliAsync("mem", "set", key, value, "--peer", peer);
        Assert.True(set.ExitCode == 0, set.ToString());
        var get = await lab.CliAsync("mem", "get", key, "--peer", peer);
        Assert.True(get.ExitCode == 0, get.ToString());
        Assert.Equal(Encoding.UTF8.GetBytes(value), get.StdoutBytes);
    }

    /// <summary>Runs <c>x * x</c> through the real CLI (<c>run</c>) and checks the printed result.</summary>
    private async Task RunSquareAsync(long x, params string[] placement)
    {
        var run = await lab.CliAsync(["run", .. placement, "--code", QuickSquareProgram, "--args", $"[{x}]"]);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal((x * x).ToString(CultureInfo.InvariantCulture), run.Stdout.Trim());
    }

    private void AssertSaneLoad(PeerStatus row)
    {
        var report = row.Report;
        Assert.StartsWith(lab.AddressOf(row.Name) + ":", report.Gateway);
        Assert.True(report.Slots > 0, $"{row.Name}: {report}");
        Assert.True(report.MemoryQuota > 0 && report.MemoryUsed >= 0, $"{row.Name}: {report}");
        Assert.True(report.DiskQuota > 0 && report.DiskUsed >= 0, $"{row.Name}: {report}");
        Assert.True(DateTime.UtcNow - row.LastReportUtc < TimeSpan.FromSeconds(10), $"{row.Name}: stale report {row.LastReportUtc:O}");
    }

    private static string Describe(JobInfo j) =>
        $"{j.JobId} {j.Status} on {j.ExecutedBy} result={j.ResultJson} error={j.ErrorKind}: {j.Error} " +
        $"attempts=[{string.Join("; ", j.Attempts.Select(a => $"#{a.Number} {a.Peer} {a.Status} {a.Note}"))}]";

    /// <summary>
    /// Submits a routed (non-confidential, unpinned) task every quarter second through one peer
    /// until one succeeds: the time that takes after a failure is when routing has resumed.
    /// Every submitted probe is kept, so the test can check that none of them is lost.
    /// </summary>
    private sealed class ProbeJobs(NetnsLab lab, string origin)
    {
        private readonly ConcurrentBag<string> _ids = [];

        public IEnumerable<string> JobIds => _ids;

        public async Task<TimeSpan> FirstSuccessAsync(Stopwatch since, TimeSpan timeout)
        {
            using var stop = new CancellationTokenSource();
            var succeeded = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
            var followers = new List<Task>();
            var x = 100;
            while (!succeeded.Task.IsCompleted && since.Elapsed < timeout)
            {
                var input = x++;
                followers.Add(SubmitAndFollowAsync(input, since, succeeded, stop.Token));
                await Task.WhenAny(succeeded.Task, Task.Delay(250));
            }

            stop.Cancel();
            await Task.WhenAll(followers);
            Assert.True(succeeded.Task.IsCompleted, $"no routed task succeeded within {timeout.TotalSeconds:0} s\n{lab.PeerLogs()}");
            return await succeeded.Task;
        }

        private async Task SubmitAndFollowAsync(long x, Stopwatch since, TaskCompletionSource<TimeSpan> succeeded, CancellationToken stop)
        {
            try
            {
                var job = await lab.Peer(origin).SubmitAsync(Routed(QuickSquareProgram, $"[{x}]")).WaitAsync(QuickCall, stop);
                _ids.Add(job.JobId);
                while (!stop.IsCancellationRequested)
                {
                    var info = await lab.Client.GetJob(job.JobId).WaitAsync(TimeSpan.FromSeconds(1)).WaitAsync(QuickCall, stop);
                    if (info.Status == JobStatus.Succeeded && info.ResultJson == (x * x).ToString(CultureInfo.InvariantCulture))
                    {
                        succeeded.TrySetResult(since.Elapsed);
                        return;
                    }

                    if (info.IsTerminal)
                    {
                        return;
                    }
                }
            }
            catch (Exception ex) when (ex is TimeoutException or OperationCanceledException or OrleansException
                                           or SiloUnavailableException or P2PShareException)
            {
                // Not yet: the next probe tries again. A probe accepted before this is still checked.
            }
        }
    }
}
