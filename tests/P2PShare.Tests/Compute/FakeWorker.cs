using System.Diagnostics;
using System.Globalization;
using P2PShare.Compute;

namespace P2PShare.Tests.Compute;

/// <summary>
/// Starts <see cref="FakeWorker"/>s and keeps the numbers the scheduler must respect: runs in progress
/// and runs actually progressing (not paused) at once. One lock covers all its workers, so those
/// counts are exact.
/// </summary>
internal sealed class FakeWorkerFactory : IWorkerFactory
{
    /// <summary>The task language its workers pretend to run.</summary>
    public string Language { get; init; } = TaskLanguages.CSharp;

    internal readonly object Gate = new();
    private readonly List<FakeWorker> _workers = [];
    private int _nextProcessId = 1000;
    private volatile bool _failStarts;

    /// <summary>While true, <see cref="StartAsync"/> throws as a missing worker binary would.</summary>
    public bool FailStarts
    {
        get => _failStarts;
        set => _failStarts = value;
    }

    internal int Runs;
    internal int Progressing;
    public int MaxRuns { get; internal set; }
    public int MaxProgressing { get; internal set; }
    public int RunsStarted { get; internal set; }
    /// <summary>Runs that began on a non-default TaskScheduler or a SynchronizationContext (a grain's, say).</summary>
    public int RunsOnForeignScheduler { get; internal set; }

    public IReadOnlyList<FakeWorker> Workers
    {
        get { lock (Gate) return [.. _workers]; }
    }

    public int Pauses
    {
        get { lock (Gate) return _workers.Sum(w => w.Pauses); }
    }

    public int Resumes
    {
        get { lock (Gate) return _workers.Sum(w => w.Resumes); }
    }

    public FakeWorker WorkerThatRan(string programHash)
    {
        lock (Gate) return _workers.Single(w => w.Programs.Contains(programHash));
    }

    public Task<IWorker> StartAsync(CancellationToken cancellationToken)
    {
        if (FailStarts) throw new InvalidOperationException("fake factory: worker binary is missing");
        lock (Gate)
        {
            var worker = new FakeWorker(this, ++_nextProcessId);
            _workers.Add(worker);
            return Task.FromResult<IWorker>(worker);
        }
    }
}

/// <summary>
/// A worker whose program is simulated CPU work. The request's Function says what it does:
/// <c>work</c> completes after ArgsJson <c>[ms]</c> of virtual progress, which only advances while the
/// worker is not paused; <c>crash</c> does the same and then dies; <c>hang</c> never finishes.
/// </summary>
internal sealed class FakeWorker(FakeWorkerFactory factory, int processId) : IWorker
{
    private readonly object _gate = factory.Gate;
    private readonly List<string> _programs = [];
    private Run? _run;
    private bool _paused;
    private bool _dead;
    private bool _disposed;

    public int ProcessId { get; } = processId;

    public bool IsHealthy
    {
        get { lock (_gate) return !_dead; }
    }

    public int ProgramsLoaded
    {
        get { lock (_gate) return _programs.Distinct().Count(); }
    }

    /// <summary>Programs run, in order, repeats included.</summary>
    public IReadOnlyList<string> Programs
    {
        get { lock (_gate) return [.. _programs]; }
    }

    /// <summary>Stopped (paused or frozen while idle): its run, if any, does not progress.</summary>
    public bool IsPaused
    {
        get { lock (_gate) return _paused; }
    }

    public int Pauses { get; private set; }
    public int Resumes { get; private set; }
    public int Kills { get; private set; }

    public bool IsDisposed
    {
        get { lock (_gate) return _disposed; }
    }

