using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using P2PShare.Cli;
using P2PShare.Compute;
using P2PShare.Connecting;
using P2PShare.Peers;

namespace P2PShare.Benchmarks;

/// <summary>
/// The scenarios. Every figure is for the real path: tasks are submitted to a peer grain, routed by
/// the tracker and run in sandbox workers; memory goes through the peer grains; files through the CLI.
/// </summary>
internal sealed class Scenarios(ClusterConnection cluster, BenchOptions options)
{
    private const string Square = "int main(int x) => x * x;";
    private const string SquarePython = "def main(x): return x * x";
    private const int SequentialTasks = 200;
    private const int SequentialQuickTasks = 30;
    private const string Spin = """
        long main(double seconds)
        {
            var until = DateTime.UtcNow.AddSeconds(seconds);
            long n = 0;
            while (DateTime.UtcNow < until) n++;
            return n;
        }
        """;

    // A fixed amount of CPU-bound work: the result depends on every step, so the JIT cannot drop the loop.
    private const string Work = """
        long main(long n)
        {
            long x = 1;
            for (long i = 0; i < n; i++) x = x * 6364136223846793005L + i;
            return x;
        }
        """;

    private string[] _peers = [];
    private double? _idleMsPerSec;

    public async Task<List<JsonObject>> RunAsync(string scenario)
    {
        _peers = [.. (await cluster.Tracker.GetPeersAsync()).Select(p => p.Name).Order(StringComparer.Ordinal)];
        if (_peers.Length == 0) throw new InvalidOperationException("the tracker knows no peers");
        return scenario switch
        {
            "tasks" => await TasksVariantsAsync(),
            "batch" => [await BatchAsync()],
            "open" => [await OpenAsync()],
            "compile" => [await CompileAsync()],
            "balance" => [await BalanceAsync()],
            "fairness" => [await FairnessAsync()],
            "mem" => [await MemAsync(8), await MemAsync(50)],
            "redis" => await RedisAsync(),
            "file" => [await FileAsync()],
            "legacy" => [await LegacyAsync()],
            _ => throw new ArgumentException(scenario),
        };
    }

    private static TaskSpec Task(string program, string args, bool confidential = false, string submitter = "bench", string? on = null) =>
        new(program, null, args, confidential, TimeSpan.FromSeconds(120), submitter, on);

    /// <summary>
    /// Runs and waits as the CLI's attached <c>run</c> does: one fast-path call to the origin, which
    /// answers with the finished job, or with its Queued/Running record once the task outlived the
    /// peers' promotion threshold; such a job is then followed through its grain.
    /// </summary>
    private async Task<JobInfo> RunOneAsync(string origin, TaskSpec spec, CancellationToken giveUp = default)
    {
        var job = await cluster.Peer(origin).RunAsync(spec);
        if (!job.IsTerminal) job = await FollowAsync(cluster, job, giveUp);
        if (job.Status != JobStatus.Succeeded) throw new InvalidOperationException($"job {job.JobId} ended {job.Status}: {job.Error}");
        return job;
    }

    /// <summary>Follows a promoted (or detached) job through its grain until it ends.</summary>
    internal static async Task<JobInfo> FollowAsync(ClusterConnection cluster, JobInfo job, CancellationToken giveUp = default)
    {
        var handle = cluster.Client.GetJob(job.JobId);
        while (!job.IsTerminal)
        {
            if (giveUp.IsCancellationRequested)
            {
                // Given up on (the open scenario's drain limit): the job must not keep the cluster busy for the next scenario.
                await handle.CancelAsync();
                throw new OperationCanceledException(giveUp);
            }

            try
            {
                job = await handle.WaitAsync(giveUp.CanBeCanceled ? TimeSpan.FromMilliseconds(500) : CallLimits.WaitSlice);
            }
            catch (TimeoutException)
            {
                // As the CLI (JobCalls): on a crowded machine a long-poll's answer can outlast the
                // response timeout; the job goes on, so ask again.
            }
        }

        return job;
    }

    private async Task<List<JsonObject>> TasksVariantsAsync()
    {
        var lines = new List<JsonObject>();
        var first = options.Submitters[0];
        if (options.Variants.Contains("routed"))
        {
            foreach (var submitters in options.Submitters)
                lines.Add(await TasksAsync(TaskLanguages.CSharp, confidential: false, submitters, sequential: submitters == first));
        }

        if (options.Variants.Contains("confidential")) lines.Add(await TasksAsync(TaskLanguages.CSharp, confidential: true, first, sequential: true));
        if (options.Variants.Contains("python")) lines.Add(await TasksAsync(TaskLanguages.Python, confidential: false, first, sequential: true));
        return lines;
    }

