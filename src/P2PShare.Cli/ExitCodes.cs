namespace P2PShare.Cli;

/// <summary>Process exit codes; scripts branch on these, so they are part of the CLI's contract.</summary>
public static class ExitCodes
{
    public const int Success = 0;
    public const int Failure = 1;
    public const int Usage = 2;
    public const int NotFound = 3;
    public const int QuotaExceeded = 4;
    public const int Unavailable = 5;
    public const int Integrity = 6;

    /// <summary>A job ran and failed, timed out or was cancelled; its error was printed.</summary>
    public const int TaskFailed = 7;

    /// <summary>The shell convention for "stopped by SIGINT", so scripts can tell Ctrl-C from a failure.</summary>
    public const int Interrupted = 130;

    public static int For(ErrorKind kind) => kind switch
    {
        ErrorKind.InvalidName or ErrorKind.InvalidArgument => Usage,
        ErrorKind.NotFound => NotFound,
        ErrorKind.QuotaExceeded => QuotaExceeded,
        ErrorKind.PeerUnavailable or ErrorKind.NoPeersAvailable => Unavailable,
        ErrorKind.IntegrityError => Integrity,
        _ => Failure,
    };
}
