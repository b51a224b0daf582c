namespace P2PShare.Compute;

/// <summary>What a job's grain keeps in storage.</summary>
[GenerateSerializer]
public sealed class JobState
{
    /// <summary>The peer the job was submitted on.</summary>
    [Id(0)]
    public string Origin { get; set; } = "";

    /// <summary>The task, with the program and arguments left out when it is confidential: they never leave the origin.</summary>
    [Id(1)]
    public TaskSpec? Spec { get; set; }

    /// <summary>Every attempt so far, oldest first.</summary>
    [Id(2)]
    public List<JobAttempt> Attempts { get; set; } = [];

    /// <summary>The current attempt's last known record; the job's result once terminal.</summary>
    [Id(3)]
    public JobInfo? Current { get; set; }

    [Id(4)]
    public bool CancelRequested { get; set; }

    /// <summary>When the finished job's result was dropped; its record then only says it expired, and why.</summary>
    [Id(5)]
    public DateTime? ExpiredUtc { get; set; }

    [Id(6)]
    public string? ExpiredReason { get; set; }
}
