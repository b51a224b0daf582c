using System.Globalization;

namespace P2PShare.Compute;

/// <summary>
/// A peer's CPU scheduler: fair across submitters and time-sliced. Thread-safe singleton; all state
/// lives behind one lock and one background loop makes the scheduling decisions.
/// </summary>
/// <remarks>
/// <para><b>Slots and turns.</b> At most <c>Slots</c> tasks run at once. Each submitter has a FIFO queue.
/// Whenever a slot is free, or a running task's time slice (<c>Quantum</c>) ends while other tasks
/// wait, the slot goes to the submitter holding the fewest slots, ties broken by whoever was served
/// least recently; within a submitter, turns rotate too: whoever has been ready longest (paused since,
/// or queued since) goes first and a task whose slice just ended goes last. A task whose slice ended
/// keeps running when nobody else is waiting; otherwise its worker is paused (SIGSTOP) and resumed
/// (SIGCONT) on a later turn.</para>
/// <para><b>Live workers.</b> A started task keeps its worker until it ends, paused or not; at most
/// <c>MaxLiveWorkers</c> tasks are started at once and later ones wait unstarted in their queues. A
/// task only ever gets a worker bound to its own submitter (<see cref="WorkerPool"/>).</para>
/// <para><b>Timeouts count slot time.</b> A task's timeout is measured against the time it held a slot
/// with its worker running; time queued, time waiting for a worker and time paused do not count, so
/// time slicing on a busy peer never times out a task that would have finished on an idle one. The
/// wall-clock time of a task can therefore exceed its timeout; the live-worker bound and the slot
/// count bound how much.</para>
/// <para><b>Threads.</b> Nothing runs on the caller's scheduler: <see cref="Submit"/> and
/// <see cref="Cancel"/> only change state and wake the loop, which runs on the thread pool, and
/// completions continue asynchronously. Pause, Resume and Kill are signals, issued under the lock so a
/// worker can never be signalled after it went back to the pool.</para>
/// </remarks>
public sealed partial class ComputeScheduler : IAsyncDisposable
{
    private static readonly TimeSpan LongestWait = TimeSpan.FromHours(1);
    private static readonly TimeSpan LongestQuantum = TimeSpan.FromDays(1);
    private const string ShuttingDown = "the peer is shutting down";

    private readonly object _gate = new();
    private readonly int _slots;
    private readonly int _maxLive;
    private readonly TimeSpan _quantum;
    private readonly ComputeOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<ComputeScheduler> _logger;
    // One pool of warm workers per task language this peer can run; all share the slots above.
    private readonly Dictionary<string, WorkerPool> _pools = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _unavailable = new(StringComparer.Ordinal);
    private readonly long _origin;
    private readonly Dictionary<Guid, ScheduledTask> _tasks = [];
    private readonly Dictionary<string, SubmitterState> _submitters = new(StringComparer.Ordinal);
    // Tasks holding a slot: Starting or Running.
    private readonly List<ScheduledTask> _holders = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _loop;
    private TaskCompletionSource _wake = NewSignal();
    private int _live;
    private int _queued;
    // Tasks SentAhead: not queued for a slot, not started.
    private int _ahead;
    private long _accepted;
    private long _serveCounter;
    private long _submitterCounter;
    private long _startCounter;
    private bool _disposed;

    public ComputeScheduler(IWorkerFactory factory, IOptions<ComputeOptions> options, TimeProvider time, ILogger<ComputeScheduler> logger)
        : this([factory], options, time, logger)
    {
    }

