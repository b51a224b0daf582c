using System.ComponentModel.DataAnnotations;
using P2PShare.Configuration;

namespace P2PShare.Compute;

/// <summary>CPU sharing: slots, time slicing, sandbox limits. Section <c>Compute</c>.</summary>
public sealed class ComputeOptions : IValidatableObject
{
    public const string Section = "Compute";
    public const int MaxSlots = 1024;
    public const int DefaultRecycleAfterPrograms = 100;
    public const long DefaultWorkerHeapLimitBytes = 256 * Bytes.MiB;
    public const int DefaultMaxResultBytes = 16 * 1024 * 1024;
    public const int DefaultMaxOutputBytes = 64 * 1024;
    public const int DefaultMaxRetries = 3;
    public const string DefaultPythonPath = "python3";
    public const int DefaultPythonWarmWorkers = 1;
    public static readonly TimeSpan DefaultQuantum = TimeSpan.FromMilliseconds(100);
    public static readonly TimeSpan DefaultTaskTimeout = TimeSpan.FromSeconds(60);
    public static readonly TimeSpan DefaultMaxTimeout = TimeSpan.FromHours(1);
    public static readonly TimeSpan DefaultJobRetention = TimeSpan.FromHours(24);
    public static readonly TimeSpan DefaultIdleWorkerTimeout = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan DefaultFreezeAfterIdle = TimeSpan.Zero;

    /// <summary>
    /// The cores this peer really has: <see cref="Environment.ProcessorCount"/>, which .NET derives from
    /// the CPU affinity mask and the cgroup CPU quota (a container limited to 2 CPUs on a 64-core host
    /// counts 2).
    /// </summary>
    public static int Cores => Environment.ProcessorCount;

    /// <summary>
    /// Submitters a peer serves in turn without restarting a worker per task: each needs a worker of
    /// its own (one trust domain per process), idle ones frozen. A frozen .NET worker holds ~35 MB
    /// resident, a Python zygote with its task process ~15 MB, and a bound idle worker leaves after
    /// <see cref="IdleWorkerTimeout"/>; 64 distinct submitters on every peer of a 3-peer cluster cost
    /// ~2.5 GB per peer at worst, for as long as they keep sending.
    /// </summary>
    public const int DefaultServedSubmitters = 64;

    /// <summary>
    /// Default <see cref="MaxLiveWorkers"/>: <see cref="DefaultServedSubmitters"/> plus eight per core
    /// (a submitter running several tasks at once holds a worker per running task).
    /// </summary>
    public static int DefaultMaxLiveWorkers => DefaultServedSubmitters + 8 * Cores;

    /// <summary>Tasks that run at once. Default: the cores this peer really has (<see cref="Cores"/>).</summary>
    [Range(1, MaxSlots, ErrorMessage = "Compute:Slots must be 1..1024")]
    public int Slots { get; set; } = Cores;

    /// <summary>Time slice: when more tasks are runnable than slots, a running task is paused after this.</summary>
    [TimeSpanAtLeast("00:00:00.010", ErrorMessage = "Compute:Quantum must be at least 10 ms")]
    public TimeSpan Quantum { get; set; } = DefaultQuantum;

    /// <summary>
    /// Most worker processes of one runtime alive at once (running, paused or idle); tasks beyond wait
    /// unstarted. A worker serves one submitter and idles frozen (a .NET worker holds ~35 MB), so this
    /// is also how many submitters can take turns on the peer without restarting workers. Default:
    /// <see cref="DefaultMaxLiveWorkers"/> (64 + 8 per core). At least <see cref="Slots"/>.
    /// </summary>
    public int MaxLiveWorkers { get; set; } = DefaultMaxLiveWorkers;

    /// <summary>Idle workers kept warm. Default: the cores (<see cref="Cores"/>). At most <see cref="MaxLiveWorkers"/>.</summary>
    public int WarmWorkers { get; set; } = Cores;

    /// <summary>
    /// How long a worker stays idle (frozen) for the next task of the submitter it is bound to; then it
    /// is discarded. A worker only ever runs tasks of one submitter.
    /// </summary>
    [TimeSpanAtLeast("00:00:00.100", ErrorMessage = "Compute:IdleWorkerTimeout must be at least 100 ms")]
    public TimeSpan IdleWorkerTimeout { get; set; } = DefaultIdleWorkerTimeout;

