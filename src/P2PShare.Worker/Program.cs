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
        var input = Console.OpenStandardInput();
        var output = Console.OpenStandardOutput();
        // The protocol owns stdout: nothing a program prints may reach it, not even before its first run.
        Console.SetOut(TextWriter.Null);
        Console.SetIn(TextReader.Null);

        var runner = new ProgramRunner();
        await WorkerFrames.WriteAsync(output, new WorkerHello(Environment.ProcessId), ReadOnlyMemory<byte>.Empty, CancellationToken.None);
        while (await WorkerFrames.ReadAsync<WorkerRequestHeader>(input, CancellationToken.None) is { } frame)
        {
            var body = frame.Payload.AsMemory(frame.BodyOffset);
            WorkerResponseHeader response;
            ReadOnlyMemory<byte> result;
            try
            {
                (response, result) = await runner.RunAsync(frame.Header, body);
            }
            catch (Exception e)
            {
                // A fault of the worker itself, not of the program: say so; the peer retires this worker.
                (response, result) = (new WorkerResponseHeader(WorkerOutcome.Crashed, $"worker error: {e.GetType().Name}: {e.Message}", ""), ReadOnlyMemory<byte>.Empty);
            }

            await WorkerFrames.WriteAsync(output, response, result, CancellationToken.None);
        }

        return 0;
    }
}
