using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using P2PShare.Compute;
using P2PShare.Tests.Support;

namespace P2PShare.Tests.Compute;

/// <summary>One warm compiler (and its processes) shared by the tests that only ask what compiles.</summary>
public sealed class SharedCompiler : IDisposable
{
    public ProgramCompiler Compiler { get; } = new(NullLogger<ProgramCompiler>.Instance);

    public void Dispose() => Compiler.Dispose();
}

public sealed class ProgramCompilerTests(SharedCompiler shared) : IClassFixture<SharedCompiler>
{
    private readonly ProgramCompiler _compiler = shared.Compiler;

    private TaskRejectedException Rejected(string program, string? function = null) =>
        Assert.Throws<TaskRejectedException>(() => _compiler.Compile(program, function));

    private void AssertNotAllowed(string program, string api)
    {
        var ex = Rejected(program);
        Assert.Equal(TaskErrorKind.NotAllowed, ex.TaskError);
        Assert.StartsWith("NotAllowed: ", ex.Message);
        Assert.Contains(api, ex.Message);
    }

    [Fact]
    public void Compile_error_lists_each_diagnostic_with_its_position()
    {
        var ex = Rejected("int main(int x) => y;\nint other() => \"s\";");
        Assert.Equal(TaskErrorKind.CompileError, ex.TaskError);
        Assert.StartsWith("CompileError: (1,20): error CS0103: The name 'y' does not exist", ex.Message);
        Assert.Contains("(2,16): error CS0029", ex.Message);
        Assert.Equal(ErrorKind.InvalidArgument, ex.Kind);
    }

    [Fact]
    public void Compiled_program_is_assembly_bytes_with_the_text_hash()
    {
        var compiled = _compiler.Compile("int main(int x) => x * x;", null);
        Assert.Equal(ProgramCompiler.Hash("int main(int x) => x * x;"), compiled.Hash);
        Assert.Equal(64, compiled.Hash.Length);
        Assert.True(compiled.Assembly.Length > 512);
        Assert.Equal((byte)'M', compiled.Assembly[0]); // a PE image
        Assert.False(compiled.FromCache);
    }

    [Fact]
    public void Function_defaults_to_main_when_there_are_several()
    {
        Assert.Equal("main", _compiler.Compile("int helper(int x) => x; int main(int x) => helper(x);", null).Function);
    }

    [Fact]
    public void Function_defaults_to_the_only_method()
    {
        Assert.Equal("square", _compiler.Compile("int square(int x) => x * x;", null).Function);
    }

    [Fact]
    public void Named_function_is_used()
    {
        Assert.Equal("helper", _compiler.Compile("int helper(int x) => x; int main(int x) => helper(x);", "helper").Function);
    }

    [Fact]
    public void Missing_function_lists_what_the_program_defines()
    {
        var ex = Rejected("int main(int x) => x; int helper() => 1;", "foo");
        Assert.Equal(TaskErrorKind.InvalidArguments, ex.TaskError);
        Assert.Equal("InvalidArguments: no function 'foo'; the program defines: main, helper", ex.Message);
    }

    [Fact]
    public void Several_methods_and_no_main_must_be_named()
    {
        var ex = Rejected("int a() => 1; int b() => 2;");
        Assert.Equal(TaskErrorKind.InvalidArguments, ex.TaskError);
        Assert.Contains("a, b", ex.Message);
    }

    [Fact]
    public void A_program_without_functions_is_refused()
    {
        Assert.Contains("defines no functions", Rejected("var x = 1;").Message);
    }

    [Fact]
    public void Overloaded_function_is_refused()
    {
        Assert.Contains("overloaded", Rejected("int main(int x) => x; int main(string s) => 1;").Message);
    }

    [Theory]
    [InlineData("string main() => System.IO.File.ReadAllText(\"/etc/passwd\");", "System.IO.File.ReadAllText (file system)")]
    [InlineData("using System.IO; int main() { new FileInfo(\"x\").Delete(); return 0; }", "System.IO.FileInfo.Delete (file system)")]
    [InlineData("using static System.IO.File; string main() => ReadAllText(\"x\");", "System.IO.File (file system)")]
    [InlineData("int main() { System.IO.Directory.Delete(\"/tmp/x\"); return 0; }", "System.IO.Directory.Delete")]
    [InlineData("#load \"other.csx\"\nint main() => 1;", "#load")]
    public void File_system_is_not_allowed(string program, string api) => AssertNotAllowed(program, api);

