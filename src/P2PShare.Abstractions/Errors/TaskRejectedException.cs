using P2PShare.Compute;

namespace P2PShare;

/// <summary>
/// A task refused before it ran: it does not compile, uses an API the sandbox forbids, or names a
/// function the program does not define. <see cref="Exception.Message"/> reads <c>Kind: detail</c>,
/// e.g. <c>NotAllowed: System.IO.File.ReadAllText (file system) at (1,17)</c>; <see cref="Detail"/>
/// is the same text without the kind, for records that keep the kind in a field of its own.
/// </summary>
[GenerateSerializer]
public sealed class TaskRejectedException : P2PShareException
{
    public TaskRejectedException(TaskErrorKind taskError, string detail)
        : base(ErrorKind.InvalidArgument, $"{taskError}: {detail}")
    {
        TaskError = taskError;
        Detail = detail;
    }

    [Id(0)] public TaskErrorKind TaskError { get; private set; }

    [Id(1)] public string Detail { get; private set; }
}
