using P2PShare.Peers;

namespace P2PShare.Cli;

/// <summary>A failure as the user sees it: one line of text and the exit code scripts test.</summary>
public sealed record Failure(string Message, int ExitCode);

/// <summary>
/// Turns any exception into one line on stderr and an exit code. Stack traces help the developer
/// of the CLI, not its user, and a multi-line error breaks scripts that read stderr line by line.
/// </summary>
public static class ErrorReporting
{
    public static Failure Classify(Exception ex) => ex switch
    {
        AggregateException { InnerExceptions.Count: 1 } agg => Classify(agg.InnerExceptions[0]),
        UsageException => new(OneLine(ex), ExitCodes.Usage),
        ClusterUnreachableException => new(OneLine(ex), ExitCodes.Unavailable),
        P2PShareException p => new(OneLine(p), ExitCodes.For(p.Kind)),
        OperationCanceledException => new("interrupted", ExitCodes.Interrupted),
        // Calls to the tracker are not wrapped by PeerCall; the same failures there mean the
        // cluster (or the silo hosting the tracker) went away under us.
        _ when PeerCall.IsUnavailable(ex) => new($"the cluster is unavailable: {OneLine(ex)}", ExitCodes.Unavailable),
        TimeoutException => new($"the cluster did not answer in time: {OneLine(ex)}", ExitCodes.Failure),
        OrleansException => new($"cluster error: {OneLine(ex)}", ExitCodes.Failure),
        FileNotFoundException or DirectoryNotFoundException => new(OneLine(ex), ExitCodes.Usage),
        UnauthorizedAccessException or IOException => new(OneLine(ex), ExitCodes.Failure),
        _ => new(OneLine(ex), ExitCodes.Failure),
    };

    public static int Report(Exception ex, TextWriter stderr)
    {
        if (ex is Commands.JobFailedException failed) return failed.ExitCode; // its line is already out

        var failure = Classify(ex);
        stderr.WriteLine($"error: {failure.Message}");
        return failure.ExitCode;
    }

    /// <summary>
    /// The root cause. Orleans wraps a refused connection twice ("any of the gateways" → "endpoint"
    /// → "ConnectionRefused"); only the last says what to fix.
    /// </summary>
    public static Exception Innermost(Exception ex)
    {
        while (ex.InnerException is not null)
        {
            ex = ex.InnerException;
        }

        return ex;
    }

    /// <summary>The first non-empty line of the message; Orleans messages often carry several.</summary>
    public static string OneLine(Exception ex)
    {
        var line = ex.Message
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .FirstOrDefault();
        return string.IsNullOrEmpty(line) ? ex.GetType().Name : line;
    }
}
