using System.ComponentModel.DataAnnotations;

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
    IValidateOptions<DiskOptions>, IValidateOptions<TrackerOptions>, IValidateOptions<ComputeOptions>,
    IValidateOptions<LegacyOptions>
{
    public ValidateOptionsResult Validate(string? name, LegacyOptions o)
    {
        var errors = new List<string>();
        // Port 0 asks the OS for a free port (tests use it).
        if (o.PeerPort is < 0 or > 65535) errors.Add($"Legacy:PeerPort (--legacy-port) must be 1..65535, not {o.PeerPort}");
        if (o.TrackerPort is < 0 or > 65535) errors.Add($"Legacy:TrackerPort (--tracker-legacy-port) must be 1..65535, not {o.TrackerPort}");
        if (o.PeerPort is > 0 && o.PeerPort == o.TrackerPort) errors.Add("Legacy:PeerPort and Legacy:TrackerPort must differ");
        if (!System.Net.IPAddress.TryParse(o.BindAddress, out _)) errors.Add($"Legacy:BindAddress '{o.BindAddress}' is not an IP address");
        if (o.MaxFrameBytes < 1024) errors.Add("Legacy:MaxFrameBytes must be at least 1024");
        if (o.MaxBufferedBytes < o.MaxFrameBytes)
            errors.Add("Legacy:MaxBufferedBytes must be at least Legacy:MaxFrameBytes");
        if (o.MaxFileBytes < 0 || o.MaxFileBytes > (long)o.MaxFrameBytes * 3 / 4)
            errors.Add("Legacy:MaxFileBytes must fit a message in base64: at most 3/4 of Legacy:MaxFrameBytes");
        if (o.MaxConnections < 1) errors.Add("Legacy:MaxConnections must be at least 1");
        if (o.IdleTimeout <= TimeSpan.Zero || o.StallTimeout <= TimeSpan.Zero) errors.Add("Legacy:IdleTimeout and Legacy:StallTimeout must be positive");
        if (TaskLanguagesCheck(o.DefaultLanguage) is { } bad) errors.Add(bad);
        if (o.ExternalPeerTimeout <= TimeSpan.Zero) errors.Add("Legacy:ExternalPeerTimeout must be positive");
        return Result(errors);
    }

    private static string? TaskLanguagesCheck(string language) =>
        P2PShare.Compute.TaskLanguages.Normalize(language) is null ? $"Legacy:DefaultLanguage '{language}' is not a known task language" : null;

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
        if (o.MaxRetainedResultBytes < o.MaxResultBytes)
            errors.Add("Compute:MaxRetainedResultBytes must be at least Compute:MaxResultBytes (one result must fit)");
        if (o.MaxRetries is < 0 or > ComputeOptions.MaxRetriesLimit) errors.Add($"Compute:MaxRetries must be 0..{ComputeOptions.MaxRetriesLimit}");
        if (o.WorkerPath is { Length: > 0 } path && !File.Exists(path)) errors.Add($"Compute:WorkerPath '{path}' does not exist");
        if (o.PythonWarmWorkers < 0 || o.PythonWarmWorkers > o.MaxLiveWorkers) errors.Add("Compute:PythonWarmWorkers must be 0..Compute:MaxLiveWorkers");
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
        if (!string.IsNullOrWhiteSpace(o.Primary) && !Endpoints.TryParse(o.Primary, out _))
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

    /// <summary>How long finished job records are kept, read or not; a sweep drops them after.</summary>
    public TimeSpan JobRetention { get; set; } = TimeSpan.FromHours(24);

    public const long DefaultMaxRetainedResultBytes = 256 * Bytes.MiB;

    /// <summary>
    /// Result, output and error bytes of finished jobs a peer keeps, over the jobs it supervises and
    /// over the attempts it ran (each counted on its own). Over it, the oldest finished records are
    /// dropped first and <c>job get</c> says they expired. Default 256 MiB.
    /// </summary>
    public long MaxRetainedResultBytes { get; set; } = DefaultMaxRetainedResultBytes;

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

    /// <summary>Run each Python worker in empty network and PID namespaces when the machine allows them.</summary>
    public bool PythonNamespaces { get; set; } = true;
}

/// <summary>
/// The seed-protocol gateway: the original Python system's length-prefixed JSON over TCP, so its
/// clients and peers work against P2PShare unchanged. Both listeners are off unless a port is set.
/// </summary>
public sealed class LegacyOptions
{
    public const string Section = "Legacy";

    /// <summary>Peer-protocol port (the original's default was 9000); null: no listener.</summary>
    public int? PeerPort { get; set; }

    /// <summary>Tracker-protocol port (the original's default was 8888); null: no listener.</summary>
    public int? TrackerPort { get; set; }

    /// <summary>Address both listeners bind to; the original bound every interface.</summary>
    public string BindAddress { get; set; } = "0.0.0.0";

    /// <summary>Largest accepted message, in bytes; default fits a 100 MiB file in base64 plus its JSON.</summary>
    public int MaxFrameBytes { get; set; } = 140 * 1024 * 1024;

    /// <summary>Largest file PUT_FILE accepts (the original capped files at 100 MB).</summary>
    public long MaxFileBytes { get; set; } = 100 * Bytes.MiB;

    /// <summary>Connections served at once; more are closed at once.</summary>
    public int MaxConnections { get; set; } = 256;

    /// <summary>
    /// Bytes of large message bodies (over 64 KiB) held at once over all connections, counted as they
    /// arrive; bounds the gateway's memory. A body that finds no room within the stall timeout is refused.
    /// </summary>
    public long MaxBufferedBytes { get; set; } = 512 * Bytes.MiB;

    /// <summary>How long a connection may sit between messages before it is closed.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a started message may stall (no byte arriving) before the connection is closed.</summary>
    public TimeSpan StallTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Language of CPU_TASK programs that name none (the original ran Python).</summary>
    public string DefaultLanguage { get; set; } = "python";

    /// <summary>How long an original peer's registration lives without a REGISTER or UPDATE_LOAD (the original: 30 s).</summary>
    public TimeSpan ExternalPeerTimeout { get; set; } = TimeSpan.FromSeconds(30);
}