    /// <summary>
    /// How long a worker back from a task stays thawed before it is frozen: its submitter's next task
    /// within this grace takes it without a thaw and a freeze. Work a task left running uses CPU for
    /// at most this long (plus one timer tick). Zero (the default, chosen by measurement: the grace
    /// cost more than the freezes it saved, docs/SANDBOX.md) freezes at once.
    /// </summary>
    [TimeSpanAtLeast("00:00:00", ErrorMessage = "Compute:FreezeAfterIdle must not be negative")]
    public TimeSpan FreezeAfterIdle { get; set; } = DefaultFreezeAfterIdle;

    /// <summary>A worker is replaced after loading this many distinct programs, bounding its memory.</summary>
    [Range(1, int.MaxValue, ErrorMessage = "Compute:RecycleAfterPrograms must be at least 1")]
    public int RecycleAfterPrograms { get; set; } = DefaultRecycleAfterPrograms;

    /// <summary>Timeout of a task that asks for none. Positive, at most <see cref="MaxTimeout"/>.</summary>
    public TimeSpan DefaultTimeout { get; set; } = DefaultTaskTimeout;

    /// <summary>Largest timeout a task may ask for.</summary>
    public TimeSpan MaxTimeout { get; set; } = DefaultMaxTimeout;

    /// <summary>Heap cap of each worker (DOTNET_GCHeapHardLimit).</summary>
    [Range(16 * Bytes.MiB, long.MaxValue, ErrorMessage = "Compute:WorkerHeapLimitBytes must be at least 16 MiB")]
    public long WorkerHeapLimitBytes { get; set; } = DefaultWorkerHeapLimitBytes;

    /// <summary>Largest result (JSON bytes) a task may return.</summary>
    [Range(1024, int.MaxValue, ErrorMessage = "Compute:MaxResultBytes must be at least 1024")]
    public int MaxResultBytes { get; set; } = DefaultMaxResultBytes;

    /// <summary>Console output kept per task; the rest is cut.</summary>
    [Range(0, int.MaxValue, ErrorMessage = "Compute:MaxOutputBytes cannot be negative")]
    public int MaxOutputBytes { get; set; } = DefaultMaxOutputBytes;

    /// <summary>How long finished job records are kept, read or not; a sweep drops them after.</summary>
    [Positive(ErrorMessage = "Compute:JobRetention must be positive")]
    public TimeSpan JobRetention { get; set; } = DefaultJobRetention;

    public const long DefaultMaxRetainedResultBytes = 256 * Bytes.MiB;

    /// <summary>
    /// Result, output and error bytes of finished jobs a peer keeps, over the jobs it supervises and
    /// over the attempts it ran (each counted on its own). Over it, the oldest finished records are
    /// dropped first and <c>job get</c> says they expired. At least <see cref="MaxResultBytes"/>.
    /// </summary>
    public long MaxRetainedResultBytes { get; set; } = DefaultMaxRetainedResultBytes;

    public static readonly TimeSpan DefaultPromoteAfter = TimeSpan.FromSeconds(1);
    public const int DefaultMaxRecentFastJobs = 100_000;

    /// <summary>
    /// How long an attached task runs on the fast path (one call to its peer, the origin's call as
    /// its supervision, its record in the origin's memory) before it gets a durable job record and
    /// supervisor like a detached one. Short enough that few tasks are at risk when an origin dies,
    /// long enough that a trivial task never pays for a grain and a storage write.
    /// </summary>
    [TimeSpanAtLeast("00:00:00.010", ErrorMessage = "Compute:PromoteAfter must be at least 10 ms")]
    public TimeSpan PromoteAfter { get; set; } = DefaultPromoteAfter;

    /// <summary>
    /// Most finished fast-path jobs whose records an origin keeps in memory (besides the retention and
    /// <see cref="MaxRetainedResultBytes"/>); over it the oldest are dropped and read as expired.
    /// </summary>
    [Range(1, int.MaxValue, ErrorMessage = "Compute:MaxRecentFastJobs must be at least 1")]
    public int MaxRecentFastJobs { get; set; } = DefaultMaxRecentFastJobs;

    /// <summary>Largest number of re-runs a task may ask for.</summary>
    public const int MaxRetriesLimit = 10;

    /// <summary>
    /// Default number of times a non-confidential task is re-run on another peer when the peer
    /// running it dies or is cut off (3, as Ray does). Tasks submitted on this peer use it unless they
    /// set their own.
    /// </summary>
    [Range(0, MaxRetriesLimit, ErrorMessage = "Compute:MaxRetries must be {1}..{2}")]
    public int MaxRetries { get; set; } = DefaultMaxRetries;