    [Theory]
    [InlineData("int main() { var c = new System.Net.Sockets.TcpClient(); return 0; }", "System.Net.Sockets.TcpClient (network)")]
    [InlineData("string main() => System.Net.Dns.GetHostName();", "System.Net.Dns.GetHostName (network)")]
    [InlineData("async Task<string> main() => await new System.Net.Http.HttpClient().GetStringAsync(\"http://x\");", "System.Net.Http.HttpClient")]
    public void Network_is_not_allowed(string program, string api) => AssertNotAllowed(program, api);

    [Theory]
    [InlineData("int main() { System.Diagnostics.Process.Start(\"sh\"); return 0; }", "System.Diagnostics.Process.Start (processes)")]
    [InlineData("int main() { var p = new System.Diagnostics.ProcessStartInfo(\"sh\"); return 0; }", "System.Diagnostics.ProcessStartInfo (processes)")]
    public void Processes_are_not_allowed(string program, string api) => AssertNotAllowed(program, api);

    [Theory]
    [InlineData("object main() => typeof(string).GetMethod(\"Trim\", new Type[0]);", "System.Type.GetMethod (reflection)")]
    [InlineData("object main() => Activator.CreateInstance(typeof(object));", "System.Activator.CreateInstance (reflection)")]
    [InlineData("string main() => typeof(int).Assembly.Location;", "System.Reflection.Assembly.Location (reflection)")]
    [InlineData("object main() => System.Reflection.Assembly.GetExecutingAssembly();", "System.Reflection.Assembly")]
    [InlineData("object main() => Type.GetType(\"System.IO.File\");", "System.Type.GetType (reflection)")]
    [InlineData("object main() { Func<int> f = () => 1; return f.Method; }", "System.Delegate.Method (reflection)")]
    [InlineData("[System.Runtime.CompilerServices.UnsafeAccessor(System.Runtime.CompilerServices.UnsafeAccessorKind.Field, Name = \"_x\")] extern ref int X(object o);\nint main() => 1;", "UnsafeAccessor")]
    public void Reflection_is_not_allowed(string program, string api) => AssertNotAllowed(program, api);

    [Theory]
    [InlineData("[System.Runtime.InteropServices.DllImport(\"libc\")] static extern int getpid();\nint main() => getpid();", "System.Runtime.InteropServices.DllImportAttribute (native interop)")]
    [InlineData("static extern int getpid();\nint main() => getpid();", "extern (native interop)")]
    [InlineData("IntPtr main() => System.Runtime.InteropServices.Marshal.AllocHGlobal(10);", "System.Runtime.InteropServices.Marshal.AllocHGlobal")]
    public void Native_interop_is_not_allowed(string program, string api) => AssertNotAllowed(program, api);

    [Theory]
    [InlineData("unsafe int main() { int x = 1; int* p = &x; return *p; }", "(unsafe code)")]
    [InlineData("int main() { unsafe { return 1; } }", "unsafe (unsafe code)")]
    [InlineData("int main() { int x = 1; ref int r = ref System.Runtime.CompilerServices.Unsafe.AsRef(in x); return r; }", "System.Runtime.CompilerServices.Unsafe.AsRef (unsafe code)")]
    public void Unsafe_code_is_not_allowed(string program, string api) => AssertNotAllowed(program, api);

    [Theory]
    [InlineData("int main() { new System.Threading.Thread(() => { }).Start(); return 0; }", "System.Threading.Thread.Start (threads)")]
    [InlineData("int main() { System.Threading.ThreadPool.QueueUserWorkItem(_ => { }); return 0; }", "System.Threading.ThreadPool.QueueUserWorkItem (threads)")]
    [InlineData("int main() { var t = new System.Threading.Timer(_ => { }, null, 0, 10); return 0; }", "System.Threading.Timer (timers)")]
    [InlineData("async Task<int> main() => await Task.Run(() => 1);", "System.Threading.Tasks.Task.Run (threads)")]
    [InlineData("int main() { Task.Factory.StartNew(() => { }); return 0; }", "System.Threading.Tasks.TaskFactory.StartNew (threads)")]
    [InlineData("int main() { Parallel.For(0, 10, i => { }); return 0; }", "System.Threading.Tasks.Parallel.For (threads)")]
    public void Threads_and_timers_are_not_allowed(string program, string api) => AssertNotAllowed(program, api);