    /// <param name="factories">One per task language; a factory whose runtime is <see cref="IWorkerFactory.Unavailable"/> gets no pool.</param>
    public ComputeScheduler(IEnumerable<IWorkerFactory> factories, IOptions<ComputeOptions> options, TimeProvider time, ILogger<ComputeScheduler> logger, Telemetry.P2PShareMetrics? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(factories);
        _options = options.Value;
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.Slots, 1, "Compute:Slots");
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxLiveWorkers, 1, "Compute:MaxLiveWorkers");
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(_options.Quantum, TimeSpan.Zero, "Compute:Quantum");
        _slots = _options.Slots;
        _maxLive = _options.MaxLiveWorkers;
        _quantum = _options.Quantum < LongestQuantum ? _options.Quantum : LongestQuantum;
        _time = time;
        _logger = logger;
        _origin = time.GetTimestamp();
        foreach (var factory in factories)
        {
            if (factory.Unavailable is { } reason)
            {
                _unavailable[factory.Language] = reason;
                continue;
            }

            // Idle workers are kept up to the live bound: each is bound to one submitter and frozen, so
            // trimming them to a few would restart a worker for nearly every task once more submitters
            // than that take turns (measured: 16 submitters, 4 kept idle -> ~18 tasks/s). They leave by
            // the idle timeout, or when another submitter needs the room.
            var warm = factory.Language == TaskLanguages.CSharp ? _options.WarmWorkers : Math.Min(_options.PythonWarmWorkers, _options.WarmWorkers);
            var live = Math.Max(_maxLive, warm + 1);
            var pool = new WorkerPool(factory, warm, live, live, factory.RecycleAfterPrograms ?? _options.RecycleAfterPrograms,
                _options.IdleWorkerTimeout, time, logger, metrics, _options.FreezeAfterIdle);
            pool.HealthChanged += RaiseChanged;
            _pools[factory.Language] = pool;
        }

        // No runtime at all (a peer that cannot build its sandbox): the peer still serves memory and
        // files, and refuses tasks with the reason (CanAccept false, UnavailableReason says why).
        foreach (var pool in _pools.Values) pool.Refill();
        _loop = Task.Run(RunLoopAsync);
    }

    /// <summary>Raised (on any thread, outside the lock) after a submit, start, finish or pool health change.</summary>
    public event Action? Changed;

    /// <summary>Raised when a task's worker first starts running it (<see cref="ScheduledTask.StartedUtc"/> is set).</summary>
    public event Action<ScheduledTask>? TaskStarted;

    /// <summary>
    /// Slots; Running = started and unfinished tasks (running, paused, or getting their worker);
    /// Queued = not yet started; so (Running + Queued) / Slots is the CPU load.
    /// </summary>
    public SchedulerLoad Load
    {
        get
        {
            lock (_gate) return new SchedulerLoad(_slots, _live, _queued + _ahead, _accepted);
        }
    }

    /// <summary>False while shutting down or while worker processes cannot be started.</summary>
    public bool CanAccept
    {
        get
        {
            lock (_gate)
            {
                if (_disposed) return false;
            }

            return _pools.Values.Any(p => !p.IsBroken);
        }
    }

    /// <summary>Task languages this peer can run now; advertised in every load report.</summary>
    public IReadOnlyList<string> Runtimes =>
        [.. TaskLanguages.All.Where(l => _pools.TryGetValue(l, out var pool) && !pool.IsBroken)];

    /// <summary>
    /// True when this peer has <paramref name="language"/>'s runtime at all, even while its workers cannot
    /// start (then it is missing from <see cref="Runtimes"/> for a while, not for good).
    /// </summary>
    public bool HasRuntime(string language) => _pools.ContainsKey(language);

    /// <summary>Why <paramref name="language"/> is not in <see cref="Runtimes"/>, for error messages.</summary>
    public string RuntimeMissingReason(string language) =>
        _unavailable.TryGetValue(language, out var reason) ? reason
        : _pools.TryGetValue(language, out var pool) && pool.Failure is { } failure ? $"its {language} workers cannot start: {failure}"
        : $"this peer has no {language} runtime";

    /// <summary>Why <see cref="CanAccept"/> is false, for error messages; null when it is true.</summary>
    public string? UnavailableReason
    {
        get
        {
            lock (_gate)
            {
                if (_disposed) return ShuttingDown;
            }

            if (_pools.Count == 0) return _unavailable.Values.FirstOrDefault() ?? "no task language can run on this peer";
            return _pools.Values.All(p => p.IsBroken) && _pools.Values.First().Failure is { } failure
                ? $"worker processes cannot start on this peer: {failure}"
                : null;
        }
    }

    /// <summary>The timeout a task gets: its own, or the default, capped by the maximum.</summary>
    public TimeSpan ResolveTimeout(TimeSpan? requested)
    {
        var timeout = requested is { } t && t > TimeSpan.Zero ? t : _options.DefaultTimeout;
        return timeout < _options.MaxTimeout ? timeout : _options.MaxTimeout;
    }

    /// <summary>Queues a task. It always ends through <see cref="ScheduledTask.Completion"/>, never by an exception.</summary>
    /// <exception cref="ObjectDisposedException">The scheduler is shutting down.</exception>
    public ScheduledTask Submit(string submitter, ExecutionRequest request, TimeSpan timeout)
    {
        ArgumentException.ThrowIfNullOrEmpty(submitter);
        ArgumentNullException.ThrowIfNull(request);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        ScheduledTask task;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            task = new ScheduledTask(Guid.NewGuid(), submitter, request, timeout, UtcNow, Now);
            if (!_submitters.TryGetValue(submitter, out var state))
                _submitters.Add(submitter, state = new SubmitterState(++_submitterCounter));
            task.QueueNode = state.Queue.AddLast(task);
            _tasks.Add(task.Id, task);
            _queued++;
            _accepted++;
            _wake.TrySetResult();
        }

        RaiseChanged();
        return task;
    }

    /// <summary>
    /// Cancels a task: a queued one never starts, a started one has its worker killed. Either ends
    /// Cancelled. False when the task is unknown or already finished.
    /// </summary>
    public bool Cancel(Guid id)
    {
        lock (_gate)
        {
            if (!_tasks.TryGetValue(id, out var task)) return false;
            EndLocked(task, TaskErrorKind.Cancelled, "cancelled");
            _wake.TrySetResult();
        }

        RaiseChanged();
        return true;
    }

    private TimeSpan Now => _time.GetElapsedTime(_origin);

    private DateTime UtcNow => _time.GetUtcNow().UtcDateTime;

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private async Task RunLoopAsync()
    {
        var stopping = _stopping.Token;
        var toStart = new List<ScheduledTask>();
        while (!stopping.IsCancellationRequested)
        {
            Task wake;
            TimeSpan wait;
            var changed = false;
            try
            {
                lock (_gate)
                {
                    if (_wake.Task.IsCompleted) _wake = NewSignal();
                    wake = _wake.Task;
                    wait = ScheduleLocked(Now, toStart, ref changed);
                }
            }
            catch (Exception ex)
            {
                // A bug here must not silently stop all compute on the peer; log and try again soon.
                LogLoopFailed(ex);
                wake = Task.CompletedTask;
                wait = _quantum;
                try
                {
                    await Task.Delay(_quantum, _time, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }

            foreach (var task in toStart)
                _ = Task.Run(() => StartAsync(task));
            toStart.Clear();
            if (changed) RaiseChanged();

            if (wake.IsCompleted) continue;
            using var delay = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            await Task.WhenAny(wake, Task.Delay(wait, _time, delay.Token)).ConfigureAwait(false);
            await delay.CancelAsync().ConfigureAwait(false);
        }
    }

    /// <summary>One scheduling pass: timeouts, then slots. Returns how long the loop may sleep.</summary>
    private TimeSpan ScheduleLocked(TimeSpan now, List<ScheduledTask> toStart, ref bool changed)
    {
        foreach (var task in _holders.ToArray())
        {
            // A run whose result is already in is not timed out: after a stall of this process the
            // completion and the timeout come due together, and the result wins.
            if (task.State == ScheduledTaskState.Running && SlotTime(task, now) >= task.Timeout && task.Run is not { IsCompleted: true })
            {
                LogTimedOut(task.Id, task.Submitter, task.Timeout);
                EndLocked(task, TaskErrorKind.TimedOut, $"ran longer than {Describe(task.Timeout)}");
                changed = true;
            }
        }

        var free = _slots;
        var preemptible = new List<ScheduledTask>();
        foreach (var holder in _holders)
        {
            if (holder.State == ScheduledTaskState.Running && holder.SliceEnd <= now) preemptible.Add(holder);
            else free--;
        }

        if (free > 0)
        {
            var chosen = PickLocked(free, now);
            // Pause before resuming so no more than Slots workers ever run at once.
            foreach (var task in preemptible)
            {
                if (!chosen.Contains(task)) PauseLocked(task, now);
            }

            foreach (var task in chosen)
            {
                switch (task.State)
                {
                    case ScheduledTaskState.Running:
                        task.SliceEnd = now + _quantum;
                        break;
                    case ScheduledTaskState.Paused:
                        ResumeLocked(task, now);
                        break;
                    case ScheduledTaskState.Queued:
                        BeginStartLocked(task);
                        toStart.Add(task);
                        changed = true;
                        break;
                }
            }
        }

        return NextWakeLocked(now);
    }

    /// <summary>
    /// Picks up to <paramref name="free"/> tasks for the free slots: each pick goes to the submitter
    /// holding the fewest slots, then the least recently served, so a flood from one submitter
    /// cannot starve another.
    /// </summary>
    private List<ScheduledTask> PickLocked(int free, TimeSpan now)
    {
        var chosen = new List<ScheduledTask>(free);
        var startsLeft = _maxLive - _live;
        var cursors = new List<Cursor>(_submitters.Count);
        foreach (var state in _submitters.Values)
            cursors.Add(new Cursor(state, HeldBy(state, now)));

        while (free > 0)
        {
            Cursor? best = null;
            foreach (var cursor in cursors)
            {
                if (!cursor.Exhausted && (best is null || cursor.IsBefore(best))) best = cursor;
            }

            if (best is null) break;
            if (!best.TryNext(now, ref startsLeft, out var task))
            {
                best.Exhausted = true;
                continue;
            }

            chosen.Add(task);
            best.Held++;
            best.State.LastServed = ++_serveCounter;
            free--;
        }

        return chosen;
    }

    private static int HeldBy(SubmitterState state, TimeSpan now)
    {
        var held = 0;
        foreach (var task in state.Live)
        {
            if (task.State == ScheduledTaskState.Starting || (task.State == ScheduledTaskState.Running && task.SliceEnd > now)) held++;
        }

        return held;
    }

    private TimeSpan NextWakeLocked(TimeSpan now)
    {
        var paused = _live - _holders.Count;
        var othersWaiting = paused > 0 || (_queued > 0 && _live < _maxLive);
        var next = LongestWait;
        foreach (var holder in _holders)
        {
            if (holder.State != ScheduledTaskState.Running) continue;
            var timeoutIn = holder.Timeout - SlotTime(holder, now);
            if (timeoutIn < next) next = timeoutIn;
            if (othersWaiting && holder.SliceEnd - now < next) next = holder.SliceEnd - now;
        }

        return next > TimeSpan.Zero ? next : TimeSpan.Zero;
    }

    private void BeginStartLocked(ScheduledTask task)
    {
        var state = _submitters[task.Submitter];
        state.Queue.Remove(task.QueueNode!);
        task.QueueNode = null;
        task.State = ScheduledTaskState.Starting;
        task.StartOrder = ++_startCounter;
        state.Live.Add(task);
        _holders.Add(task);
        _queued--;
        _live++;
    }

    private void PauseLocked(ScheduledTask task, TimeSpan now)
    {
        task.SlotTimeBefore += now - task.RunningSince;
        task.State = ScheduledTaskState.Paused;
        task.ReadySince = now;
        _holders.Remove(task);
        Signal(task, static w => w.Pause(), "pause");
    }

    private void ResumeLocked(ScheduledTask task, TimeSpan now)
    {
        task.State = ScheduledTaskState.Running;
        task.RunningSince = now;
        task.SliceEnd = now + _quantum;
        _holders.Add(task);
        Signal(task, static w => w.Resume(), "resume");
    }

    private void Signal(ScheduledTask task, Action<IWorker> signal, string action)
    {
        if (task.Worker is not { } worker) return;
        try
        {
            signal(worker);
        }
        catch (Exception ex)
        {
            // A worker that cannot be signalled has died; its run ends with the crash.
            LogSignalFailed(action, worker.ProcessId, ex.Message);
        }
    }

    /// <exception cref="WorkerPoolBrokenException">This peer has no pool for the task's language.</exception>
    private WorkerPool PoolOf(ScheduledTask task) =>
        _pools.TryGetValue(task.Request.Language, out var pool) ? pool
        : throw new WorkerPoolBrokenException(RuntimeMissingReason(task.Request.Language));

    /// <summary>Worker acquisition and the run itself, on the thread pool.</summary>
    private async Task StartAsync(ScheduledTask task)
    {
        IWorker worker;
        try
        {
            worker = await PoolOf(task).RentAsync(task.Submitter, _stopping.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            var message = ex is WorkerPoolBrokenException ? ex.Message : $"no worker process: {ex.Message}";
            bool ended;
            lock (_gate)
            {
                ended = task.State != ScheduledTaskState.Finished;
                if (ended) FinishLocked(task, ExecutionResult.Failure(TaskErrorKind.Unschedulable, message));
                _wake.TrySetResult();
            }

            if (ended) RaiseChanged();
            return;
        }

        bool run;
        lock (_gate)
        {
            run = task.State == ScheduledTaskState.Starting;
            if (run)
            {
                var now = Now;
                task.Worker = worker;
                task.State = ScheduledTaskState.Running;
                task.RunningSince = now;
                task.SliceEnd = now + _quantum;
                task.FirstRunAt = now;
                task.StartedUtc = UtcNow;
                // The loop arms this task's slice and timeout.
                _wake.TrySetResult();
            }
        }

        if (!run)
        {
            // Cancelled while its worker was starting; the worker never ran anything.
            PoolOf(task).Return(worker);
            return;
        }

        Task<ExecutionResult>? running = null;
        while (true)
        {
            RaiseStarted(task);
            if (await RunOnAsync(task, worker, running).ConfigureAwait(false) is not { } next) return;
            (task, running) = next;
        }
    }

    /// <summary>
    /// Runs <paramref name="task"/> on its worker (or awaits <paramref name="running"/>, its run already
    /// written ahead) and finishes it. Returns the task the worker goes on with (already Running or
    /// Paused on it) and its run if that was written ahead, or null once the worker went back to the
    /// pool or was discarded.
    /// </summary>
    private async Task<(ScheduledTask Task, Task<ExecutionResult>? Run)?> RunOnAsync(ScheduledTask task, IWorker worker, Task<ExecutionResult>? running)
    {
        ExecutionResult result;
        ScheduledTask? ahead = null;
        Task<ExecutionResult>? aheadRun = null;
        try
        {
            running ??= worker.RunAsync(task.Request, CancellationToken.None);
            task.Run ??= running;
            if (worker.CanRunAhead)
            {
                lock (_gate) ahead = SendAheadLocked(task, worker);
                // Written right behind the running request: the worker starts it the moment it answers.
                if (ahead is not null) aheadRun = worker.RunAsync(ahead.Request, CancellationToken.None);
            }

            // Hop to the thread pool: a run can complete inside Kill(), which we call under our lock, and
            // continuing inline there would re-enter it (ConfigureAwait's ForceYielding does not cover that).
            await running.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default)
                .ConfigureAwait(false);
            result = await running.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            result = ExecutionResult.Failure(TaskErrorKind.Crashed, $"the worker failed: {ex.Message}");
        }

        // Only this scheduler and the job's supervisor decide that a peer was lost, a task timed out or
        // was cancelled; a worker saying so must never make a job move to another peer.
        // (When the scheduler itself killed the worker, the task is already finished and this result unused.)
        if (result.ErrorKind is TaskErrorKind.PeerLost or TaskErrorKind.TimedOut or TaskErrorKind.Cancelled or TaskErrorKind.Unschedulable)
            result = ExecutionResult.Failure(TaskErrorKind.Crashed, $"{WorkerProcess.ProtocolViolation} (the worker reported {result.ErrorKind})", result.Output);

        bool finishedHere;
        bool wasPaused;
        string? dropAhead = null;
        ScheduledTask? next = null;
        var pool = PoolOf(task);
        lock (_gate)
        {
            finishedHere = task.State != ScheduledTaskState.Finished;
            wasPaused = task.State == ScheduledTaskState.Paused;
            if (finishedHere) FinishLocked(task, result);
            if (ahead is not null)
            {
                if (ahead.State != ScheduledTaskState.SentAhead)
                {
                    // Cancelled (or the peer shut down) while it waited in the pipe: the protocol cannot
                    // take a request back and the worker has just started it, so the worker goes.
                    dropAhead = "a task written ahead to it ended before it started";
                }
                else if (finishedHere && aheadRun is not null && pool.CanKeep(worker))
                {
                    PromoteLocked(ahead, aheadRun, wasPaused);
                    next = ahead;
                }
                else
                {
                    // The worker is killed or not to be reused: the task written ahead is not its
                    // fault, so it goes back to the head of its queue and starts on another worker.
                    RequeueLocked(ahead);
                    dropAhead = "a task written ahead to it must run elsewhere";
                }
            }
            else if (finishedHere && !wasPaused && pool.CanKeep(worker))
            {
                next = HandOffLocked(task, worker);
            }

            _wake.TrySetResult();
        }

        if (!finishedHere)
        {
            pool.Discard(worker, $"it was killed: {task.KilledFor}");
            return null;
        }

        if (dropAhead is not null)
        {
            worker.Kill();
            pool.Discard(worker, dropAhead);
            RaiseChanged();
            return null;
        }

        if (next is not null)
        {
            RaiseChanged();
            return (next, ReferenceEquals(next, ahead) ? aheadRun : null);
        }

        // A run can complete just as its worker is stopped; never park a stopped worker in the pool.
        if (wasPaused) Signal(task, static w => w.Resume(), "resume");
        pool.Return(worker);
        RaiseChanged();
        return null;
    }

    /// <summary>
    /// The slot and the worker of <paramref name="finished"/> go straight to its submitter's next queued
    /// task when nobody else waits for a slot: the worker is not frozen, parked, rented and thawed
    /// between the two (two cgroup writes, a pool round trip and a thread-pool hop per task), and
    /// neither fairness nor time slicing changes, since the rotation would have picked that task
    /// anyway. Null when someone else waits, or the submitter has nothing queued.
    /// </summary>
    private ScheduledTask? HandOffLocked(ScheduledTask finished, IWorker worker)
    {
        if (_disposed || !_submitters.TryGetValue(finished.Submitter, out var state) || state.Queue.First is not { } first) return null;
        var next = first.Value;
        var paused = _live - _holders.Count;
        if (paused > 0 || _queued != state.Queue.Count || next.Request.Language != finished.Request.Language) return null;
        BeginStartLocked(next);
        state.LastServed = ++_serveCounter;
        var now = Now;
        next.Worker = worker;
        next.State = ScheduledTaskState.Running;
        next.RunningSince = now;
        next.SliceEnd = now + _quantum;
        next.FirstRunAt = now;
        next.StartedUtc = UtcNow;
        return next;
    }

    /// <summary>
    /// Writes the submitter's next queued task to <paramref name="running"/>'s worker, behind it, under
    /// the hand-off's rule (nobody else waits for a slot, so the rotation would give that task this
    /// worker anyway), and only for the same program (no new assembly, no recycling between the two).
    /// Depth one: the worker is never more than one request ahead.
    /// </summary>
    private ScheduledTask? SendAheadLocked(ScheduledTask running, IWorker worker)
    {
        if (_disposed || running.State != ScheduledTaskState.Running
            || !_submitters.TryGetValue(running.Submitter, out var state) || state.Queue.First is not { } first)
        {
            return null;
        }

        var next = first.Value;
        var paused = _live - _holders.Count;
        if (paused > 0 || _queued != state.Queue.Count || next.Request.Language != running.Request.Language
            || next.Request.ProgramHash != running.Request.ProgramHash || !PoolOf(running).CanKeep(worker))
        {
            return null;
        }

        state.Queue.Remove(first);
        next.QueueNode = null;
        next.State = ScheduledTaskState.SentAhead;
        next.Worker = worker;
        state.Live.Add(next);
        state.LastServed = ++_serveCounter;
        _queued--;
        _ahead++;
        return next;
    }

    /// <summary>The worker answered the task before <paramref name="task"/>, so it has started this one: it counts from now.</summary>
    private void PromoteLocked(ScheduledTask task, Task<ExecutionResult> run, bool workerStopped)
    {
        var now = Now;
        _ahead--;
        _live++;
        task.StartOrder = ++_startCounter;
        task.Run = run;
        task.FirstRunAt = now;
        task.StartedUtc = UtcNow;
        if (workerStopped)
        {
            // Its worker was paused with the task before it: it waits for a turn like any paused task.
            task.State = ScheduledTaskState.Paused;
            task.ReadySince = now;
            return;
        }

        task.State = ScheduledTaskState.Running;
        task.RunningSince = now;
        task.SliceEnd = now + _quantum;
        _holders.Add(task);
    }

    private void RequeueLocked(ScheduledTask task)
    {
        var state = _submitters[task.Submitter];
        state.Live.Remove(task);
        task.State = ScheduledTaskState.Queued;
        task.Worker = null;
        task.Run = null;
        task.QueueNode = state.Queue.AddFirst(task);
        _ahead--;
        _queued++;
    }

    /// <summary>Ends an unfinished task for a timeout or cancel, killing its worker if it has one.</summary>
    private void EndLocked(ScheduledTask task, TaskErrorKind kind, string message)
    {
        // A task written ahead has not started: it ends here, and its worker, still running the task
        // before it, is discarded once that one is answered (RunOnAsync).
        if (task.State is not (ScheduledTaskState.Queued or ScheduledTaskState.SentAhead))
        {
            task.KilledFor = kind;
            Signal(task, static w => w.Kill(), "kill");
            if (task.State == ScheduledTaskState.Finished) return;
        }

        FinishLocked(task, ExecutionResult.Failure(kind, message));
    }

    private void FinishLocked(ScheduledTask task, ExecutionResult result)
    {
        var now = Now;
        var slotTime = SlotTime(task, now);
        var state = _submitters[task.Submitter];
        if (task.State == ScheduledTaskState.Queued)
        {
            state.Queue.Remove(task.QueueNode!);
            task.QueueNode = null;
            _queued--;
        }
        else if (task.State == ScheduledTaskState.SentAhead)
        {
            state.Live.Remove(task);
            _ahead--;
        }
        else
        {
            state.Live.Remove(task);
            _holders.Remove(task);
            _live--;
        }

        if (state.IsEmpty) _submitters.Remove(task.Submitter);
        _tasks.Remove(task.Id);
        task.State = ScheduledTaskState.Finished;
        var status = result.ErrorKind switch
        {
            TaskErrorKind.None => JobStatus.Succeeded,
            TaskErrorKind.TimedOut => JobStatus.TimedOut,
            TaskErrorKind.Cancelled => JobStatus.Cancelled,
            TaskErrorKind.PeerLost => JobStatus.PeerLost,
            _ => JobStatus.Failed,
        };
        task.Complete(new ScheduledOutcome(
            result, status, task.SubmittedUtc, task.StartedUtc, UtcNow,
            (task.FirstRunAt ?? now) - task.SubmittedAt, slotTime));
        LogFinished(task.Id, task.Submitter, status, slotTime);
    }

    private static TimeSpan SlotTime(ScheduledTask task, TimeSpan now) =>
        task.State == ScheduledTaskState.Running ? task.SlotTimeBefore + (now - task.RunningSince) : task.SlotTimeBefore;

    internal static string Describe(TimeSpan duration) =>
        duration >= TimeSpan.FromSeconds(1)
            ? string.Create(CultureInfo.InvariantCulture, $"{duration.TotalSeconds:0.###} s")
            : string.Create(CultureInfo.InvariantCulture, $"{duration.TotalMilliseconds:0} ms");

    private void RaiseChanged()
    {
        try
        {
            Changed?.Invoke();
        }
        catch (Exception ex)
        {
            LogHandlerFailed(ex);
        }
    }

    private void RaiseStarted(ScheduledTask task)
    {
        try
        {
            TaskStarted?.Invoke(task);
        }
        catch (Exception ex)
        {
            LogHandlerFailed(ex);
        }
    }

    /// <summary>Kills every worker, ends unfinished tasks as Cancelled and disposes idle workers.</summary>
    public async ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            foreach (var task in _tasks.Values.ToArray())
                // Not the task's fault: its supervisor re-runs it elsewhere, as if the peer had died.
                EndLocked(task, TaskErrorKind.PeerLost, $"PeerLost: {ShuttingDown}");
            _wake.TrySetResult();
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        foreach (var pool in _pools.Values) await pool.DisposeAsync().ConfigureAwait(false);
        RaiseChanged();
    }

    private sealed class SubmitterState(long arrival)
    {
        public long Arrival { get; } = arrival;
        public long LastServed { get; set; }
        public LinkedList<ScheduledTask> Queue { get; } = new();
        // Started, unfinished tasks in start order.
        public List<ScheduledTask> Live { get; } = [];
        public bool IsEmpty => Queue.Count == 0 && Live.Count == 0;
    }

    /// <summary>
    /// Walks one submitter's candidates for a turn in round-robin order: whoever has been ready
    /// longest goes first (paused tasks since they were paused, queued ones since they were
    /// submitted), and a task whose slice just ended goes last, so it keeps its slot only when none
    /// of its submitter's other tasks is waiting.
    /// </summary>
    private sealed class Cursor(SubmitterState state, int held)
    {
        private List<ScheduledTask>? _order;
        private int _index;

        public SubmitterState State { get; } = state;
        public int Held { get; set; } = held;
        public bool Exhausted { get; set; }

        public bool IsBefore(Cursor other) =>
            Held != other.Held ? Held < other.Held
            : State.LastServed != other.State.LastServed ? State.LastServed < other.State.LastServed
            : State.Arrival < other.State.Arrival;

        public bool TryNext(TimeSpan now, ref int startsLeft, out ScheduledTask task)
        {
            _order ??= Order(now);
            while (_index < _order.Count)
            {
                var candidate = _order[_index++];
                if (candidate.State == ScheduledTaskState.Queued)
                {
                    if (startsLeft <= 0) continue; // the live-worker bound: it waits unstarted
                    startsLeft--;
                }

                task = candidate;
                return true;
            }

            task = null!;
            return false;
        }

        private List<ScheduledTask> Order(TimeSpan now)
        {
            var ready = new List<(TimeSpan Since, int Rank, long Seq, ScheduledTask Task)>();
            foreach (var live in State.Live)
            {
                if (live.State == ScheduledTaskState.Paused) ready.Add((live.ReadySince, 0, live.StartOrder, live));
                else if (live.State == ScheduledTaskState.Running && live.SliceEnd <= now) ready.Add((now, 1, live.StartOrder, live));
            }

            var position = 0L;
            foreach (var queued in State.Queue) ready.Add((queued.SubmittedAt, 0, long.MinValue + position++, queued));
            ready.Sort((a, b) => a.Since != b.Since ? a.Since.CompareTo(b.Since)
                : a.Rank != b.Rank ? a.Rank.CompareTo(b.Rank)
                : a.Seq.CompareTo(b.Seq));
            return ready.ConvertAll(r => r.Task);
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "The compute scheduler loop failed; retrying")]
    private partial void LogLoopFailed(Exception exception);

    [LoggerMessage(Level = LogLevel.Information, Message = "Task {TaskId} of {Submitter} ran longer than {Timeout} and is killed")]
    private partial void LogTimedOut(Guid taskId, string submitter, TimeSpan timeout);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Task {TaskId} of {Submitter} ended {Status} after {SlotTime} of slot time")]
    private partial void LogFinished(Guid taskId, string submitter, JobStatus status, TimeSpan slotTime);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not {Action} worker {ProcessId}: {Reason}")]
    private partial void LogSignalFailed(string action, int processId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A compute scheduler event handler threw")]
    private partial void LogHandlerFailed(Exception exception);
}
