using System.ComponentModel.DataAnnotations;
using P2PShare.Connecting;

namespace P2PShare.Hosting;

/// <summary>Who this peer is and where it keeps its data. Section <c>Peer</c>.</summary>
public sealed class PeerOptions
{
    public const string Section = "Peer";
    public const int DefaultSiloPort = 11111;
    public const int DefaultGatewayPort = 30000;

    /// <summary>The peer's name; also the silo's <c>SiloName</c>. Unique in the cluster.</summary>
    public string Name { get; set; } = "";

    /// <summary>Port for silo-to-silo traffic.</summary>
    public int SiloPort { get; set; } = DefaultSiloPort;

    /// <summary>Port clients (the CLI) connect to.</summary>
    public int GatewayPort { get; set; } = DefaultGatewayPort;

    /// <summary>
    /// Silo endpoint (<c>host:port</c>) of the primary peer of a localhost cluster. Empty: this peer
    /// is the primary. The primary holds the membership table, so losing it loses the cluster.
    /// </summary>
    public string? Primary { get; set; }

    /// <summary>Folder for this peer's files. Default: <c>data/NAME</c> under the working directory.</summary>
    public string? DataDir { get; set; }
}

/// <summary>Per-peer memory sharing limits. Section <c>Memory</c>.</summary>
public sealed class MemoryOptions
{
    public const string Section = "Memory";
    public const long DefaultQuotaBytes = 256 * Bytes.MiB;
    public const int DefaultMaxKeyBytes = 512;
    public const long DefaultMaxValueBytes = 16 * Bytes.MiB;

    /// <summary>Total bytes of keys (UTF-8) plus values the peer stores. A write past it fails.</summary>
    public long QuotaBytes { get; set; } = DefaultQuotaBytes;

    /// <summary>Longest key, in UTF-8 bytes.</summary>
    public int MaxKeyBytes { get; set; } = DefaultMaxKeyBytes;

    /// <summary>Largest single value.</summary>
    public long MaxValueBytes { get; set; } = DefaultMaxValueBytes;