    [Theory]
    [InlineData("string main() => Environment.GetEnvironmentVariable(\"HOME\");", "System.Environment.GetEnvironmentVariable (environment)")]
    [InlineData("int main() { Environment.Exit(1); return 0; }", "System.Environment.Exit (environment)")]
    [InlineData("int main() { Environment.FailFast(\"x\"); return 0; }", "System.Environment.FailFast (environment)")]
    [InlineData("long main() => GC.GetTotalMemory(false);", "System.GC.GetTotalMemory (runtime internals)")]
    [InlineData("string main() => Console.ReadLine();", "System.Console.ReadLine (console input or control)")]
    [InlineData("object main() => Console.OpenStandardOutput();", "System.Console.OpenStandardOutput")]
    public void Environment_and_console_input_are_not_allowed(string program, string api) => AssertNotAllowed(program, api);

    [Theory]
    [InlineData("object main() { dynamic d = 1; return d; }")]
    [InlineData("int main() { dynamic d = \"s\"; return d.Length; }")]
    public void Dynamic_is_not_allowed(string program) => AssertNotAllowed(program, "dynamic");

    [Theory]
    [InlineData("object main() => System.Runtime.Loader.AssemblyLoadContext.Default;", "System.Runtime.Loader.AssemblyLoadContext.Default (assembly loading)")]
    [InlineData("object main() => System.Reflection.Assembly.Load(new byte[0]);", "System.Reflection.Assembly.Load (reflection)")]
    [InlineData("object main() => AppDomain.CurrentDomain.GetAssemblies();", "System.AppDomain.GetAssemblies (assembly loading)")]
    [InlineData("#r \"System.Net.Http\"\nint main() => 1;", "#r (assembly loading)")]
    [InlineData("[System.Runtime.CompilerServices.ModuleInitializer] static void Init() { }\nint main() => 1;", "ModuleInitializerAttribute")]
    public void Assembly_loading_is_not_allowed(string program, string api) => AssertNotAllowed(program, api);

    // The vector and memory APIs that take a ref and an offset read and write past the end of an
    // array without the `unsafe` keyword; the ones that take pointers are named too, not only "pointers".
    [Theory]
    [InlineData("int main() { var a = new int[4]; return System.Runtime.Intrinsics.Vector128.LoadUnsafe(ref a[0], 1000).GetElement(0); }", "System.Runtime.Intrinsics.Vector128.LoadUnsafe (unsafe code) at (1,41)")]
    [InlineData("using System.Runtime.Intrinsics; int main() { var a = new int[4]; Vector128.Create(7).StoreUnsafe(ref a[0], 1000); return 0; }", "System.Runtime.Intrinsics.Vector128.StoreUnsafe (unsafe code)")]
    [InlineData("using System.Runtime.Intrinsics; long main() { var a = new long[4]; return Vector256.LoadUnsafe(ref a[0], 64).GetElement(0); }", "System.Runtime.Intrinsics.Vector256.LoadUnsafe (unsafe code)")]
    [InlineData("using System.Runtime.Intrinsics; byte main() { var a = new byte[4]; return Vector512.LoadUnsafe(ref a[0]).GetElement(0); }", "System.Runtime.Intrinsics.Vector512.LoadUnsafe (unsafe code)")]
    [InlineData("using System.Runtime.Intrinsics; int main() { var a = new int[2]; return Vector64.LoadUnsafe(ref a[0], 99).GetElement(0); }", "System.Runtime.Intrinsics.Vector64.LoadUnsafe (unsafe code)")]
    [InlineData("int main() { var a = new int[4]; return System.Numerics.Vector.LoadUnsafe(ref a[0], 1000)[0]; }", "System.Numerics.Vector.LoadUnsafe (unsafe code)")]
    [InlineData("int main() { var a = new int[4]; System.Numerics.Vector.StoreUnsafe(new System.Numerics.Vector<int>(1), ref a[0], 1000); return 0; }", "System.Numerics.Vector.StoreUnsafe (unsafe code)")]
    [InlineData("float main() { var a = new float[1]; return System.Numerics.Vector4.LoadUnsafe(ref a[0], 1000).X; }", "System.Numerics.Vector4.LoadUnsafe (unsafe code)")]
    [InlineData("int main() => System.Runtime.Intrinsics.Vector128.Load<int>(null).GetElement(0);", "System.Runtime.Intrinsics.Vector128.Load (unsafe code)")]
    [InlineData("int main() { System.Buffer.MemoryCopy(null, null, 10, 10); return 0; }", "System.Buffer.MemoryCopy (unsafe code)")]
    [InlineData("int main() { var s = new Span<byte>(null, 1000); return s[999]; }", "new System.Span (unsafe code)")]
    [InlineData("int main() { var a = new int[4]; return System.Runtime.InteropServices.MemoryMarshal.CreateSpan(ref a[0], 1000)[999]; }", "System.Runtime.InteropServices.MemoryMarshal.CreateSpan (native interop)")]
    [InlineData("int main() { var a = new int[4]; return System.Runtime.CompilerServices.Unsafe.Add(ref a[0], 1000); }", "System.Runtime.CompilerServices.Unsafe.Add (unsafe code)")]
    [InlineData("using System.Runtime.InteropServices; int main() { var l = new List<int> { 1 }; CollectionsMarshal.SetCount(l, 1000); return l[999]; }", "System.Runtime.InteropServices.CollectionsMarshal.SetCount (native interop)")]
    public void Unchecked_vector_and_memory_APIs_are_not_allowed(string program, string api) => AssertNotAllowed(program, api);