    public Task<ExecutionResult> RunAsync(ExecutionRequest request, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (SynchronizationContext.Current is not null || TaskScheduler.Current != TaskScheduler.Default)
                factory.RunsOnForeignScheduler++;
            if (_dead) return Task.FromResult(ExecutionResult.Failure(TaskErrorKind.Crashed, "worker is dead"));
            if (_run is not null) throw new InvalidOperationException("fake worker: one run at a time");

            _programs.Add(request.ProgramHash);
            var work = request.Function == "hang"
                ? Timeout.InfiniteTimeSpan
                : TimeSpan.FromMilliseconds(int.Parse(request.ArgsJson.Trim('[', ']'), CultureInfo.InvariantCulture));
            var run = new Run(request.Function, work);
            _run = run;
            factory.RunsStarted++;
            factory.Runs++;
            factory.MaxRuns = Math.Max(factory.MaxRuns, factory.Runs);
            if (!_paused) ProgressLocked(run);
            return run.Completion.Task;
        }
    }

    public void Pause()
    {
        lock (_gate)
        {
            Pauses++;
            if (_paused || _dead) return;
            _paused = true;
            if (_run is { } run) StallLocked(run);
        }
    }

    public void Resume()
    {
        lock (_gate)
        {
            Resumes++;
            if (!_paused || _dead) return;
            _paused = false;
            if (_run is { } run) ProgressLocked(run);
        }
    }

    public int Freezes { get; private set; }
    public int Thaws { get; private set; }

    public void Freeze()
    {
        lock (_gate)
        {
            Freezes++;
            if (_dead) return;
            _paused = true;
        }
    }

    public void Thaw()
    {
        lock (_gate)
        {
            Thaws++;
            if (_dead) return;
            _paused = false;
        }
    }

    public void Kill()
    {
        lock (_gate)
        {
            Kills++;
            DieLocked("killed");
        }
    }

    public ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            _disposed = true;
            DieLocked("disposed");
        }

        return ValueTask.CompletedTask;
    }

    private void DieLocked(string why)
    {
        _dead = true;
        if (_run is { } run) EndLocked(run, ExecutionResult.Failure(TaskErrorKind.Crashed, $"worker {why}"));
    }

    private void ProgressLocked(Run run)
    {
        run.ProgressingSince = Stopwatch.GetTimestamp();
        factory.Progressing++;
        factory.MaxProgressing = Math.Max(factory.MaxProgressing, factory.Progressing);
        if (run.Remaining != Timeout.InfiniteTimeSpan)
        {
            // Paused after its work was done but before its timer fired: it completes right away.
            var due = run.Remaining > TimeSpan.Zero ? run.Remaining : TimeSpan.Zero;
            run.Timer = new Timer(_ => OnTimer(run), null, due, Timeout.InfiniteTimeSpan);
        }
    }

    private void StallLocked(Run run)
    {
        if (run.ProgressingSince is not { } since) return;
        run.ProgressingSince = null;
        factory.Progressing--;
        run.Timer?.Dispose();
        run.Timer = null;
        if (run.Remaining != Timeout.InfiniteTimeSpan)
            run.Remaining -= Stopwatch.GetElapsedTime(since);
    }

    private void OnTimer(Run run)
    {
        lock (_gate)
        {
            if (_run != run || run.ProgressingSince is not { } since) return;
            var left = run.Remaining - Stopwatch.GetElapsedTime(since);
            if (left > TimeSpan.Zero)
            {
                run.Timer?.Dispose();
                run.Timer = new Timer(_ => OnTimer(run), null, left, Timeout.InfiniteTimeSpan);
                return;
            }

            if (run.Behavior == "crash")
            {
                DieLocked("crashed");
                return;
            }

            EndLocked(run, new ExecutionResult(TaskErrorKind.None, "\"done\"", null, ""));
        }
    }

    private void EndLocked(Run run, ExecutionResult result)
    {
        StallLocked(run);
        _run = null;
        factory.Runs--;
        // Completes synchronously on purpose: the scheduler must not continue inline under anyone's lock.
        run.Completion.TrySetResult(result);
    }

    private sealed class Run(string behavior, TimeSpan work)
    {
        public string Behavior { get; } = behavior;
        public TimeSpan Remaining { get; set; } = work;
        public long? ProgressingSince { get; set; }
        public Timer? Timer { get; set; }
        public TaskCompletionSource<ExecutionResult> Completion { get; } = new();
    }
}
