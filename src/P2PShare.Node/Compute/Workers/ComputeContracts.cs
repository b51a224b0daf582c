using P2PShare.Compute;

namespace P2PShare.Compute;

/// <summary>One run of a compiled program in a worker process.</summary>
/// <param name="ProgramHash">SHA-256 of the program text; workers cache loaded assemblies by it.</param>
/// <param name="Assembly">
/// The program as the worker takes it: for C# the emitted script assembly (never loaded into the peer
/// itself), for Python the source text in UTF-8.
/// </param>
/// <param name="Function">The resolved method name to call on the script's submission object.</param>
/// <param name="ArgsJson">A JSON array, converted to the method's parameter types in the worker.</param>
public sealed record ExecutionRequest(
    string ProgramHash,
    byte[] Assembly,
    string Function,
    string ArgsJson,
    int MaxResultBytes,
    int MaxOutputBytes,
    string Language = TaskLanguages.CSharp);

/// <summary>What a worker reports back. <see cref="ErrorKind"/> None means success.</summary>
public sealed record ExecutionResult(
    TaskErrorKind ErrorKind,
    string? ResultJson,
    string? Error,
    string Output)
{
    public static ExecutionResult Failure(TaskErrorKind kind, string error, string output = "") => new(kind, null, error, output);
}

/// <summary>
/// A warm worker process that runs one program at a time. Pausing and resuming map to SIGSTOP and
/// SIGCONT; killing is the only reliable way to stop hostile code.
/// </summary>
public interface IWorker : IAsyncDisposable
{
    int ProcessId { get; }

    /// <summary>False once the process died or was killed; such a worker is replaced, never reused.</summary>
    bool IsHealthy { get; }

    /// <summary>Distinct programs this worker has loaded; the pool recycles workers past a limit.</summary>
    int ProgramsLoaded { get; }

    /// <summary>
    /// True when <see cref="RunAsync"/> may be called once more while a run is outstanding: the request
    /// is written at once and the worker starts it as soon as it has answered the one before, so it
    /// never idles for the peer's round trip between two tasks. Answers come in request order.
    /// </summary>
    bool CanRunAhead => false;

    /// <summary>
    /// Runs a request. A crash, exit or heap overflow of the process completes the task with the
    /// matching error kind, never with an exception. Cancelling the token kills the process.
    /// </summary>
    Task<ExecutionResult> RunAsync(ExecutionRequest request, CancellationToken cancellationToken);

    void Pause();

    void Resume();

    /// <summary>
    /// Stops an idle worker so that whatever its last task left running (continuations, timers) uses
    /// no CPU until <see cref="Thaw"/>, when its submitter's next task takes it. Same mechanism as <see cref="Pause"/>.
    /// </summary>
    void Freeze() => Pause();

    void Thaw() => Resume();

    void Kill();
}

public interface IWorkerFactory
{
    /// <summary>The task language this factory's workers run (<see cref="TaskLanguages"/>).</summary>
    string Language => TaskLanguages.CSharp;

    /// <summary>Why this runtime cannot run on this machine at all (e.g. no python3); null when it can.</summary>
    string? Unavailable => null;

    /// <summary>
    /// Distinct programs a worker may load before it is replaced; null means <c>Compute:RecycleAfterPrograms</c>.
    /// 1 makes every worker run one task.
    /// </summary>
    int? RecycleAfterPrograms => null;

    Task<IWorker> StartAsync(CancellationToken cancellationToken);
}
