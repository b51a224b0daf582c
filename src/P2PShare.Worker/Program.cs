using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using P2PShare.Compute.Protocol;

namespace P2PShare.Worker;

/// <summary>
/// The sandbox worker: reads run requests from stdin and answers on stdout (see <see cref="WorkerFrames"/>).
/// The peer kills it on timeout and replaces it after a crash; it exits by itself when stdin closes.
/// </summary>
internal static class Program
{
    private static async Task<int> Main()
    {
        var (input, output) = TakeProtocolPipes();
        // The protocol owns its pipes: nothing a program prints may reach them, not even before its first run.
        Console.SetOut(TextWriter.Null);
        Console.SetIn(TextReader.Null);

        var runner = new ProgramRunner();
        await WorkerFrames.WriteAsync(output, new WorkerHello(Environment.ProcessId), ReadOnlyMemory<byte>.Empty, CancellationToken.None);
        while (await WorkerFrames.ReadAsync<WorkerRequestHeader>(input, FrameLimit.Request, CancellationToken.None) is { } frame)
        {
            WorkerResponseHeader response;
            ReadOnlyMemory<byte> result;
            try
            {
                (response, result) = await runner.RunAsync(frame.Header, frame.Body);
            }
            catch (Exception e)
            {
                // A fault of the worker itself, not of the program: say so; the peer retires this worker.
                (response, result) = (new WorkerResponseHeader(frame.Header.Sequence, WorkerOutcome.Crashed,
                    ProgramRunner.Cut($"worker error: {e.GetType().Name}: {e.Message}"), ""), ReadOnlyMemory<byte>.Empty);
            }

            await WorkerFrames.WriteAsync(output, response, result, CancellationToken.None);
        }

        return 0;
    }

    /// <summary>
    /// Moves the protocol off fds 0 and 1 onto private close-on-exec copies and points 0 and 1 at
    /// /dev/null, so a program that reaches the raw standard handles (past the deny-list) reads nothing
    /// and writes nowhere. The peer does not rely on it: it checks every frame anyway.
    /// </summary>
    private static (Stream Input, Stream Output) TakeProtocolPipes()
    {
        var input = DuplicatePrivately(0);
        var output = DuplicatePrivately(1);
        var devNull = Open("/dev/null", OpenReadWrite);
        if (devNull < 0 || Dup2(devNull, 0) < 0 || Dup2(devNull, 1) < 0)
            throw new IOException($"cannot point the standard handles at /dev/null: errno {Marshal.GetLastPInvokeError()}");
        Close(devNull);
        // Input buffered: a frame (prefix, header, body) and any request queued behind it come in one read.
        return (new FileStream(new SafeFileHandle(input, ownsHandle: true), FileAccess.Read, bufferSize: 64 * 1024),
            new FileStream(new SafeFileHandle(output, ownsHandle: true), FileAccess.Write, bufferSize: 0));
    }

    private static IntPtr DuplicatePrivately(int fd)
    {
        var copy = Fcntl(fd, DupCloseOnExec, 3);
        if (copy < 0) throw new IOException($"cannot duplicate fd {fd}: errno {Marshal.GetLastPInvokeError()}");
        return copy;
    }

    private const int DupCloseOnExec = 1030; // F_DUPFD_CLOEXEC
    private const int OpenReadWrite = 2; // O_RDWR

    [DllImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static extern int Fcntl(int fd, int command, int argument);

    [DllImport("libc", EntryPoint = "dup2", SetLastError = true)]
    private static extern int Dup2(int oldFd, int newFd);

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int Close(int fd);
}
