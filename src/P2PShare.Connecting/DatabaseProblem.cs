namespace P2PShare.Connecting;

/// <summary>What kind of thing is wrong with the cluster database; each side words it for its users.</summary>
public enum DatabaseProblemKind
{
    /// <summary>Npgsql cannot read the connection string.</summary>
    InvalidConnectionString,

    /// <summary>The server refused, failed or timed out in Npgsql's own timeouts.</summary>
    Unreachable,

    /// <summary>Nothing came back within the check's deadline.</summary>
    NoAnswer,

    /// <summary>The database answers but has no OrleansQuery table.</summary>
    NoSchema,

    /// <summary>The OrleansQuery table lacks statements the providers load.</summary>
    IncompleteSchema,
}

/// <summary>Why the cluster database cannot serve P2PShare, from <see cref="ClusterDatabase.FindProblemAsync(string, TimeSpan, CancellationToken)"/>.</summary>
/// <param name="Where"><c>host:port/database</c>, never the password; empty when the connection string is unreadable.</param>
/// <param name="Message">The whole problem on one line, as a peer reports it.</param>
/// <param name="Cause">The exception that says most (PostgreSQL's own error, a socket error), when there is one.</param>
public sealed record DatabaseProblem(DatabaseProblemKind Kind, string Where, string Message, Exception? Cause = null)
{
    public override string ToString() => Message;
}
