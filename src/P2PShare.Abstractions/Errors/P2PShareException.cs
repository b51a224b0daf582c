namespace P2PShare;

/// <summary>What went wrong, in terms a user can act on. The CLI maps each kind to an exit code.</summary>
public enum ErrorKind
{
    /// <summary>Unclassified failure.</summary>
    Internal = 0,
    /// <summary>The named peer is not in the cluster, is stopping, or its silo died.</summary>
    PeerUnavailable = 1,
    /// <summary>A write would exceed a peer's memory or disk quota.</summary>
    QuotaExceeded = 2,
    /// <summary>A key, file or session does not exist.</summary>
    NotFound = 3,
    /// <summary>A key or file name breaks the naming rules.</summary>
    InvalidName = 4,
    /// <summary>An argument is out of range (value too large, negative size, ...).</summary>
    InvalidArgument = 5,
    /// <summary>Data did not match its SHA-256 or its declared size.</summary>
    IntegrityError = 6,
    /// <summary>The tracker knows no live peer that can take the request.</summary>
    NoPeersAvailable = 7,
}

/// <summary>
/// Base of every failure a caller can cause or must handle. Crosses grain boundaries intact
/// (Orleans serializes it), so the CLI on another machine sees the same kind and message.
/// </summary>
[GenerateSerializer]
public class P2PShareException : Exception
{
    public P2PShareException(ErrorKind kind, string message, Exception? inner = null)
        : base(message, inner) => Kind = kind;

    [Id(0)]
    public ErrorKind Kind { get; private set; }
}

[GenerateSerializer]
public sealed class PeerUnavailableException : P2PShareException
{
    public PeerUnavailableException(string peer, string reason, Exception? inner = null)
        : base(ErrorKind.PeerUnavailable, $"peer '{peer}' is unavailable: {reason}", inner) => Peer = peer;

    [Id(0)]
    public string Peer { get; private set; }
}

[GenerateSerializer]
public sealed class QuotaExceededException : P2PShareException
{
    public QuotaExceededException(string resource, long needed, long used, long quota)
        : base(ErrorKind.QuotaExceeded,
            $"{resource} quota exceeded: needs {Bytes.Format(needed)} but {Bytes.Format(used)} of {Bytes.Format(quota)} is used")
    {
        Resource = resource;
        Needed = needed;
        Used = used;
        Quota = quota;
    }

    [Id(0)] public string Resource { get; private set; }
    [Id(1)] public long Needed { get; private set; }
    [Id(2)] public long Used { get; private set; }
    [Id(3)] public long Quota { get; private set; }
}

[GenerateSerializer]
public sealed class NotFoundException : P2PShareException
{
    public NotFoundException(string what, string name)
        : base(ErrorKind.NotFound, $"{what} '{name}' not found") => Name = name;

    [Id(0)] public string Name { get; private set; }
}

/// <summary>
/// A finished record that was kept for a while and then dropped (its retention passed, or its peer
/// needed the room). A kind of not-found, so scripts see exit code 3, with the reason in its line.
/// </summary>
[GenerateSerializer]
public sealed class ExpiredException : P2PShareException
{
    public ExpiredException(string what, string name, string reason)
        : base(ErrorKind.NotFound, $"{what} '{name}' expired: {reason}") => Name = name;

    [Id(0)] public string Name { get; private set; }
}

[GenerateSerializer]
public sealed class InvalidNameException : P2PShareException
{
    public InvalidNameException(string what, string name, string reason)
        : base(ErrorKind.InvalidName, $"invalid {what} '{Printable(name)}': {reason}") => Name = name;

    [Id(0)] public string Name { get; private set; }

    // Names with control characters would corrupt the one-line error; show them escaped.
    private static string Printable(string s)
    {
        var shown = s.Length > 80 ? s[..80] + "..." : s;
        return string.Concat(shown.Select(c => char.IsControl(c) ? $"\\x{(int)c:x2}" : c.ToString()));
    }
}

[GenerateSerializer]
public sealed class InvalidArgumentException : P2PShareException
{
    public InvalidArgumentException(string message) : base(ErrorKind.InvalidArgument, message) { }
}

[GenerateSerializer]
public sealed class IntegrityException : P2PShareException
{
    public IntegrityException(string message) : base(ErrorKind.IntegrityError, message) { }
}

[GenerateSerializer]
public sealed class NoPeersAvailableException : P2PShareException
{
    public NoPeersAvailableException(string message) : base(ErrorKind.NoPeersAvailable, message) { }
}
