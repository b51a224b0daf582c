using System.Text;
using P2PShare.Compute.Protocol;

namespace P2PShare.Compiler;

/// <summary>
/// The compiler process: warms Roslyn up, says hello, then answers compile requests on stdout one at
/// a time until stdin closes. The peer bounds it from outside (a heap limit, the kernel sandbox, a
/// time limit after which it is killed); it runs no program it compiles.
/// </summary>
internal static class Program
{
    private const string WarmUpProgram = "int main(int x) => new List<int> { x }.Sum();";
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static async Task<int> Main()
    {
        using var input = Console.OpenStandardInput();
        using var output = Console.OpenStandardOutput();
        var compiler = new RoslynCompiler();
        // The first compile in a process costs ~0.8 s (JIT, symbol tables): paid before hello, so
        // that no user's compile pays it against its time limit.
        compiler.Compile(0, "p2pshare-warmup", WarmUpProgram);
        await WorkerFrames.WriteAsync(output, new WorkerHello(Environment.ProcessId), ReadOnlyMemory<byte>.Empty, CancellationToken.None);
        while (await WorkerFrames.ReadAsync<CompileRequestHeader>(input, CompilerFrames.Request, CancellationToken.None, CompilerProtocolJson.Default) is { } frame)
        {
            CompileResponseHeader response;
            byte[] assembly;
            var exit = false;
            try
            {
                (response, assembly) = compiler.Compile(frame.Header.Sequence, frame.Header.Name, StrictUtf8.GetString(frame.Body));
            }
            catch (OutOfMemoryException)
            {
                // Roslyn's caches may be half-built: answer, then make room for a fresh process.
                (response, assembly, exit) = (new CompileResponseHeader(frame.Header.Sequence, CompileOutcome.OutOfMemory, null, []), [], true);
            }
            catch (InsufficientExecutionStackException)
            {
                (response, assembly) = (new CompileResponseHeader(frame.Header.Sequence, CompileOutcome.CompileError, "the program is nested too deeply to compile", []), []);
            }

            await WorkerFrames.WriteAsync(output, response, assembly, CancellationToken.None, CompilerProtocolJson.Default);
            if (exit) return 3;
        }

        return 0;
    }
}