    // Vector arithmetic and the span-taking loads are bounds-checked; so is a list's span.
    [Theory]
    [InlineData("using System.Runtime.Intrinsics; int main() { var v = Vector128.Create(1, 2, 3, 4) + Vector128.Create(10); return Vector128.Sum(v * 2); }")]
    [InlineData("using System.Numerics; int main(int[] xs) { var v = new Vector<int>(xs.Length >= Vector<int>.Count ? xs : new int[Vector<int>.Count]); return Vector.Sum(v); }")]
    [InlineData("using System.Runtime.Intrinsics; float main() { ReadOnlySpan<float> s = [1f, 2f, 3f, 4f]; return Vector128.Dot(Vector128.Create(s), Vector128.Create(1f)); }")]
    [InlineData("float main() => System.Numerics.Vector4.Dot(new System.Numerics.Vector4(1, 2, 3, 4), System.Numerics.Vector4.One);")]
    [InlineData("using System.Runtime.InteropServices; int main() { var l = new List<int> { 1, 2 }; return CollectionsMarshal.AsSpan(l)[1]; }")]
    public void Bounds_checked_vector_and_span_programs_compile(string program)
    {
        Assert.NotEmpty(_compiler.Compile(program, null).Assembly);
    }

    [Fact]
    public void Denied_api_message_gives_its_position()
    {
        Assert.Contains("at (1,18)", Rejected("string main() => System.IO.File.ReadAllText(\"x\");").Message);
    }

    [Fact]
    public void Denied_types_are_found_inside_generic_arguments_and_inferred_types()
    {
        AssertNotAllowed("int main() { var l = new List<System.Threading.Thread>(); return l.Count; }", "System.Threading.Thread");
        AssertNotAllowed("string main() { var t = System.Threading.Thread.CurrentThread; return \"\"; }", "System.Threading.Thread");
    }

    [Theory]
    [InlineData("int main(int[] xs) => xs.Where(x => x % 2 == 0).Select(x => x * x).Sum();")]
    [InlineData("string main(string s) => string.Join(\",\", s.Split(' ').Reverse()).ToUpperInvariant() + new StringBuilder(\"!\").ToString();")]
    [InlineData("async Task<int> main(int x) { await Task.Delay(1); return x + 1; }")]
    [InlineData("void main() { Console.WriteLine(\"hello\"); Console.Write(42); }")]
    [InlineData("record Point(int X, int Y);\nPoint main(int x) => new Point(x, x * 2);")]
    [InlineData("Dictionary<string, int> main() => new() { [\"a\"] = 1 };")]
    [InlineData("string main() => typeof(int).Name + 1.GetType().FullName;")]
    [InlineData("long main() { var sw = System.Diagnostics.Stopwatch.StartNew(); return sw.ElapsedTicks >= 0 ? 1 : 0; }")]
    [InlineData("System.Numerics.BigInteger main(int n) => System.Numerics.BigInteger.Pow(2, n);")]
    [InlineData("async Task<int> main() { using var cts = new System.Threading.CancellationTokenSource(); var lk = new object(); lock (lk) { } await Task.Yield(); return 1; }")]
    [InlineData("int f(int x) => f(x + 1) + 1;")]
    [InlineData("int main() { var l = new List<byte[]>(); while (true) l.Add(new byte[1 << 20]); }")]
    [InlineData("int main() { Span<int> s = stackalloc int[4]; s[0] = 1; return s[0]; }")]
    public void Ordinary_programs_compile(string program)
    {
        var compiled = _compiler.Compile(program, null);
        Assert.NotEmpty(compiled.Assembly);
    }