    /// <summary>How often expired keys are swept so their bytes return to the quota.</summary>
    public TimeSpan ExpirySweepInterval { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>Per-peer disk sharing limits. Section <c>Disk</c>.</summary>
public sealed class DiskOptions
{
    public const string Section = "Disk";
    public const long DefaultQuotaBytes = 10 * Bytes.GiB;
    public const long DefaultMaxFileBytes = 4 * Bytes.GiB;
    public const int DefaultChunkBytes = (int)Bytes.MiB;

    /// <summary>Total bytes of stored files plus uploads in progress.</summary>
    public long QuotaBytes { get; set; } = DefaultQuotaBytes;

    /// <summary>Largest single file.</summary>
    public long MaxFileBytes { get; set; } = DefaultMaxFileBytes;

    /// <summary>Largest chunk a client may send or ask for in one call.</summary>
    public int ChunkBytes { get; set; } = DefaultChunkBytes;

    /// <summary>An upload or download with no call for this long is dropped and its temp space freed.</summary>
    public TimeSpan SessionIdleTimeout { get; set; } = TimeSpan.FromMinutes(5);
}

/// <summary>How peers report to the tracker. Section <c>Tracker</c>.</summary>
public sealed class TrackerOptions
{
    public const string Section = "Tracker";

    /// <summary>Heartbeat period of load reports.</summary>
    public TimeSpan ReportInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Shortest gap between two on-change reports, so a burst of writes is one report.</summary>
    public TimeSpan MinReportGap { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>A peer silent for this many of its report intervals is dropped from routing.</summary>
    public int MissedReportsLimit { get; set; } = 3;
}

/// <summary>Checks every option at start-up and names the bad one in a one-line message.</summary>
public sealed class OptionsValidator :
    IValidateOptions<PeerOptions>, IValidateOptions<MemoryOptions>,
    IValidateOptions<DiskOptions>, IValidateOptions<TrackerOptions>, IValidateOptions<ComputeOptions>
{
    public ValidateOptionsResult Validate(string? name, ComputeOptions o)
    {
        var errors = new List<string>();
        if (o.Slots is < 1 or > 1024) errors.Add("Compute:Slots must be 1..1024");
        if (o.Quantum < TimeSpan.FromMilliseconds(10)) errors.Add("Compute:Quantum must be at least 10 ms");
        if (o.MaxLiveWorkers < o.Slots) errors.Add("Compute:MaxLiveWorkers must be at least Compute:Slots");
        if (o.WarmWorkers < 0 || o.WarmWorkers > o.MaxLiveWorkers) errors.Add("Compute:WarmWorkers must be 0..Compute:MaxLiveWorkers");
        if (o.RecycleAfterPrograms < 1) errors.Add("Compute:RecycleAfterPrograms must be at least 1");
        if (o.DefaultTimeout <= TimeSpan.Zero || o.DefaultTimeout > o.MaxTimeout)
            errors.Add("Compute:DefaultTimeout must be positive and at most Compute:MaxTimeout");
        if (o.WorkerHeapLimitBytes < 16 * Bytes.MiB) errors.Add("Compute:WorkerHeapLimitBytes must be at least 16 MiB");
        if (o.MaxResultBytes < 1024) errors.Add("Compute:MaxResultBytes must be at least 1024");
        if (o.MaxOutputBytes < 0) errors.Add("Compute:MaxOutputBytes cannot be negative");
        if (o.JobRetention <= TimeSpan.Zero) errors.Add("Compute:JobRetention must be positive");
        if (o.MaxRetries is < 0 or > ComputeOptions.MaxRetriesLimit) errors.Add($"Compute:MaxRetries must be 0..{ComputeOptions.MaxRetriesLimit}");
        if (o.WorkerPath is { Length: > 0 } path && !File.Exists(path)) errors.Add($"Compute:WorkerPath '{path}' does not exist");
        if (o.PythonWarmWorkers < 0 || o.PythonWarmWorkers > o.MaxLiveWorkers) errors.Add("Compute:PythonWarmWorkers must be 0..Compute:MaxLiveWorkers");
        if (!Enum.IsDefined(o.Isolation)) errors.Add("Compute:Isolation must be kernel or none");
        if (string.IsNullOrWhiteSpace(o.BubblewrapPath)) errors.Add("Compute:BubblewrapPath must name the bwrap executable");
        if (o.SandboxUidBase < 1000 || (long)o.SandboxUidBase + o.SandboxUidCount > 65534)
            errors.Add("Compute:SandboxUidBase must be at least 1000 and the range end below 65534");
        if (o.SandboxUidCount < o.MaxLiveWorkers) errors.Add("Compute:SandboxUidCount must be at least Compute:MaxLiveWorkers");
        if (o.WorkerTmpBytes < Bytes.MiB) errors.Add("Compute:WorkerTmpBytes must be at least 1 MiB");
        if (o.WorkerNativeBytes < 64 * Bytes.MiB) errors.Add("Compute:WorkerNativeBytes must be at least 64 MiB");
        if (o.WorkerMaxProcesses < 32) errors.Add("Compute:WorkerMaxProcesses must be at least 32 (the runtimes start threads)");
        if (o.WorkerMaxOpenFiles < 64) errors.Add("Compute:WorkerMaxOpenFiles must be at least 64");
        return Result(errors);
    }

    public ValidateOptionsResult Validate(string? name, PeerOptions o)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(o.Name))
            errors.Add("Peer:Name is required (--name NAME)");
        else if (PeerNames.Problem(o.Name) is { } problem)
            errors.Add($"Peer:Name '{o.Name}' {problem}");
        CheckPort(errors, "Peer:SiloPort", o.SiloPort);
        CheckPort(errors, "Peer:GatewayPort", o.GatewayPort);
        if (o.SiloPort == o.GatewayPort)
            errors.Add("Peer:SiloPort and Peer:GatewayPort must differ");
        if (!string.IsNullOrWhiteSpace(o.Primary) && !HostPort.TryParse(o.Primary, out _, allowBareIPv6: true))
            errors.Add($"Peer:Primary '{o.Primary}' is not host:port");
        return Result(errors);
    }

    public ValidateOptionsResult Validate(string? name, MemoryOptions o)
    {
        var errors = new List<string>();
        if (o.QuotaBytes <= 0) errors.Add("Memory:QuotaBytes must be positive");
        if (o.MaxKeyBytes is <= 0 or > 64 * 1024) errors.Add("Memory:MaxKeyBytes must be 1..65536");
        if (o.MaxValueBytes <= 0) errors.Add("Memory:MaxValueBytes must be positive");
        if (o.MaxValueBytes > 64 * Bytes.MiB) errors.Add("Memory:MaxValueBytes must be at most 64 MiB (one message)");
        if (o.ExpirySweepInterval <= TimeSpan.Zero) errors.Add("Memory:ExpirySweepInterval must be positive");
        return Result(errors);
    }

    public ValidateOptionsResult Validate(string? name, DiskOptions o)
    {
        var errors = new List<string>();
        if (o.QuotaBytes <= 0) errors.Add("Disk:QuotaBytes must be positive");
        if (o.MaxFileBytes <= 0) errors.Add("Disk:MaxFileBytes must be positive");
        if (o.ChunkBytes is < 4096 or > 16 * 1024 * 1024) errors.Add("Disk:ChunkBytes must be 4096..16777216");
        if (o.SessionIdleTimeout <= TimeSpan.Zero) errors.Add("Disk:SessionIdleTimeout must be positive");
        return Result(errors);
    }

    public ValidateOptionsResult Validate(string? name, TrackerOptions o)
    {
        var errors = new List<string>();
        if (o.ReportInterval < TimeSpan.FromMilliseconds(100)) errors.Add("Tracker:ReportInterval must be at least 100 ms");
        if (o.MinReportGap < TimeSpan.Zero || o.MinReportGap > o.ReportInterval)
            errors.Add("Tracker:MinReportGap must be between 0 and Tracker:ReportInterval");
        if (o.MissedReportsLimit < 1) errors.Add("Tracker:MissedReportsLimit must be at least 1");
        return Result(errors);
    }

    private static void CheckPort(List<string> errors, string key, int port)
    {
        if (port is < 1 or > 65535) errors.Add($"{key} must be 1..65535, not {port}");
    }

    private static ValidateOptionsResult Result(List<string> errors) =>
        errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
}

/// <summary>CPU sharing: slots, time slicing, sandbox limits. Section <c>Compute</c>.</summary>
public sealed class ComputeOptions
{
    public const string Section = "Compute";

