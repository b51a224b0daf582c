using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using P2PShare.Compute;
using P2PShare.Tests.Support;

namespace P2PShare.Tests.Compute;

/// <summary>Python tasks on 3 real silos with real Python workers, under the same scheduler as C#.</summary>
[Collection(SerialComputeCollection.Name)]
public sealed class PythonClusterTests
{
    private const string Square = "def main(x): return x * x";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);
    private const string Spin = "import time\ndef main(seconds):\n    until = time.time() + seconds\n    n = 0\n    while time.time() < until:\n        n += 1\n    return n\n";

    /// <param name="withoutPython">This peer gets a Python path that does not exist, so it has no Python runtime.</param>
    private static Task<PeerCluster> StartAsync(int slots = 2, string? withoutPython = null) =>
        PeerCluster.StartAsync(3, services =>
        {
            services.Configure<ComputeOptions>(o =>
            {
                o.Slots = slots;
                o.WarmWorkers = 1;
                o.MaxLiveWorkers = Math.Max(4, slots * 4);
            });
            if (withoutPython is not null)
            {
                services.AddOptions<ComputeOptions>().PostConfigure<ILocalSiloDetails>((o, silo) =>
                {
                    if (silo.Name == withoutPython) o.PythonPath = "/nonexistent/python3";
                });
            }
        });

    private static TaskSpec Python(string program, string args = "[]", bool confidential = false, string? on = null, double timeoutSeconds = 60, string submitter = "tester") =>
        new(program, null, args, confidential, TimeSpan.FromSeconds(timeoutSeconds), submitter, on, Language: TaskLanguages.Python);

    [Fact]
    public async Task Python_tasks_run_routed_and_confidential_ones_stay_home()
    {
        await using var peers = await StartAsync();
        var routed = await Task.WhenAll(Enumerable.Range(1, 12).Select(i => peers.Peer("peer-1").SubmitAsync(Python(Square, $"[{i}]"))));
        var done = await Task.WhenAll(routed.Select(j => JobWaits.TerminalAsync(peers, j.JobId, Patience)));
        Assert.All(done, j => Assert.Equal(JobStatus.Succeeded, j.Status));
        Assert.Equal(Enumerable.Range(1, 12).Select(i => (i * i).ToString()), done.Select(j => j.ResultJson));
        Assert.True(done.Select(j => j.ExecutedBy).Distinct().Count() > 1, "routed Python tasks spread over peers");

        var confidential = await Task.WhenAll(Enumerable.Range(1, 6).Select(i => peers.Peer("peer-2").SubmitAsync(Python(Square, $"[{i}]", confidential: true))));
        foreach (var job in await Task.WhenAll(confidential.Select(j => JobWaits.TerminalAsync(peers, j.JobId, Patience))))
        {
            Assert.Equal(JobStatus.Succeeded, job.Status);
            Assert.Equal("peer-2", job.ExecutedBy);
        }

        var failed = await JobWaits.TerminalAsync(peers, (await peers.Peer("peer-3").SubmitAsync(Python("def main():\n    return {}['missing']"))).JobId, Patience);
        Assert.Equal(JobStatus.Failed, failed.Status);
        Assert.Equal(TaskErrorKind.Exception, failed.ErrorKind);
        Assert.Contains("KeyError: 'missing'", failed.Error);
    }

    [Fact]
    public async Task An_endless_python_loop_is_killed_at_its_timeout_and_a_short_task_overtakes_long_ones()
    {
        await using var peers = await StartAsync(slots: 1);
        var peer = peers.Peer("peer-1");
        var loop = await peer.SubmitAsync(Python("def main():\n    while True:\n        pass", on: "peer-1", timeoutSeconds: 2));
        var ended = await JobWaits.TerminalAsync(peers, loop.JobId, Patience);
        Assert.Equal(JobStatus.TimedOut, ended.Status);
        Assert.InRange(ended.RunMs, 1900, 10_000);

        // Time slicing: two 10 s CPU-bound Python tasks hold the one slot; a short one still finishes promptly.
        Assert.Equal("1", (await JobWaits.TerminalAsync(peers, (await peer.SubmitAsync(Python(Square, "[1]", on: "peer-1"))).JobId, Patience)).ResultJson);
        var longOnes = new[]
        {
            await peer.SubmitAsync(Python(Spin, "[10]", on: "peer-1", submitter: "batch")),
            await peer.SubmitAsync(Python(Spin, "[10]", on: "peer-1", submitter: "batch")),
        };
        await Eventually.TrueAsync(async () => (await peers.Job(longOnes[1].JobId).GetAsync()).Status == JobStatus.Running,
            TimeSpan.FromSeconds(20), "both long tasks have started");
        var clock = Stopwatch.StartNew();
        var quick = await JobWaits.TerminalAsync(peers, (await peer.SubmitAsync(Python(Square, "[5]", on: "peer-1", submitter: "batch"))).JobId, Patience);
        clock.Stop();
        Assert.Equal("25", quick.ResultJson);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1.5), $"short task took {clock.Elapsed.TotalMilliseconds:0} ms");
        foreach (var job in longOnes) await peers.Job(job.JobId).CancelAsync();
    }

    [Fact]
    public async Task With_no_python_on_any_peer_a_python_task_is_refused_with_the_reason_and_CSharp_still_runs()
    {
        await using var peers = await PeerCluster.StartAsync(3, services => services.Configure<ComputeOptions>(o =>
        {
            o.Slots = 1;
            o.WarmWorkers = 1;
            o.PythonPath = "/nonexistent/python3";
        }));
        var reports = await peers.Tracker.GetPeersAsync();
        Assert.All(reports, p => Assert.Equal(["csharp"], p.Report.Runtimes.ToArray()));

        var refused = await Assert.ThrowsAsync<NoPeersAvailableException>(() => peers.Peer("peer-1").SubmitAsync(Python(Square, "[2]")));
        Assert.Contains("no live peer can run python tasks", refused.Message);
        var csharp = await JobWaits.TerminalAsync(peers, (await peers.Peer("peer-1").SubmitAsync(
            new TaskSpec("int main(int x) => x * x;", null, "[3]", false, null, "tester", null))).JobId, Patience);
        Assert.Equal("9", csharp.ResultJson);
    }

    [Fact]
    public async Task Python_tasks_go_only_to_peers_that_advertise_python()
    {
        await using var peers = await StartAsync(withoutPython: "peer-3");
        var reports = (await peers.Tracker.GetPeersAsync()).ToDictionary(p => p.Name, p => p.Report.Runtimes.ToArray());
        Assert.Equal(["csharp", "python"], reports["peer-1"]);
        Assert.Equal(["csharp"], reports["peer-3"]);

        var jobs = await Task.WhenAll(Enumerable.Range(0, 30).Select(i => peers.Peer("peer-3").SubmitAsync(Python(Square, $"[{i}]"))));
        var done = await Task.WhenAll(jobs.Select(j => JobWaits.TerminalAsync(peers, j.JobId, Patience)));
        Assert.All(done, j => Assert.Equal(JobStatus.Succeeded, j.Status));
        Assert.DoesNotContain("peer-3", done.Select(j => j.ExecutedBy));

        // C# tasks still use peer-3; Python pinned to it or confidential on it is refused with the reason.
        var csharp = await Task.WhenAll(Enumerable.Range(0, 30).Select(i => peers.Peer("peer-1").SubmitAsync(
            new TaskSpec("int main(int x) => x;", null, $"[{i}]", false, null, "tester", null))));
        var csharpDone = await Task.WhenAll(csharp.Select(j => JobWaits.TerminalAsync(peers, j.JobId, Patience)));
        Assert.Contains("peer-3", csharpDone.Select(j => j.ExecutedBy));
        var pinned = await Assert.ThrowsAsync<InvalidArgumentException>(() => peers.Peer("peer-1").SubmitAsync(Python(Square, "[2]", on: "peer-3")));
        Assert.Contains("cannot run python tasks", pinned.Message);
        Assert.Contains("/nonexistent/python3", pinned.Message);
        await Assert.ThrowsAsync<InvalidArgumentException>(() => peers.Peer("peer-3").SubmitAsync(Python(Square, "[2]", confidential: true)));
    }
}