    /// <summary>
    /// Nested lambdas handed to overloaded methods: Roslyn binds each lambda once per candidate
    /// delegate type, and each binding binds the lambdas inside it again, so the work grows as
    /// overloads^depth while the text stays a few hundred characters.
    /// </summary>
    internal static string CompileBomb(int depth)
    {
        var body = new StringBuilder("0");
        for (var i = depth - 1; i >= 0; i--) body.Insert(0, $"M(x{i} => ").Append(')');
        return $"int M(Func<int, int> f) => 0; int M(Func<long, int> f) => 0; int M(Func<short, int> f) => 0;\nint main() => {body};";
    }

    [Fact]
    public async Task A_program_text_that_keeps_Roslyn_busy_ends_CompileError_at_the_time_limit_and_its_compiler_process_is_killed()
    {
        await using var compiler = new ProgramCompiler(NullLogger<ProgramCompiler>.Instance, 10, long.MaxValue, TimeSpan.FromSeconds(2), processes: 1);
        compiler.Compile("int main() => 0;", null); // a warm process: the limit counts from the compile, not the process start
        var roslyn = Assert.Single(compiler.CompilerProcessIds);

        var watch = Stopwatch.StartNew();
        var ex = await Assert.ThrowsAsync<TaskRejectedException>(() => compiler.CompileAsync(CompileBomb(14), null)); // minutes of Roslyn's time
        watch.Stop();
        Assert.Equal(TaskErrorKind.CompileError, ex.TaskError);
        Assert.Equal("CompileError: compilation took longer than 2 s", ex.Message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(3.5), $"the compile was answered after {watch.Elapsed.TotalSeconds:0.0} s");
        // Roslyn ignores cancellation: only killing its process stops it burning a core.
        await Eventually.TrueAsync(() => Task.FromResult(!ProcessExists(roslyn)), TimeSpan.FromSeconds(1), $"compiler process {roslyn} still exists");

        // The refusal is cached: the same text does not take a compiler's time again.
        var runs = compiler.CompilationsRun;
        Assert.Throws<TaskRejectedException>(() => compiler.Compile(CompileBomb(14), null));
        Assert.Equal(runs, compiler.CompilationsRun);
        // A replacement compiles the next program.
        Assert.Equal("main", compiler.Compile("int main() => 1;", null).Function);
        Assert.DoesNotContain(roslyn, compiler.CompilerProcessIds);
    }

    private static bool ProcessExists(int pid) =>
        File.Exists($"/proc/{pid}/status") && !File.ReadAllText($"/proc/{pid}/status").Contains("State:\tZ", StringComparison.Ordinal);

    [Fact]
    public void Second_compile_of_the_same_text_comes_from_the_cache_without_Roslyn()
    {
        const string program = "int main(int x) => x + 4141;";
        var first = _compiler.Compile(program, null);
        var runs = _compiler.CompilationsRun;
        var watch = Stopwatch.StartNew();
        var second = _compiler.Compile(program, null);
        watch.Stop();

        Assert.False(first.FromCache);
        Assert.True(second.FromCache);
        Assert.Equal(runs, _compiler.CompilationsRun);
        Assert.Same(first.Assembly, second.Assembly);
        Assert.True(watch.ElapsedMilliseconds < 50, $"cached compile took {watch.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void Refusals_are_cached_too()
    {
        const string program = "int main() => yy;";
        Rejected(program);
        var runs = _compiler.CompilationsRun;
        Assert.Equal(TaskErrorKind.CompileError, Rejected(program).TaskError);
        Assert.Equal(runs, _compiler.CompilationsRun);
    }

    [Fact]
    public void Cache_evicts_the_least_recently_used_program()
    {
        using var compiler = new ProgramCompiler(NullLogger<ProgramCompiler>.Instance, maxEntries: 2, maxBytes: long.MaxValue);
        compiler.Compile("int main() => 1;", null);
        compiler.Compile("int main() => 2;", null);
        compiler.Compile("int main() => 1;", null); // 1 is now the most recent
        compiler.Compile("int main() => 3;", null); // evicts 2
        Assert.True(compiler.Compile("int main() => 1;", null).FromCache);
        Assert.False(compiler.Compile("int main() => 2;", null).FromCache);
        Assert.Equal(2, compiler.CacheUsage.Programs);
    }

    [Fact]
    public void Compiling_is_safe_from_many_threads()
    {
        using var compiler = new ProgramCompiler(NullLogger<ProgramCompiler>.Instance);
        var results = Enumerable.Range(0, 16).AsParallel().WithDegreeOfParallelism(4)
            .Select(i => compiler.Compile($"int main() => {i % 4};", null))
            .ToList();
        Assert.All(results, r => Assert.NotEmpty(r.Assembly));
        Assert.Equal(4, compiler.CacheUsage.Programs);
    }
}
