namespace P2PShare.Compute;

/// <summary>Names of the Orleans providers P2PShare registers; silos and tests must agree on them.</summary>
public static class StorageNames
{
    /// <summary>
    /// Grain storage holding job records. PostgreSQL (ADO.NET grain storage) in <c>postgres</c> mode,
    /// so a job outlives the silo that supervised it; in-memory in <c>local</c> mode.
    /// </summary>
    public const string Jobs = "jobs";
}