    /// <summary>Path of p2pshare-worker.dll; default: next to the peer's own assemblies.</summary>
    [ExistingFile(ErrorMessage = "Compute:WorkerPath '{0}' does not exist")]
    public string? WorkerPath { get; set; }

    /// <summary>The Python interpreter for Python tasks; empty switches Python tasks off. Found on PATH by default.</summary>
    public string PythonPath { get; set; } = DefaultPythonPath;

    /// <summary>
    /// Idle Python workers kept started (they start in ~50 ms, so fewer than for C#). At most
    /// <see cref="MaxLiveWorkers"/>.
    /// </summary>
    public int PythonWarmWorkers { get; set; } = DefaultPythonWarmWorkers;

    /// <summary>
    /// Run each Python worker in empty network and PID namespaces when the machine allows them. Only
    /// with <see cref="Isolation"/> <c>none</c>: the kernel sandbox has namespaces of its own.
    /// </summary>
    public bool PythonNamespaces { get; set; } = true;

    public const bool DefaultPythonAuditHook = true;

    /// <summary>
    /// Arm the Python worker's audit hook (and its tripwires: refused modules, refused process calls)
    /// in every task. It is the second line, behind the kernel wall: it gives a clear NotAllowed
    /// instead of a bare OS error, and it is all there is with <see cref="Isolation"/> <c>none</c>.
    /// Turning it off exists to test the kernel wall alone; the peer logs a warning at start when it is off.
    /// </summary>
    public bool PythonAuditHook { get; set; } = DefaultPythonAuditHook;

    public const WorkerIsolation DefaultIsolation = WorkerIsolation.Kernel;
    public const string DefaultBubblewrapPath = "bwrap";
    public const int DefaultSandboxUidBase = 61000;
    public const int DefaultSandboxUidCount = 1000;
    public const long DefaultWorkerTmpBytes = 64 * Bytes.MiB;
    public const long DefaultWorkerNativeBytes = 256 * Bytes.MiB;
    public const int DefaultWorkerMaxProcesses = 256;
    public const int DefaultWorkerMaxOpenFiles = 1024;

    /// <summary>
    /// How workers are walled off: <c>kernel</c> (bubblewrap namespaces, an unprivileged uid, seccomp,
    /// cgroup or rlimit caps; a peer that cannot build that wall runs no tasks) or <c>none</c> (workers
    /// run as the peer's own user, guarded only by the language checks; printed as a warning at start
    /// and shown as "unsandboxed").
    /// </summary>
    [EnumDataType(typeof(WorkerIsolation), ErrorMessage = "Compute:Isolation must be kernel or none")]
    public WorkerIsolation Isolation { get; set; } = DefaultIsolation;

    /// <summary>The bubblewrap executable (Debian package <c>bubblewrap</c>), a name on PATH or a full path.</summary>
    [Required(AllowEmptyStrings = false, ErrorMessage = "Compute:BubblewrapPath must name the bwrap executable")]
    public string BubblewrapPath { get; set; } = DefaultBubblewrapPath;

    /// <summary>
    /// First of the numeric uids (and gids) sandboxed workers run as when the peer runs as root, one
    /// per live worker; they need no /etc/passwd entry but must belong to no one else.
    /// </summary>
    public int SandboxUidBase { get; set; } = DefaultSandboxUidBase;

    /// <summary>How many uids from <see cref="SandboxUidBase"/> workers may use; shared by all peers of the machine.</summary>
    public int SandboxUidCount { get; set; } = DefaultSandboxUidCount;

    /// <summary>Size cap of a sandboxed worker's private tmpfs (its working folder and /tmp); also its largest file.</summary>
    [Range(Bytes.MiB, long.MaxValue, ErrorMessage = "Compute:WorkerTmpBytes must be at least 1 MiB")]
    public long WorkerTmpBytes { get; set; } = DefaultWorkerTmpBytes;

    /// <summary>
    /// Memory a worker may use beyond its heap limit (the runtime, native allocations, thread stacks);
    /// its cgroup's memory limit is heap + this + twice the tmpfs cap (/tmp and /dev/shm).
    /// </summary>
    [Range(64 * Bytes.MiB, long.MaxValue, ErrorMessage = "Compute:WorkerNativeBytes must be at least 64 MiB")]
    public long WorkerNativeBytes { get; set; } = DefaultWorkerNativeBytes;

