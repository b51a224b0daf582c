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

    /// <summary>Tasks that run at once. Default: the processor count.</summary>
    [Range(1, MaxSlots, ErrorMessage = "Compute:Slots must be 1..1024")]
    public int Slots { get; set; } = Environment.ProcessorCount;

    /// <summary>Time slice: when more tasks are runnable than slots, a running task is paused after this.</summary>
    [TimeSpanAtLeast("00:00:00.010", ErrorMessage = "Compute:Quantum must be at least 10 ms")]
    public TimeSpan Quantum { get; set; } = DefaultQuantum;

    /// <summary>
    /// Most worker processes alive at once (running or paused); tasks beyond wait unstarted.
    /// Default: four per processor, at least 4. At least <see cref="Slots"/>.
    /// </summary>
    public int MaxLiveWorkers { get; set; } = Math.Max(4, Environment.ProcessorCount * 4);

    /// <summary>Idle workers kept warm. Default: the processor count. At most <see cref="MaxLiveWorkers"/>.</summary>
    public int WarmWorkers { get; set; } = Environment.ProcessorCount;

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

    /// <summary>How long finished job records are kept.</summary>
    [Positive(ErrorMessage = "Compute:JobRetention must be positive")]
    public TimeSpan JobRetention { get; set; } = DefaultJobRetention;

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

    /// <summary>Run each Python worker in empty network and PID namespaces when the machine allows them.</summary>
    public bool PythonNamespaces { get; set; } = true;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (MaxLiveWorkers < Slots)
            yield return new ValidationResult("Compute:MaxLiveWorkers must be at least Compute:Slots");
        if (WarmWorkers < 0 || WarmWorkers > MaxLiveWorkers)
            yield return new ValidationResult("Compute:WarmWorkers must be 0..Compute:MaxLiveWorkers");
        if (DefaultTimeout <= TimeSpan.Zero || DefaultTimeout > MaxTimeout)
            yield return new ValidationResult("Compute:DefaultTimeout must be positive and at most Compute:MaxTimeout");
        if (PythonWarmWorkers < 0 || PythonWarmWorkers > MaxLiveWorkers)
            yield return new ValidationResult("Compute:PythonWarmWorkers must be 0..Compute:MaxLiveWorkers");
    }
}
