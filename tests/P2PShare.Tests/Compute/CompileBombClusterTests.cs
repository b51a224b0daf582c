using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using P2PShare.Compute;
using P2PShare.Tests.Support;

namespace P2PShare.Tests.Compute;

/// <summary>A compile bomb on a real peer costs a compiler process, not the peer's answers.</summary>
[Collection(SerialComputeCollection.Name)]
public sealed class CompileBombClusterTests
{
    [Fact]
    public async Task While_a_compile_bomb_runs_the_peer_answers_memory_calls_promptly_and_runs_other_tasks()
    {
        await using var peers = await PeerCluster.StartAsync(1, services => services.Configure<ComputeOptions>(o =>
        {
            o.Slots = 1;
            o.WarmWorkers = 1;
            o.MaxLiveWorkers = 4;
            o.CompileTimeout = TimeSpan.FromSeconds(3);
            o.CompilerProcesses = 2;
        }));
        var peer = peers.Peer("peer-1");
        await peer.SetAsync("warm", [1], null);
        var warm = await peers.Job((await peer.SubmitAsync(Spec("int main(int x) => x + 1;", "[1]"))).JobId).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(JobStatus.Succeeded, warm.Status);

        var bomb = await peer.SubmitAsync(Spec(ProgramCompilerTests.CompileBomb(14), "[]"));
        var latencies = new List<double>();
        var watch = Stopwatch.StartNew();
        var normal = await peer.SubmitAsync(Spec("int main(int x) => x * 7;", "[6]"));
        while (watch.Elapsed < TimeSpan.FromSeconds(2.5))
        {
            var call = Stopwatch.StartNew();
            await peer.SetAsync("k", [2], null);
            Assert.Equal([2], await peer.GetAsync("k"));
            latencies.Add(call.Elapsed.TotalMilliseconds);
        }

        latencies.Sort();
        var p99 = latencies[(int)Math.Ceiling(latencies.Count * 0.99) - 1];
        Assert.True(p99 < 200, $"memory Set+Get p99 {p99:0.0} ms over {latencies.Count} calls during the bomb");

        var normalDone = await peers.Job(normal.JobId).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(JobStatus.Succeeded, normalDone.Status);
        Assert.Equal("42", normalDone.ResultJson);

        var bombDone = await peers.Job(bomb.JobId).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(JobStatus.Failed, bombDone.Status);
        Assert.Equal(TaskErrorKind.CompileError, bombDone.ErrorKind);
        Assert.Equal("CompileError: compilation took longer than 3 s", bombDone.Error);
    }

    private static TaskSpec Spec(string program, string args) =>
        new(program, null, args, false, TimeSpan.FromSeconds(60), "tester", "peer-1");
}
