namespace P2PShare.Compute;

/// <summary>How task workers are walled off from the peer and from each other (<c>Compute:Isolation</c>).</summary>
public enum WorkerIsolation
{
    /// <summary>The kernel sandbox; without it the peer refuses tasks.</summary>
    Kernel = 0,

    /// <summary>No OS sandbox: an explicit opt-out, announced at start and in <c>peers</c>.</summary>
    None = 1,
}
