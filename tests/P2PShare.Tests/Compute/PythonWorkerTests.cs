using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using P2PShare.Compute;
using P2PShare.Tests.Support;
using Xunit.Abstractions;

namespace P2PShare.Tests.Compute;

/// <summary>Real Python sandbox workers (python3 + p2pshare_worker.py), driven the way the scheduler drives them.</summary>
public sealed class PythonWorkerTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly List<IWorker> _workers = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var worker in _workers) await worker.DisposeAsync();
    }

    private static PythonWorkerFactory Factory(long heapLimit = 256 * Bytes.MiB, string python = "python3", bool auditHook = true) =>
        new(Options.Create(new ComputeOptions { WorkerHeapLimitBytes = heapLimit, PythonPath = python, PythonAuditHook = auditHook }), NullLogger<PythonWorkerFactory>.Instance);

    private async Task<WorkerProcess> StartAsync(long heapLimit = 256 * Bytes.MiB)
    {
        var factory = Factory(heapLimit);
        Assert.True(factory.Unavailable is null, factory.Unavailable);
        var worker = await factory.StartWorkerAsync(CancellationToken.None);
        _workers.Add(worker);
        return worker;
    }

    private static ExecutionRequest Request(string program, string args = "[]", string function = "main", int maxResult = 16 * 1024 * 1024, int maxOutput = 64 * 1024)
    {
        var source = Encoding.UTF8.GetBytes(program);
        return new ExecutionRequest(Convert.ToHexStringLower(SHA256.HashData(source)), source, function, args, maxResult, maxOutput, TaskLanguages.Python);
    }

    private static Task<ExecutionResult> RunAsync(IWorker worker, ExecutionRequest request) =>
        worker.RunAsync(request, CancellationToken.None).WaitAsync(Deadline);

    [Fact]
    public async Task The_original_systems_program_runs_and_a_warm_worker_keeps_serving()
    {
        var watch = Stopwatch.StartNew();
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request("def main(x): return x * x", "[5]"));
        output.WriteLine($"python worker: start to hello {worker.StartupTime.TotalMilliseconds:0} ms; to first answer {watch.ElapsedMilliseconds} ms");
        Assert.Equal(TaskErrorKind.None, result.ErrorKind);
        Assert.Equal("25", result.ResultJson);

        var named = await RunAsync(worker, Request("def helper(a, b):\n    return {'sum': a + b, 'items': [a, b, None]}\n", "[2, 3]", "helper"));
        Assert.Equal("""{"sum": 5, "items": [2, 3, null]}""", named.ResultJson);
        var unicode = await RunAsync(worker, Request("def main(s): return s.upper() + ' \u2603'", "[\"h\u00e9llo\"]"));
        Assert.Equal("\"H\u00c9LLO \u2603\"", unicode.ResultJson);
        Assert.Equal(3, worker.ProgramsLoaded);
        Assert.True(worker.IsHealthy);
    }

    [Theory]
    [InlineData("def main():\n    return 1 / 0\n", "[]", TaskErrorKind.Exception, "ZeroDivisionError: division by zero (line 2)")]
    [InlineData("def main(:\n", "[]", TaskErrorKind.CompileError, "(1,10): SyntaxError")]
    [InlineData("def f(x): return x", "[1]", TaskErrorKind.InvalidArguments, "no function 'main'; the program defines: f")]
    [InlineData("def main(x): return x", "[1, 2]", TaskErrorKind.InvalidArguments, "main() cannot take 2 argument(s)")]
    [InlineData("def main(x): return x", "[]", TaskErrorKind.InvalidArguments, "missing 1 required positional argument: 'x'")]
    [InlineData("def main(x):\n    return len(x)", "[5]", TaskErrorKind.Exception, "TypeError: object of type 'int' has no len() (line 2)")]
    [InlineData("def main(): return {1, 2}", "[]", TaskErrorKind.Exception, "result of type set is not JSON-serializable")]
    [InlineData("def main(): return float('nan')", "[]", TaskErrorKind.Exception, "not JSON-serializable")]
    [InlineData("def main(): raise SystemExit(3)", "[]", TaskErrorKind.Exception, "SystemExit: 3")]
    [InlineData("def main(): return 'x' * 5000", "[]", TaskErrorKind.ResultTooLarge, "the limit is 1024")]
    [InlineData("def main(x): return x", "{\"a\": 1}", TaskErrorKind.InvalidArguments, "args must be a JSON array")]
    public async Task A_failing_program_fails_with_its_kind_and_the_worker_lives_on(string program, string args, TaskErrorKind kind, string message)
    {
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request(program, args, maxResult: 1024));
        Assert.Equal(kind, result.ErrorKind);
        Assert.Contains(message, result.Error);
        Assert.True(worker.IsHealthy);
        Assert.Equal("2", (await RunAsync(worker, Request("def main(): return 2"))).ResultJson);
    }

    [Theory]
    [InlineData("import socket\ndef main():\n    return socket.create_connection(('127.0.0.1', 22))", "socket")]
    [InlineData("def main():\n    import urllib.request\n    return urllib.request.urlopen('http://127.0.0.1:9/').read()", "socket")]
    [InlineData("def main():\n    import subprocess\n    return subprocess.run(['id']).returncode", "subprocess")]
    [InlineData("def main():\n    import os\n    return os.system('id')", "os.system")]
    [InlineData("def main():\n    import os\n    return os.fork()", "os.fork")]
    [InlineData("def main():\n    import os\n    os.execv('/bin/sh', ['sh'])", "os.exec")]
    [InlineData("def main():\n    import os\n    return os.kill(1, 0)", "os.kill")]
    [InlineData("def main():\n    return open('/etc/passwd').read()", "open('/etc/passwd')")]
    [InlineData("def main():\n    open('out.txt', 'w').write('x')", "open('out.txt')")]
    [InlineData("def main():\n    import os\n    return os.listdir('/')", "os.listdir")]
    [InlineData("def main():\n    import os\n    return os.remove('/tmp/x')", "os.remove")]
    [InlineData("def main():\n    import ctypes\n    return 1", "ctypes")]
    [InlineData("def main():\n    import shutil\n    return shutil.rmtree('/tmp/nothing-here')", "not allowed in the sandbox")]
    [InlineData("def main():\n    return input()", "builtins.input")]
    [InlineData("import os\ndef main():\n    return open(os.path.dirname(os.__file__) + '/../../../etc/passwd').read()", "etc/passwd')")]
    [InlineData("def main():\n    return open(0).read()", "open(0)")]
    [InlineData("def main():\n    import pwd\n    return pwd.getpwall()[0][0]", "import pwd")]
    [InlineData("def main():\n    import gc\n    return len(gc.get_objects())", "gc.get_objects")]
    [InlineData("def main():\n    return (lambda: 0).__code__.replace(co_consts=(1,)) is None", "code.__new__")]
    [InlineData("def main():\n    import os\n    return os.pidfd_open(1)", "other processes")]
    [InlineData("def main():\n    import os\n    return os.setpriority(os.PRIO_PROCESS, 1, 19)", "other processes")]
    // The hook is checked whatever the program changed: the worker's globals, builtins, os.path.
    [InlineData("import __main__, os\ndef main():\n    __main__._armed = False\n    __main__.DENIED_EVENT_PREFIXES = ()\n    return os.system('true')", "os.system")]
    [InlineData("import builtins, os\ndef main():\n    real = builtins.isinstance\n    builtins.isinstance = lambda *a: True\n    os.path.realpath = lambda p: os.__file__\n    try:\n        return open('/etc/passwd').read()\n    finally:\n        builtins.isinstance = real", "open('/etc/passwd')")]
    // Code that runs while the worker encodes the result (a dict subclass's items()) is checked too.
    [InlineData("import os\nclass D(dict):\n    def items(self):\n        os.system('true')\n        return []\ndef main():\n    return D(a=1)", "os.system")]
    public async Task Hostile_programs_are_refused_and_the_worker_lives_on(string program, string mentioned)
    {
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request(program));
        output.WriteLine($"{result.ErrorKind}: {result.Error}");
        Assert.Equal(TaskErrorKind.NotAllowed, result.ErrorKind);
        Assert.Contains(mentioned, result.Error);
        Assert.Equal("3", (await RunAsync(worker, Request("def main(): return 3"))).ResultJson);
    }

    [Fact]
    public async Task Library_modules_with_optional_imports_of_refused_ones_still_load()
    {
        var worker = await StartAsync();
        // shutil tries `import pwd` (refused) and falls back; logging and threading are allowed.
        var result = await RunAsync(worker, Request(
            "import fractions, logging, shutil, threading\ndef main():\n    return [str(fractions.Fraction(1, 3) * 3), logging.getLevelName(10), shutil.disk_usage is not None, threading.active_count()]"));
        Assert.Equal(TaskErrorKind.None, result.ErrorKind);
        Assert.Equal("[\"1\", \"DEBUG\", true, 1]", result.ResultJson);
    }

    [Fact]
    public async Task A_program_sees_none_of_the_peers_environment()
    {
        Environment.SetEnvironmentVariable("P2PSHARE_TEST_SECRET", "hunter2");
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request("import os\ndef main():\n    return dict(os.environ)"));
        Assert.Equal(TaskErrorKind.None, result.ErrorKind);
        Assert.Equal("{}", result.ResultJson);
    }

    [Fact]
    public async Task A_built_in_module_cannot_be_rebuilt_to_get_the_replaced_process_functions_back()
    {
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request("""
            import _imp, posix
            def main(peer):
                return _imp.create_builtin(posix.__spec__).pidfd_open(peer)
            """, $"[{Environment.ProcessId}]"));
        Assert.Equal(TaskErrorKind.NotAllowed, result.ErrorKind);
        Assert.Equal("NotAllowed: import posix is not allowed in the sandbox", result.Error);
    }

    [Fact]
    public async Task The_process_that_said_hello_forks_the_program_which_sees_no_other_process()
    {
        // Without the audit hook (and the pidfd_open it replaces), only the PID namespace stops the program.
        var factory = Factory(auditHook: false);
        var worker = await factory.StartWorkerAsync(CancellationToken.None);
        _workers.Add(worker);
        var result = await RunAsync(worker, Request("""
            import os
            def main(peer):
                try:
                    os.pidfd_open(peer)
                    reached = True
                except ProcessLookupError:
                    reached = False
                return [os.getppid(), os.getpid(), reached]
            """, $"[{Environment.ProcessId}]"));
        output.WriteLine($"namespaced: {factory.Namespaced}; {result.ResultJson}");
        Assert.Equal(TaskErrorKind.None, result.ErrorKind);
        var seen = System.Text.Json.JsonSerializer.Deserialize<System.Text.Json.JsonElement[]>(result.ResultJson!)!;
        // NSpid lists the zygote's PID in every PID namespace it is in, the peer's first, its own last.
        var nspids = File.ReadLines($"/proc/{worker.ProcessId}/status").First(l => l.StartsWith("NSpid:", StringComparison.Ordinal))
            .Split('\t', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(int.Parse).ToArray();
        // The program ran in a fresh child of the process that said hello, not in it.
        Assert.Equal(nspids[^1], seen[0].GetInt32());
        Assert.NotEqual(nspids[^1], seen[1].GetInt32());
        if (factory.Namespaced)
        {
            Assert.NotEqual(worker.ProcessId, seen[1].GetInt32());
            Assert.False(seen[2].GetBoolean(), "the program reached the peer's process");
        }
    }

    [Fact]
    public async Task Every_task_gets_a_fresh_interpreter_so_nothing_a_program_leaves_behind_meets_the_next()
    {
        var options = new ComputeOptions { Slots = 1, WarmWorkers = 1, MaxLiveWorkers = 4 };
        await using var scheduler = new ComputeScheduler([Factory()], Options.Create(options), TimeProvider.System, NullLogger<ComputeScheduler>.Instance);
        // It stashes its secret argument in builtins and a module, and makes json.loads and json.dumps,
        // which the worker parses requests and encodes results with, lie.
        const string meddler = """
            import builtins, json, math
            def main(secret):
                builtins.stash = secret
                math.stash = secret
                json.loads = lambda *a, **k: [666]
                json.dumps = lambda *a, **k: '"lie"'
                return ['done', __import__('os').getpid()]
            """;
        const string victim = """
            import builtins, json, math, os
            def main(x):
                return [x, getattr(builtins, 'stash', None), getattr(math, 'stash', None), json.dumps([1]), hash('p2pshare'), os.getpid()]
            """;
        var meddled = await scheduler.Submit("mallory", Request(meddler, "[\"s3cret\"]"), TimeSpan.FromSeconds(30)).Completion.WaitAsync(Deadline);
        Assert.StartsWith("[\"done\", ", meddled.Result.ResultJson); // the worker frames its reply with its own json
        var meddlerPid = System.Text.Json.JsonSerializer.Deserialize<System.Text.Json.JsonElement[]>(meddled.Result.ResultJson!)![1].GetInt32();

        // The same submitter's next tasks run in the same zygote (hash() of a str is salted per
        // interpreter, and a zygote's forks share its salt), never in the process the meddler changed.
        var watch = Stopwatch.StartNew();
        var salts = new HashSet<long>();
        var pids = new HashSet<int>();
        for (var i = 0; i < 10; i++)
        {
            var outcome = await scheduler.Submit("mallory", Request(victim, $"[{i}]"), TimeSpan.FromSeconds(30)).Completion.WaitAsync(Deadline);
            Assert.Equal(TaskErrorKind.None, outcome.Result.ErrorKind);
            var seen = System.Text.Json.JsonSerializer.Deserialize<System.Text.Json.JsonElement[]>(outcome.Result.ResultJson!)!;
            Assert.Equal(i, seen[0].GetInt32());
            Assert.Equal(System.Text.Json.JsonValueKind.Null, seen[1].ValueKind);
            Assert.Equal(System.Text.Json.JsonValueKind.Null, seen[2].ValueKind);
            Assert.Equal("[1]", seen[3].GetString());
            salts.Add(seen[4].GetInt64());
            pids.Add(seen[5].GetInt32());
        }

        output.WriteLine($"10 sequential Python tasks of one submitter: {watch.Elapsed.TotalMilliseconds / 10:0.0} ms a task");
        Assert.Single(salts);
        // The meddler's process was not reused; the clean tasks after it share one fresh one.
        Assert.DoesNotContain(meddlerPid, pids);
        Assert.Single(pids);

        // Another submitter never gets mallory's zygote.
        var other = await scheduler.Submit("alice", Request(victim, "[0]"), TimeSpan.FromSeconds(30)).Completion.WaitAsync(Deadline);
        var hers = System.Text.Json.JsonSerializer.Deserialize<System.Text.Json.JsonElement[]>(other.Result.ResultJson!)!;
        Assert.DoesNotContain(hers[4].GetInt64(), salts);
    }

    [Fact]
    public async Task A_reused_task_process_never_shows_a_task_the_globals_threads_timers_or_descriptors_of_the_one_before()
    {
        var worker = await StartAsync();
        async Task<(System.Text.Json.JsonElement Value, int Pid)> Run(string program)
        {
            var result = await RunAsync(worker, Request(program));
            Assert.True(result.ErrorKind == TaskErrorKind.None, result.Error);
            var pair = System.Text.Json.JsonSerializer.Deserialize<System.Text.Json.JsonElement[]>(result.ResultJson!)!;
            return (pair[0], pair[1].GetInt32());
        }

        // A clean task leaves its process to the next one, but never its globals.
        var setter = await Run("import os\nsecret = 's3cret'\ndef main():\n    global g\n    g = secret\n    return [g, os.getpid()]\n");
        var reader = await Run("import os\ndef main():\n    return [[globals().get('g'), globals().get('secret')], os.getpid()]\n");
        Assert.Equal(setter.Pid, reader.Pid);
        Assert.Equal("[null, null]", reader.Value.GetRawText());

        // Each leftover ends the process it was left in: a thread, an armed timer with its handler, an open pipe.
        string[] leavers =
        [
            "import os, threading, time\ndef main():\n    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n    return [1, os.getpid()]\n",
            "import os, signal\ndef boom(*a):\n    raise RuntimeError('the alarm of an earlier task')\ndef main():\n    signal.signal(signal.SIGALRM, boom)\n    signal.setitimer(signal.ITIMER_REAL, 0.3)\n    return [1, os.getpid()]\n",
            "import os\ndef main():\n    r, w = os.pipe()\n    return [1, os.getpid()]\n",
            "import os, math\ndef main():\n    math.pi = 3\n    return [1, os.getpid()]\n",
        ];
        const string Checker = "import os, threading, time, math\ndef main():\n    time.sleep(0.5)\n    return [[threading.active_count(), math.pi > 3.1], os.getpid()]\n";
        var clean = await Run(Checker);
        foreach (var leaver in leavers)
        {
            var left = await Run(leaver);
            var next = await Run(Checker);
            Assert.NotEqual(left.Pid, next.Pid);
            Assert.Equal(clean.Value.GetRawText(), next.Value.GetRawText());
        }
    }

    [Fact]
    public async Task Output_is_captured_and_capped()
    {
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request("def main():\n    for i in range(1000):\n        print('line', i)\n    return 'done'", maxOutput: 100));
        Assert.Equal("\"done\"", result.ResultJson);
        Assert.StartsWith("line 0\nline 1\n", result.Output);
        Assert.Contains("[output truncated at 100 bytes]", result.Output);
        Assert.True(result.Output.Length < 140);
    }

    [Fact]
    public async Task A_memory_bomb_is_OutOfMemory_and_the_worker_is_replaced()
    {
        var worker = await StartAsync(heapLimit: 64 * Bytes.MiB);
        var result = await RunAsync(worker, Request("def main():\n    hog = []\n    while True:\n        hog.append(bytearray(1 << 20))"));
        Assert.Equal(TaskErrorKind.OutOfMemory, result.ErrorKind);
        await Eventually.TrueAsync(() => Task.FromResult(!worker.IsHealthy), Deadline, "the worker leaves after running out of memory");
    }

    [Fact]
    public async Task An_async_main_runs_when_it_awaits_no_event_loop()
    {
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request("async def twice(x):\n    return 2 * x\nasync def main(x):\n    return await twice(x) + 1", "[20]"));
        Assert.Equal("41", result.ResultJson);
        var loop = await RunAsync(worker, Request("import asyncio\nasync def main():\n    await asyncio.sleep(0.1)"));
        Assert.Equal(TaskErrorKind.NotAllowed, loop.ErrorKind);
        Assert.Contains("asyncio", loop.Error);
    }

    [Fact]
    public async Task A_program_that_ends_its_interpreter_is_Crashed_and_the_worker_is_done()
    {
        var worker = await StartAsync();
        var result = await RunAsync(worker, Request("import os\ndef main():\n    os._exit(5)"));
        Assert.Equal(TaskErrorKind.Crashed, result.ErrorKind);
        Assert.Contains("exited with code 5", result.Error);
        Assert.False(worker.IsHealthy);
    }

    [Fact]
    public async Task Kill_ends_an_endless_loop()
    {
        var worker = await StartAsync();
        var run = RunAsync(worker, Request("def main():\n    while True:\n        pass"));
        await Task.Delay(300);
        Assert.False(run.IsCompleted);
        worker.Kill();
        var result = await run;
        Assert.Equal(TaskErrorKind.Crashed, result.ErrorKind);
        Assert.False(worker.IsHealthy);
    }

    [Fact]
    public async Task Pause_stops_a_python_program_and_Resume_continues()
    {
        var worker = await StartAsync();
        // The program runs in a child the zygote forks: count the zygote and its children.
        TimeSpan Cpu() => ProcessCpu.OfTree(worker.ProcessId);

        var startCpu = Cpu();
        // ~1 s of CPU on this machine, whatever the load: the loop counts to a CPU-time target.
        var run = RunAsync(worker, Request("import time\ndef main(seconds):\n    n = 0\n    until = time.process_time() + seconds\n    while time.process_time() < until:\n        n += 1\n    return n", "[1.0]"));
        await Eventually.TrueAsync(() => Task.FromResult(Cpu() - startCpu > TimeSpan.FromMilliseconds(200)), Deadline, "the program starts spinning");
        worker.Pause();
        await Task.Delay(200);
        var pausedCpu = Cpu();
        await Task.Delay(TimeSpan.FromSeconds(1));
        var stillPausedCpu = Cpu();
        Assert.False(run.IsCompleted);
        worker.Resume();
        var result = await run;
        output.WriteLine($"CPU while paused for 1 s: {(stillPausedCpu - pausedCpu).TotalMilliseconds:0} ms");
        Assert.True(stillPausedCpu - pausedCpu < TimeSpan.FromMilliseconds(50));
        Assert.Equal(TaskErrorKind.None, result.ErrorKind);
    }

    [Fact]
    public void A_missing_interpreter_makes_python_unavailable_with_the_reason()
    {
        var factory = Factory(python: "/nonexistent/python3");
        Assert.NotNull(factory.Unavailable);
        Assert.Contains("/nonexistent/python3", factory.Unavailable);
        Assert.Equal(TaskLanguages.Python, factory.Language);
    }

    [Fact]
    public void Workers_get_empty_network_and_PID_namespaces_where_the_machine_allows_them()
    {
        // Root (CI) can always create them; elsewhere it depends on unprivileged user namespaces.
        var factory = Factory();
        output.WriteLine($"python {factory.Interpreter} {factory.Version}; network and PID namespaces: {factory.Namespaced}");
        if (Environment.UserName == "root") Assert.True(factory.Namespaced);
        Assert.True(Path.IsPathRooted(factory.Interpreter), "workers start the interpreter by its full path, not a wrapper on PATH");
    }
}