    /// <summary>Tasks that run at once. Default: the processor count.</summary>
    public int Slots { get; set; } = Environment.ProcessorCount;

    /// <summary>Time slice: when more tasks are runnable than slots, a running task is paused after this.</summary>
    public TimeSpan Quantum { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Most worker processes alive at once (running or paused); tasks beyond wait unstarted.</summary>
    public int MaxLiveWorkers { get; set; } = Math.Max(4, Environment.ProcessorCount * 4);

    /// <summary>Idle workers kept warm.</summary>
    public int WarmWorkers { get; set; } = Environment.ProcessorCount;

    /// <summary>A worker is replaced after loading this many distinct programs, bounding its memory.</summary>
    public int RecycleAfterPrograms { get; set; } = 100;

    /// <summary>Timeout of a task that asks for none.</summary>
    public TimeSpan DefaultTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Largest timeout a task may ask for.</summary>
    public TimeSpan MaxTimeout { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Heap cap of each worker (DOTNET_GCHeapHardLimit).</summary>
    public long WorkerHeapLimitBytes { get; set; } = 256 * Bytes.MiB;

    /// <summary>Largest result (JSON bytes) a task may return.</summary>
    public int MaxResultBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>Console output kept per task; the rest is cut.</summary>
    public int MaxOutputBytes { get; set; } = 64 * 1024;

    /// <summary>How long finished job records are kept.</summary>
    public TimeSpan JobRetention { get; set; } = TimeSpan.FromHours(24);

    /// <summary>Largest number of re-runs a task may ask for.</summary>
    public const int MaxRetriesLimit = 10;

    /// <summary>
    /// Default number of times a non-confidential task is re-run on another peer when the peer
    /// running it dies or is cut off (3, as Ray does). Tasks submitted on this peer use it unless they
    /// set their own.
    /// </summary>
    public int MaxRetries { get; set; } = 3;

    /// <summary>Path of p2pshare-worker.dll; default: next to the peer's own assemblies.</summary>
    public string? WorkerPath { get; set; }

    /// <summary>The Python interpreter for Python tasks; empty switches Python tasks off. Found on PATH by default.</summary>
    public string PythonPath { get; set; } = "python3";

    /// <summary>Idle Python workers kept started (they start in ~50 ms, so fewer than for C#).</summary>
    public int PythonWarmWorkers { get; set; } = 1;

    /// <summary>
    /// Run each Python worker in empty network and PID namespaces when the machine allows them. Only
    /// with <see cref="Isolation"/> <c>none</c>: the kernel sandbox has namespaces of its own.
    /// </summary>
    public bool PythonNamespaces { get; set; } = true;

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
    public WorkerIsolation Isolation { get; set; } = DefaultIsolation;

    /// <summary>The bubblewrap executable (Debian package <c>bubblewrap</c>), a name on PATH or a full path.</summary>
    public string BubblewrapPath { get; set; } = DefaultBubblewrapPath;

    /// <summary>
    /// First of the numeric uids (and gids) sandboxed workers run as when the peer runs as root, one
    /// per live worker; they need no /etc/passwd entry but must belong to no one else.
    /// </summary>
    public int SandboxUidBase { get; set; } = DefaultSandboxUidBase;

    /// <summary>How many uids from <see cref="SandboxUidBase"/> workers may use; shared by all peers of the machine.</summary>
    public int SandboxUidCount { get; set; } = DefaultSandboxUidCount;

    /// <summary>Size cap of a sandboxed worker's private tmpfs (its working folder and /tmp); also its largest file.</summary>
    public long WorkerTmpBytes { get; set; } = DefaultWorkerTmpBytes;

    /// <summary>
    /// Memory a worker may use beyond its heap limit (the runtime, native allocations, thread stacks);
    /// its cgroup's memory limit is heap + this + twice the tmpfs cap (/tmp and /dev/shm).
    /// </summary>
    public long WorkerNativeBytes { get; set; } = DefaultWorkerNativeBytes;

    /// <summary>Processes and threads a sandboxed worker may have (cgroup pids.max and RLIMIT_NPROC).</summary>
    public int WorkerMaxProcesses { get; set; } = DefaultWorkerMaxProcesses;

    /// <summary>Open files a sandboxed worker may hold (RLIMIT_NOFILE).</summary>
    public int WorkerMaxOpenFiles { get; set; } = DefaultWorkerMaxOpenFiles;
}

/// <summary>How task workers are walled off from the peer and from each other (<c>Compute:Isolation</c>).</summary>
public enum WorkerIsolation
{
    /// <summary>The kernel sandbox; without it the peer refuses tasks.</summary>
    Kernel = 0,

    /// <summary>No OS sandbox: an explicit opt-out, announced at start and in <c>peers</c>.</summary>
    None = 1,
}
