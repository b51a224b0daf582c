using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using P2PShare.Compute;
using P2PShare.Tests.Support;
using Xunit.Abstractions;

namespace P2PShare.Tests.Compute;

/// <summary>
/// The scheduler, the pool and real sandboxed workers driven with many trivial tasks, as the peer
/// drives them: every result must be right and workers must not be started per task. The figures
/// (tasks/s, CPU per task of this process and every worker from /proc) go to the test output and are
/// never asserted; <c>P2PSHARE_WORKER_BENCH_TASKS</c> makes the run longer for measuring.
/// </summary>
public sealed class WorkerThroughputTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static int Tasks(int normal) =>
        int.TryParse(Environment.GetEnvironmentVariable("P2PSHARE_WORKER_BENCH_TASKS"), CultureInfo.InvariantCulture, out var n) && n > 0 ? n : normal;

    private static ExecutionRequest Python(string program, int x)
    {
        var source = Encoding.UTF8.GetBytes(program);
        return new ExecutionRequest(Convert.ToHexStringLower(SHA256.HashData(source)), source, "main",
            string.Create(CultureInfo.InvariantCulture, $"[{x}]"), 1 << 20, 1 << 16, TaskLanguages.Python);
    }

    [Theory]
    [InlineData(1, 8)]
    [InlineData(16, 16)]
    [InlineData(64, 64)]
    public async Task Many_trivial_CSharp_tasks_all_succeed_and_workers_are_not_started_per_task(int submitters, int inFlight)
    {
        var compiled = new ProgramCompiler(NullLogger<ProgramCompiler>.Instance).Compile("int main(int x) => x * x;", null);
        var options = new ComputeOptions();
        var factory = new CountingFactory(new WorkerProcessFactory(Options.Create(options), NullLogger<WorkerProcessFactory>.Instance));
        Assert.True(factory.Unavailable is null, factory.Unavailable);
        await using var scheduler = new ComputeScheduler([factory], Options.Create(options), TimeProvider.System, NullLogger<ComputeScheduler>.Instance);
        ExecutionRequest Request(int x) => new(compiled.Hash, compiled.Assembly, compiled.Function,
            string.Create(CultureInfo.InvariantCulture, $"[{x}]"), 1 << 20, 1 << 16);

        // Warm up: every submitter's worker exists before measuring.
        await Drive(scheduler, submitters, submitters * 2, inFlight, Request);
        var startsBefore = factory.Starts;
        var tasks = Tasks(2000);
        var (elapsed, cpu) = await Drive(scheduler, submitters, tasks, inFlight, Request);

        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"C#: {tasks} tasks, {submitters} submitters, {inFlight} in flight, slots {options.Slots}: {tasks / elapsed.TotalSeconds:0} tasks/s, "
            + $"{cpu.TotalMicroseconds / tasks:0} us CPU a task (this process and its workers); worker starts while measuring {factory.Starts - startsBefore}"));
        // Bound per submitter, kept idle (frozen) between their tasks: never one start per task.
        Assert.True(factory.Starts - startsBefore <= submitters, $"{factory.Starts - startsBefore} workers started for {tasks} tasks of {submitters} submitters");
    }

    [Fact]
    public async Task Many_trivial_Python_tasks_of_one_submitter_all_succeed()
    {
        const string program = "def main(x):\n    return x * x\n";
        var options = new ComputeOptions();
        var factory = new CountingFactory(new PythonWorkerFactory(Options.Create(options), NullLogger<PythonWorkerFactory>.Instance));
        Assert.True(factory.Unavailable is null, factory.Unavailable);
        await using var scheduler = new ComputeScheduler([factory], Options.Create(options), TimeProvider.System, NullLogger<ComputeScheduler>.Instance);

        // One submitter, eight at a time: what the seed-protocol gateway sends (it acts as one identity).
        await Drive(scheduler, 1, 50, 8, x => Python(program, x));
        var tasks = Tasks(500);
        var (elapsed, cpu) = await Drive(scheduler, 1, tasks, 8, x => Python(program, x));

        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Python: {tasks} tasks, 1 submitter, 8 in flight, slots {options.Slots}: {tasks / elapsed.TotalSeconds:0} tasks/s, "
            + $"{cpu.TotalMicroseconds / tasks:0} us CPU a task (this process, zygotes and their tasks); zygote starts {factory.Starts}"));
    }

    /// <summary>Runs <paramref name="tasks"/> tasks spread over submitters, <paramref name="inFlight"/> at once; checks every result.</summary>
    private static async Task<(TimeSpan Elapsed, TimeSpan Cpu)> Drive(ComputeScheduler scheduler, int submitters, int tasks, int inFlight,
        Func<int, ExecutionRequest> request)
    {
        var self = Environment.ProcessId;
        var cpuBefore = ProcessCpu.OfTreeWithReaped(self);
        var watch = Stopwatch.StartNew();
        var next = -1;
        var lanes = Enumerable.Range(0, inFlight).Select(lane => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < tasks)
            {
                var x = i % 1000;
                var outcome = await scheduler.Submit($"submitter-{i % submitters}", request(x), Timeout).Completion.WaitAsync(Deadline);
                Assert.True(outcome.Status == JobStatus.Succeeded, $"task {i}: {outcome.Status} {outcome.Result.Error}");
                Assert.Equal((x * x).ToString(CultureInfo.InvariantCulture), outcome.Result.ResultJson);
            }
        }));
        await Task.WhenAll(lanes);
        var elapsed = watch.Elapsed;
        return (elapsed, ProcessCpu.OfTreeWithReaped(self) - cpuBefore);
    }

    /// <summary>A real factory, counting the workers it started.</summary>
    private sealed class CountingFactory(IWorkerFactory inner) : IWorkerFactory
    {
        private int _starts;

        public int Starts => Volatile.Read(ref _starts);

        public string Language => inner.Language;

        public string? Unavailable => inner.Unavailable;

        public int? RecycleAfterPrograms => inner.RecycleAfterPrograms;

        public Task<IWorker> StartAsync(CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _starts);
            return inner.StartAsync(cancellationToken);
        }
    }
}