    private async Task<JsonObject> TasksAsync(string language, bool confidential, int submitters, bool sequential)
    {
        var program = language == TaskLanguages.Python ? SquarePython : Square;
        TaskSpec Spec(string submitter, bool secret) => Task(program, "[7]", secret, submitter) with { Language = language };

        // Warm-up: every peer has compiled the program and has warm workers.
        foreach (var peer in _peers) await RunOneAsync(peer, Spec("bench", secret: true));
        var idleMsPerSec = await IdleCpuMsPerSecAsync();

        var variant = language == TaskLanguages.Python ? "python" : confidential ? "confidential" : "routed";
        // profile.sh waits for this line before it starts tracing, so the trace holds only the measured run.
        Console.Error.WriteLine($"p2pshare-bench: tasks {variant} at {submitters} submitters: measuring");
        var samples = new Samples();
        var next = -1;
        // A slow path (many submitters on a small machine) must not hold the whole suite up: no new
        // task starts after the limit, and the figures are over the tasks that ran.
        var limit = TimeSpan.FromSeconds(options.TasksSeconds);
        var before = CpuNow();
        var clock = Stopwatch.StartNew();
        await System.Threading.Tasks.Task.WhenAll(Enumerable.Range(0, submitters).Select(s => System.Threading.Tasks.Task.Run(async () =>
        {
            var origin = _peers[s % _peers.Length];
            // Distinct submitter names: fair sharing keeps one queue per submitter, as with real users.
            var name = $"bench-{submitters}-{s}";
            while (clock.Elapsed < limit && Interlocked.Increment(ref next) < options.Tasks)
            {
                var start = Stopwatch.GetTimestamp();
                await RunOneAsync(origin, Spec(name, confidential));
                samples.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
        })));
        clock.Stop();
        var ran = samples.Count;
        var after = CpuNow();
        Console.Error.WriteLine($"p2pshare-bench: tasks {variant} at {submitters} submitters: done");

        var line = new JsonObject
        {
            ["scenario"] = "tasks",
            ["language"] = language,
            ["confidential"] = confidential,
            ["submitters"] = submitters,
            ["tasks"] = ran,
            ["timeLimited"] = ran < options.Tasks,
            ["tasksPerSec"] = Samples.Round(ran / clock.Elapsed.TotalSeconds),
            ["p50Ms"] = samples.Percentile(50),
            ["p99Ms"] = samples.Percentile(99),
            ["p999Ms"] = samples.Percentile(99.9),
        };
        AddCpu(line, "", before, after, ran, idleMsPerSec, clock.Elapsed);
        if (!sequential) return line;

        // One submitter, one task at a time: the latency of a warm trivial task with nothing queued.
        var alone = new Samples();
        var sequentialClock = Stopwatch.StartNew();
        var sequentialTasks = Math.Min(options.Tasks, options.Quick ? SequentialQuickTasks : SequentialTasks);
        for (var i = 0; i < sequentialTasks; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await RunOneAsync(_peers[0], Spec("bench-sequential", confidential));
            alone.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }

        sequentialClock.Stop();
        line["sequentialTasks"] = sequentialTasks;
        line["sequentialP50Ms"] = alone.Percentile(50);
        line["sequentialP99Ms"] = alone.Percentile(99);
        AddCpu(line, "sequential", after, CpuNow(), sequentialTasks, idleMsPerSec, sequentialClock.Elapsed);
        return line;
    }

    /// <summary>
    /// The batch variant: the same trivial task, many per call, results streamed back
    /// (<see cref="IBatchSubmitter"/>). One batch in flight per origin peer at a time.
    /// </summary>
    private async Task<JsonObject> BatchAsync()
    {
        var batch = BatchSubmitters.Create(cluster);
        // Ten times the tasks scenario's count: a batch of the goal's rate (20,000/s) must run for long enough to be timed.
        var total = options.Tasks * 10;
        var size = Math.Min(options.BatchSize, total);
        foreach (var peer in _peers) await RunOneAsync(peer, Task(Square, "[7]", confidential: true));
        var idleMsPerSec = await IdleCpuMsPerSecAsync();

        Console.Error.WriteLine("p2pshare-bench: batch: measuring");
        var samples = new Samples();
        int failed = 0, promoted = 0;
        string? firstError = null;
        var next = -1;
        var before = CpuNow();
        var clock = Stopwatch.StartNew();
        await System.Threading.Tasks.Task.WhenAll(_peers.Select((origin, p) => System.Threading.Tasks.Task.Run(async () =>
        {
            int from;
            while ((from = Interlocked.Add(ref next, size) - size + 1) < total)
            {
                var specs = Enumerable.Range(from, Math.Min(size, total - from))
                    .Select(n => Task(Square, $"[{n % 1000}]", submitter: $"bench-batch-{p}")).ToList();
                var start = Stopwatch.GetTimestamp();
                await foreach (var result in batch.RunAsync(origin, specs, CancellationToken.None))
                {
                    samples.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    if (!result.Succeeded && Interlocked.Increment(ref failed) == 1) firstError = result.Error;
                    if (result.Promoted) Interlocked.Increment(ref promoted);
                }
            }
        })));
        clock.Stop();
        var after = CpuNow();
        Console.Error.WriteLine("p2pshare-bench: batch: done");
        if (failed > 0) throw new InvalidOperationException($"{failed} of {total} batch tasks failed, the first: {firstError}");
        if (samples.Count != total) throw new InvalidOperationException($"the batch call streamed {samples.Count} results for {total} tasks");

        var line = new JsonObject
        {
            ["scenario"] = "batch",
            ["tasks"] = total,
            ["batchSize"] = size,
            ["promoted"] = promoted,
            ["tasksPerSec"] = Samples.Round(total / clock.Elapsed.TotalSeconds),
            ["p50Ms"] = samples.Percentile(50),
            ["p99Ms"] = samples.Percentile(99),
        };
        AddCpu(line, "", before, after, total, idleMsPerSec, clock.Elapsed);
        return line;
    }

    /// <summary>
    /// Open loop: tasks offered at a fixed rate whatever the answers do, each timed from the moment it
    /// was due (not from when the client got round to sending it), so a stalled cluster shows in the
    /// percentiles instead of slowing the offer down.
    /// </summary>
    private async Task<JsonObject> OpenAsync()
    {
        // Bounds what a cluster far slower than the rate leaves to drain; tasks still unsent at the
        // end of the window because of it are reported as dropped, those sent late as late.
        const int maxInFlight = 4096;
        const double lateMs = 5;
        var rate = options.OpenRate;
        var total = Math.Max(1, (int)Math.Round(rate * options.OpenSeconds));
        var drainLimit = TimeSpan.FromSeconds(options.Quick ? 15 : 30);
        foreach (var peer in _peers) await RunOneAsync(peer, Task(Square, "[7]", confidential: true));
        var idleMsPerSec = await IdleCpuMsPerSecAsync();

        Console.Error.WriteLine("p2pshare-bench: open: measuring");
        using var giveUp = new CancellationTokenSource();
        var samples = new Samples();
        var gate = new object();
        long lastFinish = 0;
        int inFlight = 0, late = 0, failed = 0, abandoned = 0, sent = 0;
        var running = new List<Task>(Math.Min(total, 1 << 20));
        var before = CpuNow();
        var start = Stopwatch.GetTimestamp();
        var windowEnd = start + (long)(options.OpenSeconds * Stopwatch.Frequency);

        async Task OneAsync(int n, long due)
        {
            try
            {
                await RunOneAsync(_peers[n % _peers.Length], Task(Square, $"[{n % 1000}]", submitter: $"bench-open-{n % 64}"), giveUp.Token);
                var now = Stopwatch.GetTimestamp();
                samples.Add(Stopwatch.GetElapsedTime(due, now).TotalMilliseconds);
                lock (gate) lastFinish = Math.Max(lastFinish, now);
            }
            catch (OperationCanceledException)
            {
                Interlocked.Increment(ref abandoned);
            }
            catch (Exception e) when (e is InvalidOperationException or TimeoutException or Orleans.Runtime.OrleansException)
            {
                Interlocked.Increment(ref failed);
            }
            finally
            {
                Interlocked.Decrement(ref inFlight);
            }
        }

        while (sent < total && Stopwatch.GetTimestamp() < windowEnd)
        {
            var dueNow = Math.Min(total, (int)(Stopwatch.GetElapsedTime(start).TotalSeconds * rate) + 1);
            while (sent < dueNow && Volatile.Read(ref inFlight) < maxInFlight)
            {
                var due = start + (long)(sent / rate * Stopwatch.Frequency);
                if (Stopwatch.GetElapsedTime(due).TotalMilliseconds > lateMs) late++;
                Interlocked.Increment(ref inFlight);
                var n = sent++;
                running.Add(System.Threading.Tasks.Task.Run(() => OneAsync(n, due)));
            }

            // Pacing, not synchronisation: the next tasks fall due within the millisecond.
            await System.Threading.Tasks.Task.Delay(1);
        }

        var offeredSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var all = System.Threading.Tasks.Task.WhenAll(running);
        if (await System.Threading.Tasks.Task.WhenAny(all, System.Threading.Tasks.Task.Delay(drainLimit)) != all)
        {
            await giveUp.CancelAsync();
            await all;
        }

        var after = CpuNow();
        Console.Error.WriteLine("p2pshare-bench: open: done");
        var finished = samples.Count;
        var busySeconds = lastFinish > 0 ? Stopwatch.GetElapsedTime(start, lastFinish).TotalSeconds : offeredSeconds;
        var line = new JsonObject
        {
            ["scenario"] = "open",
            ["offeredRate"] = rate,
            ["offeredSeconds"] = Samples.Round(offeredSeconds),
            ["tasks"] = total,
            ["sent"] = sent,
            ["dropped"] = total - sent,
            ["late"] = late,
            ["lateThresholdMs"] = lateMs,
            ["finished"] = finished,
            ["failed"] = failed,
            ["abandoned"] = abandoned,
            ["achievedRate"] = Samples.Round(finished / busySeconds),
            ["p50Ms"] = samples.Percentile(50),
            ["p99Ms"] = samples.Percentile(99),
            ["maxInFlight"] = maxInFlight,
        };
        AddCpu(line, "", before, after, Math.Max(1, finished), idleMsPerSec, Stopwatch.GetElapsedTime(start));
        return line;
    }

    /// <summary>The cluster's CPU (null without --pid-dir) and this client's own, in ms so far.</summary>
    private (double? Cluster, double Client) CpuNow()
    {
        using var self = Process.GetCurrentProcess();
        return (PeersCpuMs(), self.TotalProcessorTime.TotalMilliseconds);
    }

    /// <summary>
    /// cpuUsPerTask: every cluster process's CPU (peers and all their workers, exited ones included)
    /// over the run, per task, background included; netCpuUsPerTask: the same less the peers' idle
    /// CPU over as long; clientCpuUsPerTask: this process's own. <paramref name="prefix"/> names a sub-run.
    /// </summary>
    private static void AddCpu(JsonObject line, string prefix, (double? Cluster, double Client) before, (double? Cluster, double Client) after,
        int tasks, double? idleMsPerSec, TimeSpan elapsed)
    {
        string Name(string field) => prefix.Length == 0 ? field : prefix + char.ToUpperInvariant(field[0]) + field[1..];
        var spent = after.Cluster - before.Cluster;
        line[Name("cpuUsPerTask")] = spent is { } total ? Samples.Round(total * 1000 / tasks) : null;
        line[Name("netCpuUsPerTask")] = spent - idleMsPerSec * elapsed.TotalSeconds is { } net ? Samples.Round(net * 1000 / tasks) : null;
        line[Name("clientCpuUsPerTask")] = Samples.Round((after.Client - before.Client) * 1000 / tasks);
        if (prefix.Length == 0) line["idleCpuMsPerSec"] = idleMsPerSec is { } idle ? Samples.Round(idle) : null;
    }

    /// <summary>
    /// The peers' CPU while no task runs (load reports, timers, thread-pool spinning), measured once
    /// per bench run: the net figures subtract it, so that they are what the tasks add.
    /// </summary>
    private async Task<double?> IdleCpuMsPerSecAsync()
    {
        if (_idleMsPerSec is { } known) return known;
        var window = TimeSpan.FromSeconds(options.Quick ? 1 : 3);
        var start = PeersCpuMs();
        await System.Threading.Tasks.Task.Delay(window);
        _idleMsPerSec = (PeersCpuMs() - start) / window.TotalSeconds;
        return _idleMsPerSec;
    }

    /// <summary>CPU spent so far by the peers and their workers (<see cref="CpuMeter"/>); null without --pid-dir.</summary>
    private double? PeersCpuMs() => CpuMeter.TotalMs(_peers.Select(PeerPid).OfType<int>());

    private async Task<JsonObject> CompileAsync()
    {
        // Each "new" program differs in a constant, so it is a new text for the compile cache.
        string Program(int k) => $"int main(int x) => x * {k + 2};";
        var salt = RandomNumberGenerator.GetInt32(1_000_000, 9_000_000);
        var peer = _peers[^1];
        var first = Stopwatch.StartNew();
        var firstJob = await RunOneAsync(peer, Task(Program(salt), "[3]", confidential: true));
        var firstMs = first.Elapsed.TotalMilliseconds;
        var fresh = new Samples();
        var freshQueue = new Samples();
        for (var i = 1; i <= (options.Quick ? 5 : 30); i++)
        {
            var clock = Stopwatch.StartNew();
            var job = await RunOneAsync(peer, Task(Program(salt + i), "[3]", confidential: true));
            fresh.Add(clock.Elapsed.TotalMilliseconds);
            freshQueue.Add(job.QueueMs);
        }

        var cached = new Samples();
        var cachedQueue = new Samples();
        for (var i = 0; i < (options.Quick ? 10 : 100); i++)
        {
            var clock = Stopwatch.StartNew();
            var job = await RunOneAsync(peer, Task(Program(salt), "[3]", confidential: true));
            if (!job.CompileCached) throw new InvalidOperationException("a repeated program was not served from the compile cache");
            cached.Add(clock.Elapsed.TotalMilliseconds);
            cachedQueue.Add(job.QueueMs);
        }

        return new JsonObject
        {
            ["scenario"] = "compile",
            ["peer"] = peer,
            ["firstMs"] = Samples.Round(firstMs),
            ["firstQueueMs"] = Samples.Round(firstJob.QueueMs),
            ["newMs"] = fresh.Median,
            ["newQueueMs"] = freshQueue.Median,
            ["cachedMs"] = cached.Median,
            ["cachedQueueMs"] = cachedQueue.Median,
        };
    }

    /// <summary>
    /// 300 CPU-bound tasks at once over the peers. Each task does a fixed amount of work (calibrated to
    /// ~50 ms alone), not a fixed wall time, so its CPU is what it is however crowded the cores are; the
    /// ideal makespan is that CPU, measured on the cluster with the task alone, times the tasks, over the
    /// parallelism the machine really has: min(total slots, cores).
    /// </summary>
    private async Task<JsonObject> BalanceAsync()
    {
        const int count = 300;
        const double targetMs = 50;
        var slots = (await cluster.Tracker.GetPeersAsync()).Sum(p => p.Report.Slots);
        // The cluster runs on this machine (as run.sh starts it), so its cores are ours.
        var cores = Environment.ProcessorCount;
        var parallel = Math.Min(slots, cores);

        // Calibrate the work to ~50 ms of run time alone (the worker's own timing of the task).
        long iterations = 20_000_000;
        foreach (var peer in _peers) await RunOneAsync(peer, Task(Work, "[1000]", confidential: true));
        for (var round = 0; round < 4; round++)
        {
            var probe = await RunOneAsync(_peers[0], Task(Work, $"[{iterations}]", confidential: true));
            var scale = targetMs / Math.Max(1, probe.RunMs);
            iterations = Math.Max(1000, (long)(iterations * scale));
            if (scale is > 0.8 and < 1.25) break;
        }

        // CPU per task, alone: every cluster process's CPU over a few tasks run one at a time.
        var aloneTasks = options.Quick ? 4 : 10;
        var before = PeersCpuMs();
        var aloneClock = Stopwatch.StartNew();
        for (var i = 0; i < aloneTasks; i++) await RunOneAsync(_peers[i % _peers.Length], Task(Work, $"[{iterations}]", submitter: "bench"));
        aloneClock.Stop();
        var measured = (PeersCpuMs() - before) / aloneTasks;
        var cpuPerTaskMs = measured ?? aloneClock.Elapsed.TotalMilliseconds / aloneTasks;

        var clock = Stopwatch.StartNew();
        var jobs = await System.Threading.Tasks.Task.WhenAll(Enumerable.Range(0, count).Select(i =>
            RunOneAsync(_peers[i % _peers.Length], Task(Work, $"[{iterations}]", submitter: "bench"))));
        clock.Stop();
        var idealMs = count * cpuPerTaskMs / parallel;
        var perPeer = new JsonObject();
        foreach (var group in jobs.GroupBy(j => j.ExecutedBy).OrderBy(g => g.Key, StringComparer.Ordinal)) perPeer[group.Key] = group.Count();
        return new JsonObject
        {
            ["scenario"] = "balance",
            ["tasks"] = count,
            ["iterations"] = iterations,
            ["taskRunMs"] = Samples.Round(jobs.Average(j => j.RunMs)),
            ["cpuPerTaskMs"] = Samples.Round(cpuPerTaskMs),
            ["cpuPerTaskMeasured"] = measured is not null,
            ["slots"] = slots,
            ["cores"] = cores,
            ["parallel"] = parallel,
            ["perPeer"] = perPeer,
            ["makespanMs"] = Samples.Round(clock.Elapsed.TotalMilliseconds),
            ["idealMs"] = Samples.Round(idealMs),
            ["makespanRatio"] = Samples.Round(clock.Elapsed.TotalMilliseconds / idealMs),
        };
    }

    private async Task<JsonObject> FairnessAsync()
    {
        var peer = _peers[0];
        var slots = (await cluster.Tracker.GetPeersAsync()).Single(p => p.Name == peer).Report.Slots;
        await RunOneAsync(peer, Task(Square, "[1]", on: peer, submitter: "batch"));
        var longSeconds = options.Quick ? 3 : 10;
        var longJobs = new List<JobInfo>();
        for (var i = 0; i < slots * 2; i++)
            longJobs.Add(await cluster.Peer(peer).SubmitAsync(Task(Spin, $"[{longSeconds}]", on: peer, submitter: "batch")));
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((await cluster.Peer(peer).ListJobsAsync(100)).Jobs.Count(j => j.Status == JobStatus.Running) < slots && DateTime.UtcNow < deadline)
            await System.Threading.Tasks.Task.Delay(50);

        // Short tasks only count while every long one is still running (without time slicing the
        // first short task waits for a long one to end, and the ones after it would not).
        var samples = new Samples();
        for (var i = 0; i < 3; i++)
        {
            var clock = Stopwatch.StartNew();
            await RunOneAsync(peer, Task(Square, "[5]", on: peer, submitter: "batch"));
            samples.Add(clock.Elapsed.TotalMilliseconds);
            var states = await System.Threading.Tasks.Task.WhenAll(longJobs.Select(j => cluster.Client.GetJob(j.JobId).GetAsync()));
            if (states.Any(j => j.IsTerminal)) break;
        }

        foreach (var job in longJobs) await cluster.Client.GetJob(job.JobId).CancelAsync();
        return new JsonObject
        {
            ["scenario"] = "fairness",
            ["timeSlicing"] = options.TimeSlicing == "on",
            ["slots"] = slots,
            ["longTasks"] = longJobs.Count,
            ["longTaskSeconds"] = longSeconds,
            ["shortTaskMs"] = samples.Median,
            ["shortTaskMaxMs"] = samples.Percentile(100),
            ["shortTasks"] = samples.Count,
        };
    }

    private async Task<JsonObject> MemAsync(int concurrency)
    {
        var value = new byte[64];
        RandomNumberGenerator.Fill(value);

        // One client per peer, connected to that peer's own gateway: a call then goes client → the
        // peer's silo and back, as redis-benchmark talks to the server itself. Through the shared
        // client a call lands on whichever gateway its grain's bucket picked and is forwarded to the
        // peer's silo (one more hop, measured as anyGatewayOpsPerSec).
        var peers = await cluster.Tracker.GetPeersAsync();
        var direct = new Dictionary<string, ClusterConnection>(StringComparer.Ordinal);
        try
        {
            foreach (var peer in peers.OrderBy(p => p.Name, StringComparer.Ordinal))
            {
                if (!HostPort.TryParse(peer.Report.Gateway, out var gateway))
                    throw new InvalidOperationException($"peer {peer.Name} reports an unreadable gateway '{peer.Report.Gateway}'");
                direct[peer.Name] = await ClusterConnection.ConnectAsync(new ConnectionSettings([gateway], Origin: null), CancellationToken.None);
            }

            var line = new JsonObject { ["scenario"] = "mem", ["concurrency"] = concurrency, ["valueBytes"] = 64 };
            var run = await MemRunAsync(concurrency, value, name => direct[name].Peer(name));
            line["opsPerSec"] = run.OpsPerSec;
            line["p50Ms"] = run.Samples.Percentile(50);
            line["p99Ms"] = run.Samples.Percentile(99);
            line["clientCpuUsPerOp"] = run.ClientCpuUsPerOp;
            line["peersCpuUsPerOp"] = run.PeersCpuUsPerOp;
            var shared = await MemRunAsync(concurrency, value, cluster.Peer);
            line["anyGatewayOpsPerSec"] = shared.OpsPerSec;
            line["anyGatewayPeersCpuUsPerOp"] = shared.PeersCpuUsPerOp;
            if (options.RedisPort is { } port)
            {
                var redis = await Redis.BenchmarkAsync(port, concurrency, options.Quick ? 20_000 : 200_000);
                line["redisOpsPerSec"] = redis.OpsPerSec;
                line["redisP99Ms"] = redis.P99Ms;
                line["vsRedis"] = Samples.Round(run.OpsPerSec / redis.OpsPerSec);
            }

            return line;
        }
        finally
        {
            foreach (var connection in direct.Values) await connection.DisposeAsync();
        }
    }

    private sealed record MemRun(double OpsPerSec, Samples Samples, double ClientCpuUsPerOp, double? PeersCpuUsPerOp);

    /// <summary>
    /// <paramref name="concurrency"/> callers, each alternating SET and GET of its own key on one
    /// peer, for --mem-seconds after a warm-up. Each caller keeps its own counts and samples so the
    /// callers share nothing while measured.
    /// </summary>
    private async Task<MemRun> MemRunAsync(int concurrency, byte[] value, Func<string, IPeerGrain> peerOf)
    {
        const int warmUpOps = 200;
        async Task<(long Ops, List<double> Samples)> CallerAsync(int c, long until, bool record)
        {
            var peer = peerOf(_peers[c % _peers.Length]);
            var key = $"bench-{concurrency}-{c}";
            var samples = new List<double>(record ? 1 << 16 : 0);
            long n = 0;
            for (; until == 0 ? n < warmUpOps : Stopwatch.GetTimestamp() < until; n++)
            {
                var start = Stopwatch.GetTimestamp();
                if (n % 2 == 0) await peer.SetAsync(key, value, null);
                else await peer.GetAsync(key);
                if (record) samples.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }

            return (n, samples);
        }

        // Warm-up: connections open, code paths compiled, activations in place.
        await System.Threading.Tasks.Task.WhenAll(Enumerable.Range(0, concurrency)
            .Select(c => System.Threading.Tasks.Task.Run(() => CallerAsync(c, 0, record: false))));

        var clientCpu = Process.GetCurrentProcess().TotalProcessorTime;
        var peersCpu = PeersCpuMs();
        var clock = Stopwatch.StartNew();
        var until = Stopwatch.GetTimestamp() + (long)(options.MemSeconds * Stopwatch.Frequency);
        var callers = await System.Threading.Tasks.Task.WhenAll(Enumerable.Range(0, concurrency)
            .Select(c => System.Threading.Tasks.Task.Run(() => CallerAsync(c, until, record: true))));
        clock.Stop();
        var ops = callers.Sum(r => r.Ops);
        var clientUs = (Process.GetCurrentProcess().TotalProcessorTime - clientCpu).TotalMicroseconds;
        var samples = new Samples();
        foreach (var caller in callers) samples.AddRange(caller.Samples);
        return new MemRun(
            Samples.Round(ops / clock.Elapsed.TotalSeconds),
            samples,
            Samples.Round(clientUs / ops),
            PeersCpuMs() - peersCpu is { } spent ? Samples.Round(spent * 1000 / ops) : null);
    }

    /// <summary>
    /// redis-benchmark -t set,get,mset -d 64 in each of <see cref="Redis.Shapes"/>, against redis-server
    /// and then against the first peer's RESP port, test by test, with each server's CPU per command
    /// (/proc). A line per measurement; the peer's lines carry the ratio to redis-server.
    /// </summary>
    private async Task<List<JsonObject>> RedisAsync()
    {
        if (options.RedisPort is not { } redisPort) throw new InvalidOperationException("the redis scenario needs --redis-port");
        var requests = options.Quick ? 20_000 : 200_000;
        var lines = new List<JsonObject>();
        foreach (var (clients, pipeline) in Redis.Shapes)
        {
            // Pipelined runs are ~10x faster: more requests keep them as long as the others.
            var count = pipeline > 1 ? requests * 5 : requests;
            foreach (var test in Redis.Tests)
            {
                var reference = await RedisRunAsync("redis-server", redisPort, options.RedisPid, test, clients, pipeline, count);
                lines.Add(reference);
                if (options.RespPort is not { } respPort) continue;
                var peer = await RedisRunAsync(_peers[0], respPort, PeerPid(_peers[0]), test, clients, pipeline, count);
                peer["redisOpsPerSec"] = reference["opsPerSec"]!.DeepClone();
                peer["vsRedis"] = Samples.Round((double)peer["opsPerSec"]! / (double)reference["opsPerSec"]!);
                lines.Add(peer);
            }
        }

        return lines;
    }

    private static async Task<JsonObject> RedisRunAsync(string server, int port, int? pid, string test, int clients, int pipeline, int requests)
    {
        var cpuBefore = pid is { } p ? CpuMeter.TotalMs([p]) : null;
        var result = (await Redis.RunAsync(port, test, clients, pipeline, requests)).Single();
        var cpuAfter = pid is { } q ? CpuMeter.TotalMs([q]) : null;
        return new JsonObject
        {
            ["scenario"] = "redis",
            ["server"] = server,
            ["test"] = result.Test,
            ["clients"] = clients,
            ["pipeline"] = pipeline,
            ["valueBytes"] = Redis.ValueBytes,
            ["requests"] = requests,
            ["opsPerSec"] = Samples.Round(result.OpsPerSec),
            ["p99Ms"] = result.P99Ms,
            ["cpuUsPerOp"] = cpuAfter - cpuBefore is { } spent ? Samples.Round(spent * 1000 / requests) : null,
        };
    }

    /// <summary>
    /// The seed-protocol port driven like the original client, against the first peer's seed-protocol
    /// port and, with --legacy, against the original system in the same run, with the ratios.
    /// </summary>
    private async Task<JsonObject> LegacyAsync()
    {
        // The original's client uses 8 threads.
        var clients = options.Quick ? 4 : 8;
        var count = options.Quick ? 100 : 1000;
        var peers = await cluster.Tracker.GetPeersAsync();
        var ours = peers.Select(p => p.Report.Endpoints.GetValueOrDefault("seed-protocol")).FirstOrDefault(e => e is not null)
            ?? throw new InvalidOperationException("no peer has a seed-protocol port (--legacy-port)");
        var mine = await Legacy.RunAsync(ours, clients, count, options.Quick);
        var line = new JsonObject
        {
            ["scenario"] = "legacy",
            ["endpoint"] = mine.Endpoint,
            ["clients"] = clients,
            ["tasks"] = count,
            ["tasksPerSec"] = mine.TasksPerSec,
            ["p50Ms"] = mine.P50Ms,
            ["p99Ms"] = mine.P99Ms,
            ["memOpsPerSec"] = mine.MemOpsPerSec,
            ["memP99Ms"] = mine.MemP99Ms,
        };
        if (options.Legacy is not { } original) return line;

        var theirs = await Legacy.RunAsync(original, clients, count, options.Quick);
        line["originalEndpoint"] = theirs.Endpoint;
        line["originalTasksPerSec"] = theirs.TasksPerSec;
        line["originalP50Ms"] = theirs.P50Ms;
        line["originalP99Ms"] = theirs.P99Ms;
        line["originalMemOpsPerSec"] = theirs.MemOpsPerSec;
        line["originalMemP99Ms"] = theirs.MemP99Ms;
        line["vsOriginal"] = Samples.Round(mine.TasksPerSec / theirs.TasksPerSec);
        line["memVsOriginal"] = Samples.Round(mine.MemOpsPerSec / theirs.MemOpsPerSec);
        return line;
    }

    private async Task<JsonObject> FileAsync()
    {
        var cli = options.Cli ?? Path.Combine(RepoRoot(), "deploy", "local", "p2pshare");
        var peer = _peers[^1];
        var dir = Directory.CreateTempSubdirectory("p2pshare-bench-");
        try
        {
            var source = Path.Combine(dir.FullName, "source.bin");
            var bytes = (long)options.FileMiB * 1024 * 1024;
            var dd = await Processes.RunAsync("dd", ["if=/dev/urandom", $"of={source}", "bs=1M", $"count={options.FileMiB}", "status=none"]);
            if (dd.ExitCode != 0) throw new InvalidOperationException($"dd failed: {dd.Stderr}");
            var ddWrite = await DdWriteAsync(dir.FullName, options.FileMiB);

            // The CLI connects to the first peer's gateway; since the transfer goes to the target's own
            // gateway, that first peer should carry none of it (it relayed every chunk before).
            var peerPid = PeerPid(peer);
            var firstPid = PeerPid(_peers[0]);
            var peerIdle = FileScenarioMemory.RssMiB(peerPid);
            var firstIdle = FileScenarioMemory.RssMiB(firstPid);
            Processes.ResetPeak(peerPid);
            Processes.ResetPeak(firstPid);
            var put = await Processes.RunAsync(cli, ["file", "put", source, "--name", "bench.bin", "--peer", peer]);
            if (put.ExitCode != 0) throw new InvalidOperationException($"file put failed: {put.Stderr}");
            var peerPutPeak = Processes.PeakRssMiB(peerPid);
            var firstPutPeak = Processes.PeakRssMiB(firstPid);

            var peerIdleBeforeGet = FileScenarioMemory.RssMiB(peerPid);
            var firstIdleBeforeGet = FileScenarioMemory.RssMiB(firstPid);
            Processes.ResetPeak(peerPid);
            Processes.ResetPeak(firstPid);
            var target = Path.Combine(dir.FullName, "back.bin");
            var get = await Processes.RunAsync(cli, ["file", "get", "bench.bin", "-o", target, "--peer", peer]);
            if (get.ExitCode != 0) throw new InvalidOperationException($"file get failed: {get.Stderr}");
            var peerGetPeak = Processes.PeakRssMiB(peerPid);
            var firstGetPeak = Processes.PeakRssMiB(firstPid);
            if (new FileInfo(target).Length != bytes) throw new InvalidOperationException("the file came back with another size");
            await Processes.RunAsync(cli, ["file", "rm", "bench.bin", "--peer", peer]);

            var mib = bytes / 1024.0 / 1024.0;
            return new JsonObject
            {
                ["scenario"] = "file",
                ["sizeMiB"] = options.FileMiB,
                ["peer"] = peer,
                ["putMBps"] = Samples.Round(mib / put.Elapsed.TotalSeconds),
                ["getMBps"] = Samples.Round(mib / get.Elapsed.TotalSeconds),
                ["peakRssMB"] = Samples.Round(Math.Max(put.PeakRssMiB, get.PeakRssMiB)),
                ["cliPutPeakRssMB"] = Samples.Round(put.PeakRssMiB),
                ["cliGetPeakRssMB"] = Samples.Round(get.PeakRssMiB),
                ["peerPutPeakRssMB"] = peerPutPeak is { } a ? Samples.Round(a) : null,
                ["peerGetPeakRssMB"] = peerGetPeak is { } b ? Samples.Round(b) : null,
                ["peerPutAboveIdleMB"] = FileScenarioMemory.AboveIdle(peerPutPeak, peerIdle),
                ["peerGetAboveIdleMB"] = FileScenarioMemory.AboveIdle(peerGetPeak, peerIdleBeforeGet),
                ["gatewayPeer"] = _peers[0],
                ["gatewayPeerPutAboveIdleMB"] = FileScenarioMemory.AboveIdle(firstPutPeak, firstIdle),
                ["gatewayPeerGetAboveIdleMB"] = FileScenarioMemory.AboveIdle(firstGetPeak, firstIdleBeforeGet),
                ["ddMBps"] = Samples.Round(ddWrite),
            };
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>Raw disk write speed of the same size with dd (fdatasync, like the peer's fsync before the rename).</summary>
    private static async Task<double> DdWriteAsync(string dir, int mib)
    {
        var path = Path.Combine(dir, "dd.bin");
        var run = await Processes.RunAsync("dd", ["if=/dev/zero", $"of={path}", "bs=1M", $"count={mib}", "conv=fdatasync", "status=none"]);
        File.Delete(path);
        if (run.ExitCode != 0) throw new InvalidOperationException($"dd failed: {run.Stderr}");
        return mib / run.Elapsed.TotalSeconds;
    }

    private int? PeerPid(string peer)
    {
        if (options.PidDir is not { } dir) return null;
        var file = Path.Combine(dir, peer + ".pid");
        return File.Exists(file) && int.TryParse(File.ReadAllText(file).Trim(), out var pid) ? pid : null;
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "P2PShare.sln"))) return dir.FullName;
        throw new InvalidOperationException("run from the repository, or give --cli");
    }
}
