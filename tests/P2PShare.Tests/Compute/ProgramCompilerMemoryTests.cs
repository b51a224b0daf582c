using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using P2PShare.Compute;
using Xunit.Abstractions;

namespace P2PShare.Tests.Compute;

// Measures the whole process, so it runs alone: a cluster test beside it would count as growth.
[Collection(SerialComputeCollection.Name)]
public sealed class ProgramCompilerMemoryTests(ITestOutputHelper output)
{
    private const long Limit = 100 * 1024 * 1024;

    [Fact]
    public void A_thousand_distinct_programs_grow_the_process_by_less_than_100_MB()
    {
        var compiler = new ProgramCompiler(NullLogger<ProgramCompiler>.Instance);
        var watch = Stopwatch.StartNew();
        compiler.Compile("int main(int x) => x - 1;", null); // pays Roslyn's one-time warm-up
        var firstMs = watch.Elapsed.TotalMilliseconds;
        // The first ~100 compiles make the GC commit its working budget (~65 MB measured, kept as free
        // space and flat from then on); growth is measured past it, so the test sees leaks, not budget.
        for (var i = 0; i < 100; i++) compiler.Compile($"int warm{i}(int x) => x + {i};", null);

        var heapBefore = GC.GetTotalMemory(forceFullCollection: true);
        var workingSetBefore = WorkingSet();
        watch.Restart();
        for (var i = 0; i < 1000; i++)
            compiler.Compile($"int helper{i}(int x) => x * {i};\nint main(int x) {{ var s = new List<int>(); for (var j = 0; j < x; j++) s.Add(helper{i}(j)); return s.Sum(); }}", null);
        var distinctMs = watch.Elapsed.TotalMilliseconds / 1000;

        watch.Restart();
        for (var i = 0; i < 1000; i++)
            Assert.True(compiler.Compile($"int helper{i}(int x) => x * {i};\nint main(int x) {{ var s = new List<int>(); for (var j = 0; j < x; j++) s.Add(helper{i}(j)); return s.Sum(); }}", null).FromCache);
        var cachedUs = watch.Elapsed.TotalMicroseconds / 1000;

        var heapGrowth = GC.GetTotalMemory(forceFullCollection: true) - heapBefore;
        var workingSetGrowth = WorkingSet() - workingSetBefore;
        output.WriteLine($"first compile {firstMs:0} ms, distinct {distinctMs:0.0} ms each, cached {cachedUs:0.0} us each");
        output.WriteLine($"growth after 1000 programs: managed heap {heapGrowth / 1048576.0:0.0} MB, working set {workingSetGrowth / 1048576.0:0.0} MB, cache {compiler.CacheUsage.Bytes / 1048576.0:0.0} MB");

        Assert.Equal(1 + 100 + 1000, compiler.CompilationsRun);
        Assert.True(heapGrowth < Limit, $"managed heap grew by {heapGrowth / 1048576.0:0.0} MB");
        Assert.True(workingSetGrowth < Limit, $"working set grew by {workingSetGrowth / 1048576.0:0.0} MB");
    }

    private static long WorkingSet()
    {
        using var self = Process.GetCurrentProcess();
        return self.WorkingSet64;
    }
}
