using Microsoft.Extensions.DependencyInjection;
using P2PShare.Compute;
using P2PShare.Tests.Support;

namespace P2PShare.Tests.Compute;

/// <summary>A peer starts its compiler ahead of the first C# task, so that task does not wait seconds for Roslyn.</summary>
[Collection(SerialComputeCollection.Name)]
public sealed class CompilerWarmUpTests
{
    [Fact]
    public async Task A_peer_starts_its_warm_compilers_before_any_task_and_the_first_task_uses_one()
    {
        await using var peers = await PeerCluster.StartAsync(1, services => services.Configure<ComputeOptions>(o => o.WarmCompilers = 1));
        var compiler = peers.Silo("peer-1").ServiceProvider.GetRequiredService<ProgramCompiler>();

        await Eventually.TrueAsync(() => Task.FromResult(compiler.CompilerProcessIds.Count == 1), TimeSpan.FromSeconds(60),
            "one compiler process runs before any task");
        var warm = compiler.CompilerProcessIds[0];

        var job = await peers.Peer("peer-1").SubmitAsync(new TaskSpec("int main() => 6 * 7;", null, "[]", false, null, "me", "peer-1"));
        var done = await JobWaits.TerminalAsync(peers, job.JobId, TimeSpan.FromSeconds(60));

        Assert.Equal("42", done.ResultJson);
        Assert.Equal([warm], compiler.CompilerProcessIds);
    }

    [Fact]
    public async Task With_no_warm_compilers_none_runs_until_a_program_needs_one()
    {
        await using var peers = await PeerCluster.StartAsync(1);
        var compiler = peers.Silo("peer-1").ServiceProvider.GetRequiredService<ProgramCompiler>();
        await peers.Tracker.GetPeersAsync();

        Assert.Empty(compiler.CompilerProcessIds);
    }
}