    /// <summary>Processes and threads a sandboxed worker may have (cgroup pids.max and RLIMIT_NPROC).</summary>
    [Range(32, int.MaxValue, ErrorMessage = "Compute:WorkerMaxProcesses must be at least 32 (the runtimes start threads)")]
    public int WorkerMaxProcesses { get; set; } = DefaultWorkerMaxProcesses;

    /// <summary>Open files a sandboxed worker may hold (RLIMIT_NOFILE).</summary>
    [Range(64, int.MaxValue, ErrorMessage = "Compute:WorkerMaxOpenFiles must be at least 64")]
    public int WorkerMaxOpenFiles { get; set; } = DefaultWorkerMaxOpenFiles;

    public const int DefaultCompilerProcesses = 2;
    public const int MaxCompilerProcesses = 64;
    public const long DefaultCompilerHeapLimitBytes = 512 * Bytes.MiB;
    public static readonly TimeSpan DefaultCompileTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Warm <c>p2pshare-compiler</c> processes, and so C# programs compiled at once; more queue. Each
    /// costs ~100 MB while it lives, and a compile bomb takes one core of one of them for up to
    /// <see cref="CompileTimeout"/>: two keep one compile bomb from stalling every other new program.
    /// </summary>
    [Range(1, MaxCompilerProcesses, ErrorMessage = "Compute:CompilerProcesses must be 1..64")]
    public int CompilerProcesses { get; set; } = DefaultCompilerProcesses;

    /// <summary>
    /// Heap cap of each compiler process (DOTNET_GCHeapHardLimit); behind the kernel wall its cgroup
    /// also bounds native memory (this + <see cref="WorkerNativeBytes"/> + the tmpfs caps). A program
    /// text that needs more ends <c>CompileError: compilation ran out of memory</c>.
    /// </summary>
    [Range(64 * Bytes.MiB, long.MaxValue, ErrorMessage = "Compute:CompilerHeapLimitBytes must be at least 64 MiB")]
    public long CompilerHeapLimitBytes { get; set; } = DefaultCompilerHeapLimitBytes;

    /// <summary>
    /// How long Roslyn and the deny-list may take over one program text; past it the compiler process
    /// is killed and the program ends <c>CompileError: compilation took longer than 10 s</c> (cached).
    /// </summary>
    [TimeSpanAtLeast("00:00:00.100", ErrorMessage = "Compute:CompileTimeout must be at least 100 ms")]
    public TimeSpan CompileTimeout { get; set; } = DefaultCompileTimeout;

    public const int DefaultWarmCompilers = 1;

    /// <summary>
    /// Compiler processes started with the peer, so that its first C# task does not wait for Roslyn
    /// to start (seconds); the rest start on first need. 0: all on first need. At most
    /// <see cref="CompilerProcesses"/>.
    /// </summary>
    public int WarmCompilers { get; set; } = DefaultWarmCompilers;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (MaxLiveWorkers < Slots)
            yield return new ValidationResult("Compute:MaxLiveWorkers must be at least Compute:Slots");
        if (WarmCompilers < 0 || WarmCompilers > CompilerProcesses)
            yield return new ValidationResult("Compute:WarmCompilers must be 0..Compute:CompilerProcesses");
        if (WarmWorkers < 0 || WarmWorkers > MaxLiveWorkers)
            yield return new ValidationResult("Compute:WarmWorkers must be 0..Compute:MaxLiveWorkers");
        if (DefaultTimeout <= TimeSpan.Zero || DefaultTimeout > MaxTimeout)
            yield return new ValidationResult("Compute:DefaultTimeout must be positive and at most Compute:MaxTimeout");
        if (PythonWarmWorkers < 0 || PythonWarmWorkers > MaxLiveWorkers)
            yield return new ValidationResult("Compute:PythonWarmWorkers must be 0..Compute:MaxLiveWorkers");
        if (MaxRetainedResultBytes < MaxResultBytes)
            yield return new ValidationResult("Compute:MaxRetainedResultBytes must be at least Compute:MaxResultBytes (one result must fit)");
        if (SandboxUidBase < 1000 || (long)SandboxUidBase + SandboxUidCount > 65534)
            yield return new ValidationResult("Compute:SandboxUidBase must be at least 1000 and the range end below 65534");
        if (SandboxUidCount < MaxLiveWorkers)
            yield return new ValidationResult("Compute:SandboxUidCount must be at least Compute:MaxLiveWorkers");
    }
}
