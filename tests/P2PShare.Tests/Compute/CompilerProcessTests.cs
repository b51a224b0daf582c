using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using P2PShare.Compute;
using P2PShare.Tests.Support;

namespace P2PShare.Tests.Compute;

/// <summary>
/// The compiler process is bounded from outside and not believed: impostor compilers that write
/// garbage, and program texts that make Roslyn eat memory, end in clear CompileErrors, never in a
/// peer that waits, allocates what it is told or grows.
/// </summary>
[Collection(SerialComputeCollection.Name)] // measures the whole process
public sealed class CompilerProcessTests
{
    // A "compiler" that says hello properly, reads the first request, answers it with ANSWER (hex) and then does THEN.
    private const string Impostor = """
        import os, struct, sys
        out = sys.stdout.buffer
        hello = b'{"ProcessId":%d}' % os.getpid()
        out.write(struct.pack('<ii', 4 + len(hello), len(hello)) + hello); out.flush()
        n = struct.unpack('<i', sys.stdin.buffer.read(4))[0]
        sys.stdin.buffer.read(n)
        out.write(bytes.fromhex('ANSWER')); out.flush()
        THEN
        """;

    private static ProgramCompiler ImpostorCompiler(TempDirectory folder, string answerHex, string then = "sys.stdin.buffer.read()")
    {
        var script = Path.Combine(folder.Path, "impostor.py");
        File.WriteAllText(script, Impostor.Replace("ANSWER", answerHex, StringComparison.Ordinal).Replace("THEN", then, StringComparison.Ordinal));
        return new ProgramCompiler(NullLogger<ProgramCompiler>.Instance, 10, long.MaxValue, TimeSpan.FromSeconds(5),
            new CompilerLaunch(script, ComputeOptions.DefaultCompilerHeapLimitBytes, null, Host: "python3"), processes: 1);
    }

    public static TheoryData<string, string> Garbage => new()
    {
        // A length prefix of 2 GiB: refused before anything is allocated.
        { "ffffff7f", "CompileError: the compiler broke the protocol (a frame of 2147483647 bytes; the limit for it is" },
        { "0100000000", "CompileError: the compiler broke the protocol (frame length 1)" },
        // A well-formed frame whose header is not JSON.
        { Frame("{nojson}", 0), "CompileError: the compiler broke the protocol (the header is not a valid CompileResponseHeader" },
        // An answer to another request.
        { Frame("{\"Sequence\":1,\"Kind\":0,\"Detail\":null,\"Functions\":[]}", 4), "CompileError: the compiler broke the protocol (an answer to request 1 while request" },
    };

    [Theory]
    [MemberData(nameof(Garbage))]
    public async Task Garbage_from_a_compiler_is_a_protocol_violation_and_the_compiler_is_killed(string answerHex, string expected)
    {
        using var folder = new TempDirectory();
        await using var compiler = ImpostorCompiler(folder, answerHex);
        var watch = Stopwatch.StartNew();
        var ex = await Assert.ThrowsAsync<TaskRejectedException>(() => compiler.CompileAsync("int main() => 1;", null));
        Assert.Equal(TaskErrorKind.CompileError, ex.TaskError);
        Assert.StartsWith(expected, ex.Message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), "answered by the protocol check, not the time limit");
        // The compiler's own fault is not the program's verdict: nothing cached.
        Assert.Equal(0, compiler.CacheUsage.Programs);
    }

    [Fact]
    public async Task A_compiler_that_answers_a_forged_outcome_is_a_protocol_violation()
    {
        using var folder = new TempDirectory();
        // The impostor cannot know the random sequence; a forged outcome with a guessed one fails on it too.
        await using var compiler = ImpostorCompiler(folder, Frame("{\"Sequence\":0,\"Kind\":7,\"Detail\":\"x\",\"Functions\":[]}", 0));
        var ex = await Assert.ThrowsAsync<TaskRejectedException>(() => compiler.CompileAsync("int main() => 2;", null));
        Assert.StartsWith("CompileError: the compiler broke the protocol (", ex.Message);
    }

    [Fact]
    public async Task A_compiler_that_dies_mid_compile_is_a_crash_not_a_verdict()
    {
        using var folder = new TempDirectory();
        await using var compiler = ImpostorCompiler(folder, "", then: "sys.exit(9)");
        var ex = await Assert.ThrowsAsync<TaskRejectedException>(() => compiler.CompileAsync("int main() => 3;", null));
        Assert.StartsWith("CompileError: the compiler crashed (exit code 9", ex.Message);
        Assert.Equal(0, compiler.CacheUsage.Programs);
    }

    /// <summary>
    /// Constant strings doubled: 35 lines of text, a 128-million-character constant Roslyn must build
    /// (256 MB) to emit it.
    /// </summary>
    internal static string MemoryBomb(int doublings = 22) =>
        "const string s0 = \"0123456789abcdef0123456789abcdef\";\n"
        + string.Concat(Enumerable.Range(1, doublings).Select(i => $"const string s{i} = s{i - 1} + s{i - 1};\n"))
        + $"string main() => s{doublings};";

    [Fact]
    public async Task A_program_text_that_makes_Roslyn_eat_memory_ends_CompileError_out_of_memory_and_the_peer_does_not_grow()
    {
        await using var compiler = new ProgramCompiler(NullLogger<ProgramCompiler>.Instance, 10, long.MaxValue, TimeSpan.FromSeconds(20),
            new CompilerLaunch(ProgramCompiler.DefaultCompilerPath, 128 * Bytes.MiB, null), processes: 1);
        compiler.Compile("int main() => 0;", null);
        var before = WorkingSet();

        var ex = await Assert.ThrowsAsync<TaskRejectedException>(() => compiler.CompileAsync(MemoryBomb(), null));
        Assert.Equal(TaskErrorKind.CompileError, ex.TaskError);
        Assert.Equal("CompileError: compilation ran out of memory (the compiler's heap limit of 128 MiB)", ex.Message);
        var growth = WorkingSet() - before;
        Assert.True(growth < 50 * Bytes.MiB, $"the peer grew by {growth / 1048576.0:0.0} MB");
        // The verdict is cached, and a fresh compiler takes the next program.
        var runs = compiler.CompilationsRun;
        await Assert.ThrowsAsync<TaskRejectedException>(() => compiler.CompileAsync(MemoryBomb(), null));
        Assert.Equal(runs, compiler.CompilationsRun);
        Assert.Equal("main", compiler.Compile("int main() => 5;", null).Function);
    }

    private static long WorkingSet()
    {
        using var self = Process.GetCurrentProcess();
        return self.WorkingSet64;
    }

    private static string Frame(string header, int bodyBytes)
    {
        var h = System.Text.Encoding.UTF8.GetBytes(header);
        var bytes = new List<byte>();
        bytes.AddRange(BitConverter.GetBytes(4 + h.Length + bodyBytes));
        bytes.AddRange(BitConverter.GetBytes(h.Length));
        bytes.AddRange(h);
        bytes.AddRange(new byte[bodyBytes]);
        return Convert.ToHexString(bytes.ToArray());
    }
}
