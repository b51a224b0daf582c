using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using P2PShare.Compute;
using P2PShare.Peers;
using P2PShare.Tests.Support;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace P2PShare.Tests.Compute.Sandbox;

/// <summary>
/// The hostile suite runs alone: its last test compares the peers' resident memory with where it
/// started, which other classes running beside it would move.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class HostileSuiteCollection : ICollectionFixture<HostileSuiteFixture>
{
    public const string Name = "hostile suite";
}

/// <summary>
/// Two real peers (silos of this process, with real sandboxed workers): <see cref="HookedPeer"/> as
/// shipped, and <see cref="BarePeer"/> with the Python audit hook off, where Python programs meet the
/// kernel wall alone. And what the host looked like before the first hostile program ran: the peers' resident memory, a sentinel folder tasks
/// try to write, and a marker every file a task tries to leave behind is named with.
/// </summary>
public sealed class HostileSuiteFixture : IAsyncLifetime
{
    private const string SentinelText = "untouched";

    /// <summary>Configured as shipped: the audit hook in front of the kernel wall.</summary>
    public const string HookedPeer = "peer-1";

    /// <summary>Compute:PythonAuditHook=false: nothing but the kernel wall between a Python task and the host.</summary>
    public const string BarePeer = "peer-2";

    public PeerCluster Peers { get; private set; } = null!;

    /// <summary>World-writable, so that only the wall (not file permissions) keeps a task's uid out of it.</summary>
    public string Sentinel { get; } = Path.Combine(Path.GetTempPath(), $"p2pshare-hostile-{Guid.NewGuid():N}");

    public string Marker { get; } = $"hostile-{Guid.NewGuid():N}";

    public long StartRssBytes { get; private set; }

    public DateTime SentinelWritten { get; private set; }

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Sentinel);
        File.WriteAllText(Path.Combine(Sentinel, "file"), SentinelText);
        const UnixFileMode everyone = (UnixFileMode)0b111_111_111;
        if (OperatingSystem.IsLinux())
        {
            File.SetUnixFileMode(Sentinel, everyone);
            File.SetUnixFileMode(Path.Combine(Sentinel, "file"), everyone);
        }
        SentinelWritten = Directory.GetLastWriteTimeUtc(Sentinel);

        Peers = await PeerCluster.StartAsync(2, services => services.Configure<ComputeOptions>(o =>
        {
            o.Slots = 2;
            o.WarmWorkers = 1;
            o.PythonWarmWorkers = 1;
            o.MaxLiveWorkers = 8;
        }), configurePeer: (name, services) =>
        {
            if (name == BarePeer) services.Configure<ComputeOptions>(o => o.PythonAuditHook = false);
        });

        // Warm both runtimes on both peers before the baseline: the first task of each loads code.
        foreach (var peer in new[] { "peer-1", "peer-2" })
        {
            foreach (var (language, program) in new[] { (TaskLanguages.CSharp, "int main(int x) => x * x;"), (TaskLanguages.Python, "def main(x): return x * x") })
            {
                var done = await JobWaits.TerminalAsync(Peers, (await Peers.Peer(peer).SubmitAsync(
                    new TaskSpec(program, null, "[3]", false, TimeSpan.FromSeconds(60), "warm-up", peer, Language: language))).JobId, TimeSpan.FromSeconds(90));
                if (done.ResultJson != "9") throw new InvalidOperationException($"warm-up {language} on {peer}: {done.Status} {done.Error}");
            }
        }

        StartRssBytes = HostProbe.SettledRssBytes();
    }

    /// <summary>Where the sentinel stands now: its files and their contents, and the folder's mtime.</summary>
    public (string[] Files, string Text, DateTime Written) SentinelNow() =>
        (Directory.GetFileSystemEntries(Sentinel).Select(p => Path.GetFileName(p)).ToArray(),
         File.ReadAllText(Path.Combine(Sentinel, "file")),
         Directory.GetLastWriteTimeUtc(Sentinel));

    public string ExpectedSentinelText => SentinelText;

    public async Task DisposeAsync()
    {
        await Peers.DisposeAsync();
        Directory.Delete(Sentinel, recursive: true);
    }
}

/// <summary>What the tests read of the host from outside the wall.</summary>
public static class HostProbe
{
    /// <summary>This process's resident memory after a full, compacting collection that returns freed memory.</summary>
    public static long SettledRssBytes()
    {
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>A process as /proc shows it; null when it is gone or unreadable.</summary>
    public sealed record ProcessView(int Pid, int ParentPid, int[] NsPids, string Status, string CommandLine)
    {
        public string Field(string name) =>
            Status.Split('\n').First(l => l.StartsWith(name + ":", StringComparison.Ordinal))[(name.Length + 1)..].Trim();

        /// <summary>The PID the process has in its innermost PID namespace; a sandbox's bwrap is 1, its worker 2.</summary>
        public int InnerPid => NsPids[^1];

        public bool InSandbox => NsPids.Length > 1;

        public long CpuTicks
        {
            get
            {
                try
                {
                    var stat = File.ReadAllText($"/proc/{Pid}/stat");
                    var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                    return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
                }
                catch (IOException)
                {
                    return -1;
                }
            }
        }
    }

    public static ProcessView? Read(int pid)
    {
        try
        {
            var status = File.ReadAllText($"/proc/{pid}/status");
            var view = new ProcessView(pid, 0, [], status, File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim());
            return view with
            {
                ParentPid = int.Parse(view.Field("PPid"), CultureInfo.InvariantCulture),
                NsPids = view.Field("NSpid").Split('\t', StringSplitOptions.RemoveEmptyEntries).Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray(),
            };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>Every live process started, directly or not, by this process (the peers' workers and whatever they started).</summary>
    public static List<ProcessView> Descendants()
    {
        var all = new Dictionary<int, ProcessView>();
        foreach (var folder in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(folder), out var pid) && Read(pid) is { } view) all[pid] = view;
        }

        var self = Environment.ProcessId;
        bool Descends(ProcessView view)
        {
            for (var (parent, hops) = (view.ParentPid, 0); parent > 1 && hops < 64; hops++)
            {
                if (parent == self) return true;
                if (!all.TryGetValue(parent, out var up)) return false;
                parent = up.ParentPid;
            }

            return false;
        }

        return all.Values.Where(Descends).ToList();
    }

    /// <summary>
    /// Processes inside a sandbox that are neither its bwrap (1) nor its worker (2): whatever a task
    /// started. Between tasks there must be none.
    /// </summary>
    /// <summary>
    /// Live processes a task left in a sandbox. Zombies do not count: they hold no memory and run
    /// nothing, and the sandbox's init (bwrap, PID 1) reaps them as soon as an idle worker's frozen
    /// sandbox is thawed for its next task.
    /// </summary>
    /// <remarks>
    /// A Python zygote's task process (its runner, forked ahead and kept while clean) lives between
    /// tasks by design and is not counted: it is the zygote's own child, with the zygote's command line
    /// and one thread. What a task starts is the runner's child, or bwrap's once orphaned, never the zygote's.
    /// </remarks>
    public static List<ProcessView> Stragglers()
    {
        var descendants = Descendants();
        var byPid = descendants.ToDictionary(p => p.Pid);
        bool IsRunner(ProcessView p) =>
            byPid.TryGetValue(p.ParentPid, out var zygote) && zygote.InSandbox && zygote.InnerPid == 2
            && zygote.CommandLine.Contains(PythonWorkerFactory.ScriptName, StringComparison.Ordinal) && p.CommandLine == zygote.CommandLine
            && p.Field("Threads") == "1";
        return descendants.Where(p => p.InSandbox && p.InnerPid > 2 && !p.Field("State").StartsWith('Z') && !IsRunner(p)).ToList();
    }
}

/// <summary>Puts the check that sums up the suite after every hostile program.</summary>
public sealed class HostileSuiteOrder : ITestCaseOrderer
{
    public const string TypeName = "P2PShare.Tests.Compute.Sandbox.HostileSuiteOrder";

    public IEnumerable<TTestCase> OrderTestCases<TTestCase>(IEnumerable<TTestCase> testCases) where TTestCase : ITestCase =>
        testCases.OrderBy(t => t.TestMethod.Method.Name.StartsWith("After_the_suite", StringComparison.Ordinal) ? 1 : 0)
            .ThenBy(t => t.TestMethod.Method.Name, StringComparer.Ordinal)
            .ThenBy(t => t.DisplayName, StringComparer.Ordinal);
}

/// <summary>
/// Issue 13 item 8: hostile programs of both languages, each run as a real task on real peers
/// through the real path (submit, route, compile, sandboxed worker), each with the exact safe
/// outcome it must end in. Python programs marked past the hook run on a peer with the audit hook
/// off (<see cref="HostileSuiteFixture.BarePeer"/>) and meet the kernel alone, so their answers show
/// what the wall refused; the other Python programs run on the peer with the hook.
/// After them all: every peer still serves, no process a task started is alive, nothing outside
/// the sandboxes changed, and the peers' memory is where it was.
/// </summary>
[Collection(HostileSuiteCollection.Name)]
[TestCaseOrderer(HostileSuiteOrder.TypeName, "P2PShare.Tests")]
public sealed class HostileSuiteTests(HostileSuiteFixture fixture, ITestOutputHelper output)
{
    private const long TmpCap = ComputeOptions.DefaultWorkerTmpBytes;

    /// <summary>
    /// Prepended to Python programs that run past the hook (on the peer without it): <c>attempt</c>
    /// turns an OSError into its errno name.
    /// </summary>
    private const string Attempt = """
        import errno, json, os

        def attempt(f):
            try:
                r = f()
                return 'ok' if r is None else r
            except OSError as e:
                return errno.errorcode[e.errno]

        """;

    /// <summary>A Python program that runs on the peer without the audit hook: the kernel wall alone answers it.</summary>
    private static Hostile Bare(string body, Outcome expected, string args = "[]") =>
        new(TaskLanguages.Python, Attempt + body, expected, args, PastTheHook: true);

    private static Outcome Refused(string says) => new(JobStatus.Failed, TaskErrorKind.NotAllowed, says);

    private static Outcome Returns(string json) => new(JobStatus.Succeeded, TaskErrorKind.None, json);

    private static Outcome Ends(JobStatus status, TaskErrorKind kind, string says) => new(status, kind, says);

    /// <param name="Says">For a success the exact result JSON; otherwise a part of the error that names the refusal.</param>
    /// <param name="Also">What must hold on the host afterwards (files, processes), beyond the task's own outcome.</param>
    public sealed record Outcome(JobStatus Status, TaskErrorKind Kind, string Says, Func<HostileSuiteFixture, JobInfo, Task>? Also = null);

    /// <param name="Args">JSON; <c>$PEER</c>, <c>$MARKER</c> and <c>$SENTINEL</c> are replaced by the peer's PID, the suite's marker and sentinel folder.</param>
    /// <param name="PastTheHook">Runs on <see cref="HostileSuiteFixture.BarePeer"/>; other Python programs run on <see cref="HostileSuiteFixture.HookedPeer"/>.</param>
    public sealed record Hostile(string Language, string Program, Outcome Expected, string Args = "[]", double TimeoutSeconds = 30, bool PastTheHook = false);

    private static readonly Dictionary<string, Hostile> Programs = new()
    {
        // ---- Python: starting programs, by every route ----
        ["py: os.system"] = new(TaskLanguages.Python, """
            import os
            def main():
                return os.system('id > /tmp/owned')
            """, Refused("NotAllowed: os.system is not allowed in the sandbox")),
        ["py: subprocess"] = new(TaskLanguages.Python, """
            def main():
                import subprocess
                return subprocess.run(['/bin/sh', '-c', 'id']).returncode
            """, Refused("NotAllowed: import subprocess is not allowed in the sandbox")),
        ["py: _posixsubprocess.fork_exec"] = new(TaskLanguages.Python, """
            def main():
                import _posixsubprocess
                return 1
            """, Refused("NotAllowed: import _posixsubprocess is not allowed in the sandbox")),
        ["py: os.posix_spawn"] = new(TaskLanguages.Python, """
            import os
            def main():
                return os.posix_spawn('/bin/sh', ['sh', '-c', 'id'], {})
            """, Refused("NotAllowed: os.posix_spawn is not allowed in the sandbox")),
        ["py: pty.spawn"] = new(TaskLanguages.Python, """
            def main():
                import pty
                return pty.spawn('/bin/sh')
            """, Refused("NotAllowed: import pty is not allowed in the sandbox")),
        ["py: ctypes execve"] = new(TaskLanguages.Python, """
            def main():
                import ctypes
                return ctypes.CDLL(None).execve(b'/bin/sh', None, None)
            """, Refused("NotAllowed: import ctypes is not allowed in the sandbox")),
        ["py: a shell script written to /tmp and executed"] = new(TaskLanguages.Python, """
            import os
            def main():
                with open('/tmp/x.sh', 'w') as f:
                    f.write('#!/bin/sh\nid\n')
                os.execv('/tmp/x.sh', ['x.sh'])
            """, Refused("NotAllowed: open('/tmp/x.sh') for writing is not allowed in the sandbox")),
        ["py: fork and exec"] = new(TaskLanguages.Python, """
            import os
            def main():
                if os.fork() == 0:
                    os.execv('/bin/sh', ['sh', '-c', 'id'])
                return 1
            """, Refused("NotAllowed: os.fork is not allowed in the sandbox")),
        // A subinterpreter runs without the hook, so no route may load one or anything the hook refuses.
        ["py: import _xxsubinterpreters"] = new(TaskLanguages.Python, """
            def main():
                import _xxsubinterpreters as si
                return si.run_string(si.create(), "import os; os.system('id')")
            """, Refused("NotAllowed: import _xxsubinterpreters is not allowed in the sandbox")),
        ["py: _xxsubinterpreters through importlib.import_module"] = new(TaskLanguages.Python, """
            import importlib
            def main():
                si = importlib.import_module('_xxsubinterpreters')
                return si.run_string(si.create(), "import os; os.system('id')")
            """, Refused("NotAllowed: import _xxsubinterpreters is not allowed in the sandbox")),
        ["py: _testcapi.run_in_subinterp"] = new(TaskLanguages.Python, """
            import importlib
            def main():
                return importlib.import_module('_testcapi').run_in_subinterp("import os; os.system('id')")
            """, Refused("NotAllowed: import _testcapi is not allowed in the sandbox")),
        // A built-in module created by importlib raises no audit event: the zygote seals _imp.create_builtin.
        ["py: _posixsubprocess through importlib.import_module"] = new(TaskLanguages.Python, """
            import importlib
            def main():
                return str(importlib.import_module('_posixsubprocess').fork_exec)
            """, Refused("NotAllowed: import _posixsubprocess is not allowed in the sandbox")),
        ["py: pwd through importlib.import_module"] = new(TaskLanguages.Python, """
            import importlib
            def main():
                return importlib.import_module('pwd').getpwall()[0].pw_name
            """, Refused("NotAllowed: import pwd is not allowed in the sandbox")),
        // An extension module is initialised by the last part of its name: _ctypes under a harmless-looking package.
        ["py: _ctypes loaded under another package's name"] = new(TaskLanguages.Python, """
            import importlib.util
            def main():
                spec = importlib.util.spec_from_file_location('harmless._ctypes', importlib.util.find_spec('_ctypes').origin)
                return str(importlib.util.module_from_spec(spec).dlopen)
            """, Refused("NotAllowed: import harmless._ctypes is not allowed in the sandbox")),
        // Past the hook a program does start, and it meets the kernel: not root, no /etc/passwd.
        ["py: past the hook a shell starts"] = Bare("""
            import subprocess
            def main():
                p = subprocess.run(['/bin/sh', '-c', 'id -u; cat /etc/passwd'], capture_output=True)
                return [p.stdout.decode().strip(), p.stderr.decode().strip()]
            """, new(JobStatus.Succeeded, TaskErrorKind.None, "", (_, job) =>
            {
                var answer = System.Text.Json.JsonSerializer.Deserialize<string[]>(job.ResultJson!)!;
                var uid = int.Parse(answer[0], CultureInfo.InvariantCulture);
                Assert.NotEqual(0, uid);
                if (Environment.UserName == "root") Assert.InRange(uid, ComputeOptions.DefaultSandboxUidBase, ComputeOptions.DefaultSandboxUidBase + ComputeOptions.DefaultSandboxUidCount - 1);
                Assert.Equal("cat: /etc/passwd: No such file or directory", answer[1]);
                return Task.CompletedTask;
            })),

        // ---- Python: reading files through lying paths and /proc ----
        ["py: /etc/passwd through a str subclass that lies to the hook"] = new(TaskLanguages.Python, """
            class Lying(str):
                def startswith(self, *a):
                    return True
                def split(self, *a):
                    return ['usr', 'lib', 'python3']
            def main():
                try:
                    return open(Lying('/etc/passwd')).read()
                except OSError as e:
                    return [type(e).__name__, e.errno]
            """, Refused("NotAllowed: open('/etc/passwd') is not allowed in the sandbox")),
        ["py: /etc/passwd through an os.PathLike whose __fspath__ lies"] = new(TaskLanguages.Python, """
            class Lying(str):
                def startswith(self, *a):
                    return True
                def split(self, *a):
                    return ['usr', 'lib', 'python3']
            class Sly:
                def __fspath__(self):
                    return Lying('/etc/passwd')
            def main():
                try:
                    return open(Sly()).read()
                except OSError as e:
                    return [type(e).__name__, e.errno]
            """, Refused("NotAllowed: open('/etc/passwd') is not allowed in the sandbox")),
        ["py: /etc/passwd through /proc/self/root"] = new(TaskLanguages.Python, """
            def main():
                return open('/proc/self/root/etc/passwd').read()
            """, Refused("NotAllowed: open('/proc/self/root/etc/passwd') is not allowed in the sandbox")),
        ["py: /etc/passwd through /proc/self/root and /proc/1/root, past the hook"] = Bare("""
            def main():
                return [attempt(lambda: open(p).read()) for p in ('/proc/self/root/etc/passwd', '/proc/1/root/etc/passwd', '/proc/1/root/etc/shadow')]
            """, Returns("[\"ENOENT\", \"ENOENT\", \"ENOENT\"]")),
        ["py: /etc/passwd through os.open with dir_fd, past the hook"] = Bare("""
            def main():
                root = os.open('/', os.O_RDONLY | os.O_DIRECTORY)
                return [attempt(lambda: os.open(p, os.O_RDONLY, dir_fd=root)) for p in ('etc/passwd', '../../etc/shadow', 'root/.bashrc')]
            """, Returns("[\"ENOENT\", \"ENOENT\", \"ENOENT\"]")),
        ["py: listing /"] = new(TaskLanguages.Python, """
            import os
            def main():
                return os.listdir('/')
            """, Refused("NotAllowed: os.listdir('/') is not allowed in the sandbox")),
        ["py: listing / past the hook shows only the runtime"] = Bare("""
            def main():
                return sorted(os.listdir('/'))
            """, Returns("[\"bin\", \"dev\", \"etc\", \"lib\", \"lib64\", \"proc\", \"sbin\", \"tmp\", \"usr\", \"worker\"]")),
        ["py: writing outside /tmp past the hook"] = Bare("""
            def main(sentinel):
                return [attempt(lambda: open(p, 'w').close()) for p in ('/usr/x', '/etc/x', '/worker/x', '/dev/x', sentinel + '/file', sentinel + '/new')]
            """, Returns("[\"EROFS\", \"EROFS\", \"EROFS\", \"EROFS\", \"ENOENT\", \"ENOENT\"]") with { Also = SentinelUntouched }, "[\"$SENTINEL\"]"),
        ["py: 100 MiB into /dev/shm stops at the cap and is gone after the task"] = Bare("""
            def main(marker):
                chunk = b'x' * (512 * 1024)
                n = 0
                try:
                    while n < 200:
                        with open('/dev/shm/%s-%d' % (marker, n), 'wb') as f:
                            f.write(chunk)
                        n += 1
                    return [n, 'no limit']
                except OSError as e:
                    return [n, errno.errorcode[e.errno]]
            """, new(JobStatus.Succeeded, TaskErrorKind.None, "", (f, job) =>
            {
                var answer = System.Text.Json.JsonDocument.Parse(job.ResultJson!).RootElement;
                Assert.Equal("ENOSPC", answer[1].GetString());
                Assert.InRange(answer[0].GetInt32() * 512L * 1024, TmpCap - 2 * Bytes.MiB, TmpCap);
                Assert.Empty(Directory.GetFiles("/dev/shm", $"{f.Marker}*"));
                return Task.CompletedTask;
            }), "[\"$MARKER\"]"),

        // ---- Python: network, other processes ----
        ["py: import socket"] = new(TaskLanguages.Python, """
            def main():
                import socket
                return socket.create_connection(('1.1.1.1', 80)) is not None
            """, Refused("NotAllowed: import socket is not allowed in the sandbox")),
        ["py: AF_INET, AF_INET6, AF_NETLINK and AF_PACKET sockets past the hook"] = Bare("""
            import socket
            def main():
                return [attempt(lambda: socket.socket(f, socket.SOCK_DGRAM).close()) for f in (socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK, socket.AF_PACKET)]
            """, Returns("[\"EAFNOSUPPORT\", \"EAFNOSUPPORT\", \"EAFNOSUPPORT\", \"EAFNOSUPPORT\"]")),
        ["py: the peer's environ and cmdline through /proc, past the hook"] = Bare("""
            def main(peer):
                pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
                return [attempt(lambda: open('/proc/%d/environ' % peer).read()), attempt(lambda: open('/proc/%d/cmdline' % peer).read()), len(pids) <= 4]
            """, Returns("[\"ENOENT\", \"ENOENT\", true]"), "[$PEER]"),
        ["py: os.kill"] = new(TaskLanguages.Python, """
            import os
            def main(peer):
                os.kill(peer, 9)
            """, Refused("NotAllowed: os.kill is not allowed in the sandbox"), Args: "[$PEER]"),
        ["py: signalling the peer past the hook"] = Bare("""
            import signal
            def main(peer):
                return [attempt(lambda: os.kill(peer, 0)), attempt(lambda: os.kill(peer, signal.SIGKILL))]
            """, Returns("[\"ESRCH\", \"ESRCH\"]"), "[$PEER]"),

        // ---- Python: memory, CPU, work that outlives the task ----
        ["py: a bytearray memory bomb"] = new(TaskLanguages.Python, """
            def main():
                hog = []
                while True:
                    hog.append(bytearray(1 << 24))
            """, Ends(JobStatus.Failed, TaskErrorKind.OutOfMemory, "OutOfMemory")),
        ["py: an mmap memory bomb past the hook"] = Bare("""
            import mmap
            def main():
                maps = []
                try:
                    while True:
                        m = mmap.mmap(-1, 1 << 26)
                        m[::4096] = b'x' * (1 << 14)
                        maps.append(m)
                except (OSError, MemoryError) as e:
                    return [len(maps) < 64, type(e).__name__]
            """, Returns("[true, \"OSError\"]")),
        ["py: a CPU burner past its timeout"] = new(TaskLanguages.Python, """
            def main():
                while True:
                    pass
            """, Ends(JobStatus.TimedOut, TaskErrorKind.TimedOut, "ran longer than 2 s"), TimeoutSeconds: 2),
        ["py: a double-forked child outlives the task, past the hook"] = Bare("""
            import time
            def main():
                if os.fork() == 0:
                    os.setsid()
                    if os.fork() == 0:
                        time.sleep(600)
                    os._exit(0)
                os.wait()
                return 'forked'
            """, Returns("\"forked\"") with { Also = NoStragglers }),

        // ---- Python: the protocol, stderr, the interpreter itself ----
        ["py: 100 MB to the raw stderr"] = new(TaskLanguages.Python, """
            import os
            def main():
                chunk = b'x' * (1 << 20)
                for _ in range(100):
                    os.write(2, chunk)
                return 7
            """, Returns("7")),
        ["py: a forged frame on fd 1"] = new(TaskLanguages.Python, """
            import json, os, struct
            def main():
                head = json.dumps({"Sequence": 1, "Kind": 0, "Error": None, "Output": ""}).encode()
                os.write(1, struct.pack("<ii", 4 + len(head) + 2, len(head)) + head + b"66")
                return 1
            """, Returns("1")),
        ["py: a forged PeerLost frame on every guessable fd"] = new(TaskLanguages.Python, """
            import json, os, struct
            def main():
                head = json.dumps({"Sequence": 1, "Kind": 11, "Error": "PeerLost: forged", "Output": ""}).encode()
                for fd in range(3, 64):
                    try:
                        os.write(fd, struct.pack("<ii", 4 + len(head), len(head)) + head)
                    except OSError:
                        pass
                return 1
            """, Ends(JobStatus.Failed, TaskErrorKind.Crashed, "protocol violation")),
        ["py: an oversized frame length on every guessable fd"] = new(TaskLanguages.Python, """
            import os, struct
            def main():
                for fd in range(3, 64):
                    try:
                        os.write(fd, struct.pack("<i", 0x7fffffff) + b"x" * 4096)
                    except OSError:
                        pass
                return 1
            """, Ends(JobStatus.Failed, TaskErrorKind.Crashed, "protocol violation")),
        ["py: a code object forged with types.CodeType"] = new(TaskLanguages.Python, """
            def main():
                c = (lambda: 0).__code__
                return type(c)(0, 0, 0, 0, 0, 0, b'\xff\xff', (), (), (), 'x', 'x', 'x', 1, b'', b'', (), ()) is not None
            """, Refused("NotAllowed: code.__new__ is not allowed in the sandbox")),
        ["py: bad bytecode through marshal"] = new(TaskLanguages.Python, """
            import marshal, types
            def main():
                code = (lambda: 0).__code__
                bad = code.co_code.replace(b'd\x01', b'd\xff')
                forged = marshal.loads(marshal.dumps(code).replace(code.co_code, bad))
                return repr(types.FunctionType(forged, {})())
            """, Ends(JobStatus.Failed, TaskErrorKind.Crashed, "Crashed: the task's process was killed by signal 11")),
        // Python programs are compiled inside the task's own forked process: neither the peer nor the zygote parses them.
        ["py: a compile bomb of nested parentheses"] = new(TaskLanguages.Python,
            "x = " + new string('(', 100_000) + "1" + new string(')', 100_000) + "\ndef main():\n    return x\n",
            Ends(JobStatus.Failed, TaskErrorKind.CompileError, "too many nested parentheses")),
        ["py: reaching the hook's state through gc"] = new(TaskLanguages.Python, """
            import gc
            def main():
                return len(gc.get_objects())
            """, Refused("NotAllowed: gc.get_objects is not allowed in the sandbox")),

        // ---- C#: the deny-list names the API ----
        ["cs: File.ReadAllText"] = new(TaskLanguages.CSharp, """string main() => System.IO.File.ReadAllText("/etc/passwd");""", Refused("(file system)")),
        ["cs: Process.Start"] = new(TaskLanguages.CSharp, """int main() => System.Diagnostics.Process.Start("/bin/sh", "-c id").Id;""", Refused("Process")),
        ["cs: a socket"] = new(TaskLanguages.CSharp, """
            int main() { using var s = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp); return 1; }
            """, Refused("(network)")),
        ["cs: HttpClient"] = new(TaskLanguages.CSharp, """string main() => new System.Net.Http.HttpClient().GetStringAsync("http://1.1.1.1/").Result;""", Refused("(network)")),
        ["cs: reflection to File"] = new(TaskLanguages.CSharp, """object? main() => Type.GetType("System.IO.File")!.GetMethod("ReadAllText", new[] { typeof(string) })!.Invoke(null, new object[] { "/etc/passwd" });""", Refused("(reflection)")),
        ["cs: DllImport"] = new(TaskLanguages.CSharp, """
            [System.Runtime.InteropServices.DllImport("libc")] static extern int getuid();
            int main() => getuid();
            """, Refused("(native interop)")),
        ["cs: Marshal.ReadByte"] = new(TaskLanguages.CSharp, """int main() => System.Runtime.InteropServices.Marshal.ReadByte(new IntPtr(4096));""", Refused("(native interop)")),
        ["cs: pointers"] = new(TaskLanguages.CSharp, """unsafe int main() { int* p = (int*)4096; return *p; }""", Refused("(unsafe code)")),
        ["cs: Unsafe.Add past an array"] = new(TaskLanguages.CSharp, """
            int main() { var a = new int[1]; return System.Runtime.CompilerServices.Unsafe.Add(ref a[0], 100000); }
            """, Refused("(unsafe code)")),
        ["cs: the environment"] = new(TaskLanguages.CSharp, """string? main() => Environment.GetEnvironmentVariable("PATH");""", Refused("(environment)")),
        ["cs: Environment.Exit"] = new(TaskLanguages.CSharp, """int main() { Environment.Exit(3); return 1; }""", Refused("(environment)")),
        ["cs: a thread"] = new(TaskLanguages.CSharp, """int main() { new System.Threading.Thread(() => { while (true) { } }).Start(); return 1; }""", Refused("(threads)")),
        ["cs: Task.Run"] = new(TaskLanguages.CSharp, """int main() => Task.Run(() => { while (true) { } return 1; }).Result;""", Refused("Task.Run")),
        ["cs: ThreadPool"] = new(TaskLanguages.CSharp, """bool main() => System.Threading.ThreadPool.QueueUserWorkItem(_ => { while (true) { } });""", Refused("(threads)")),
        ["cs: Assembly.Load"] = new(TaskLanguages.CSharp, """object main() => System.Reflection.Assembly.Load("System.Diagnostics.Process");""", Refused("(reflection)")),
        ["cs: GC"] = new(TaskLanguages.CSharp, """long main() => GC.GetTotalMemory(false);""", Refused("(runtime internals)")),
        ["cs: Console.ReadLine"] = new(TaskLanguages.CSharp, """string? main() => Console.ReadLine();""", Refused("(console input or control)")),

        // ---- C#: what the deny-list lets through and the worker's limits stop ----
        ["cs: a stack overflow"] = new(TaskLanguages.CSharp, """
            int f(int x) => f(x + 1) + 1;
            int main() => f(0);
            """, Ends(JobStatus.Failed, TaskErrorKind.Crashed, "stack overflow")),
        ["cs: a heap bomb"] = new(TaskLanguages.CSharp, """
            int main() { var hog = new List<byte[]>(); while (true) { var b = new byte[1 << 24]; b.AsSpan().Fill(1); hog.Add(b); } }
            """, Ends(JobStatus.Failed, TaskErrorKind.OutOfMemory, "out of memory: the program exceeded the worker's heap limit")),
        ["cs: an infinite loop"] = new(TaskLanguages.CSharp, """int main() { while (true) { } }""", Ends(JobStatus.TimedOut, TaskErrorKind.TimedOut, "ran longer than 2 s"), TimeoutSeconds: 2),
        ["cs: a huge result"] = new(TaskLanguages.CSharp, """string main() => new string('x', 17_000_000);""", Ends(JobStatus.Failed, TaskErrorKind.ResultTooLarge, "the result is larger than 16777216 bytes of JSON")),
        ["cs: a huge output is cut"] = new(TaskLanguages.CSharp, """
            int main() { var line = new string('o', 1000); for (var i = 0; i < 10_000; i++) Console.WriteLine(line); return 5; }
            """, new(JobStatus.Succeeded, TaskErrorKind.None, "5", (_, job) =>
            {
                Assert.EndsWith($"[output truncated at {ComputeOptions.DefaultMaxOutputBytes} bytes]", job.Output);
                Assert.InRange(job.Output.Length, ComputeOptions.DefaultMaxOutputBytes - 1024, ComputeOptions.DefaultMaxOutputBytes + 64);
                return Task.CompletedTask;
            })),
    };

    public static TheoryData<string> Names() => new(Programs.Keys.Order(StringComparer.Ordinal));

    [Theory]
    [MemberData(nameof(Names))]
    public Task Each_hostile_program_ends_in_its_safe_outcome(string name) => RunAsync(Programs[name]);

    [RootFact] // only a root peer gives workers a cgroup with a process limit: see docs/SANDBOX.md
    public Task Py_a_fork_bomb_past_the_hook_stops_at_the_process_limit() => RunAsync(Bare("""
        import time
        def main():
            n = 0
            try:
                while n < 5000:
                    if os.fork() == 0:
                        time.sleep(30)
                        os._exit(0)
                    n += 1
                return [n, 'no limit']
            except OSError as e:
                return [n <= 256, errno.errorcode[e.errno]]
        """, Returns("[true, \"EAGAIN\"]") with { Also = NoStragglers }));

    [RootFact] // as above: without a cgroup, threads are bounded only by memory
    public Task Py_a_thread_bomb_stops_at_the_process_limit() => RunAsync(new(TaskLanguages.Python, """
        import threading, time
        def main():
            n = 0
            try:
                while n < 5000:
                    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
                    n += 1
                return [n, 'no limit']
            except RuntimeError as e:
                return [n <= 256, str(e)]
        """, Returns("[true, \"can't start new thread\"]") with { Also = NoStragglers }));

    [Fact]
    public Task Cs_a_vector_read_past_an_array_is_refused() => RunAsync(new(TaskLanguages.CSharp, """
        int main()
        {
            var a = new int[4];
            var v = System.Numerics.Vector.LoadUnsafe(ref a[0], 100_000);
            return v[0];
        }
        """, Refused("LoadUnsafe")));

    [Fact]
    public Task Cs_a_compile_bomb_ends_CompileError_within_the_bound() => RunAsync(new(TaskLanguages.CSharp,
        "int main() => " + new string('(', 100_000) + "1" + new string(')', 100_000) + ";",
        Ends(JobStatus.Failed, TaskErrorKind.CompileError, "CompileError")));

    [Fact]
    public async Task Cs_work_left_running_after_the_task_uses_no_CPU_once_it_returned()
    {
        await RunAsync(new(TaskLanguages.CSharp, """
            async Task<int> main()
            {
                var cts = new System.Threading.CancellationTokenSource(50);
                cts.Token.Register(() => { while (true) { } });
                _ = Task.Delay(10).ContinueWith(_ => { while (true) { } });
                await Task.Yield();
                return 1;
            }
            """, Returns("1")));
        // Every C# worker's CPU, measured over a second after the task returned: idle ones use none.
        var workers = HostProbe.Descendants().Where(p => p.InSandbox && p.InnerPid == 2 && p.CommandLine.Contains("p2pshare-worker", StringComparison.Ordinal)).ToList();
        var before = workers.Select(p => p.CpuTicks).ToArray();
        await Task.Delay(TimeSpan.FromSeconds(1)); // a measurement window, not a wait for an event
        var used = workers.Select((p, i) => p.CpuTicks - before[i]).ToArray();
        Assert.All(used, ticks => Assert.InRange(ticks, 0, 5));
    }

    [RootFact]
    public async Task A_running_task_is_not_root_has_no_capabilities_and_sees_only_loopback_and_its_own_processes()
    {
        var peer = fixture.Peers.Peer("peer-1");
        var spinners = new[]
        {
            await peer.SubmitAsync(new TaskSpec("import time\ndef main():\n    until = time.time() + 20\n    while time.time() < until:\n        pass\n    return 1",
                null, "[]", false, TimeSpan.FromSeconds(60), "root-check", "peer-1", MaxRetries: 0, Language: TaskLanguages.Python)),
            await peer.SubmitAsync(new TaskSpec("int main() { var until = DateTime.UtcNow.AddSeconds(20); while (DateTime.UtcNow < until) { } return 1; }",
                null, "[]", false, TimeSpan.FromSeconds(60), "root-check", "peer-1", MaxRetries: 0)),
        };
        try
        {
            foreach (var job in spinners) await JobWaits.RunningAsync(fixture.Peers, job.JobId);

            // The running tasks are the sandboxed processes whose CPU time grows: the C# worker itself
            // (PID 2 in its sandbox), and the child a Python zygote (PID 2) forked for the task.
            List<HostProbe.ProcessView> running = [];
            await Eventually.TrueAsync(async () =>
            {
                var sandboxed = HostProbe.Descendants().Where(p => p.InSandbox && p.InnerPid >= 2).ToList();
                var before = sandboxed.Select(p => p.CpuTicks).ToArray();
                await Task.Delay(300); // a measurement window
                running = sandboxed.Where((p, i) => p.CpuTicks - before[i] > 5).ToList();
                return running.Any(p => p.CommandLine.Contains("python", StringComparison.Ordinal))
                    && running.Any(p => p.CommandLine.Contains("p2pshare-worker.dll", StringComparison.Ordinal));
            }, TimeSpan.FromSeconds(20), "a Python and a C# task are spinning");

            foreach (var task in running)
            {
                output.WriteLine($"{task.Pid}: {task.CommandLine}");
                Assert.All(task.Field("Uid").Split('\t'), uid => Assert.NotEqual("0", uid));
                Assert.All(task.Field("Gid").Split('\t'), gid => Assert.NotEqual("0", gid));
                foreach (var caps in new[] { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" }) Assert.Equal("0000000000000000", task.Field(caps));
                Assert.Equal("1", task.Field("NoNewPrivs"));
                Assert.Equal("2", task.Field("Seccomp"));

                // Its own view, read from outside: its network namespace's devices, its mount namespace's /proc.
                var devices = File.ReadLines($"/proc/{task.Pid}/net/dev").Skip(2).Select(l => l.Split(':')[0].Trim()).ToArray();
                Assert.Equal(["lo"], devices);
                var visible = Directory.EnumerateDirectories($"/proc/{task.Pid}/root/proc").Select(Path.GetFileName)
                    .Where(n => int.TryParse(n, out _)).Select(n => int.Parse(n!, CultureInfo.InvariantCulture)).Order().ToArray();
                // Only its own sandbox: bwrap (1), the worker or zygote (2), and the task itself.
                Assert.Equal(task.InnerPid == 2 ? [1, 2] : [1, 2, task.InnerPid], visible);
            }
        }
        finally
        {
            foreach (var job in spinners) await fixture.Peers.Job(job.JobId).CancelAsync();
        }
    }

    [Fact]
    public async Task After_the_suite_every_peer_serves_no_task_process_lives_nothing_outside_changed_and_memory_is_flat()
    {
        foreach (var name in new[] { "peer-1", "peer-2" })
        {
            var peer = fixture.Peers.Peer(name);
            await peer.SetAsync($"{fixture.Marker}-key", [1, 2, 3], null);
            Assert.Equal([1, 2, 3], await peer.GetAsync($"{fixture.Marker}-key"));

            var data = RandomNumberGenerator.GetBytes(100_000);
            var upload = await peer.BeginUploadAsync($"{fixture.Marker}.bin", data.Length);
            for (var offset = 0; offset < data.Length; offset += upload.MaxChunkBytes)
                await peer.WriteChunkAsync(upload.UploadId, offset, data.AsSpan(offset, Math.Min(upload.MaxChunkBytes, data.Length - offset)).ToArray());
            await peer.CompleteUploadAsync(upload.UploadId, Convert.ToHexStringLower(SHA256.HashData(data)));
            var download = await peer.OpenDownloadAsync($"{fixture.Marker}.bin");
            var read = new List<byte>();
            while (read.Count < data.Length) read.AddRange(await peer.ReadChunkAsync(download.DownloadId, read.Count, 64 * 1024));
            await peer.CloseDownloadAsync(download.DownloadId);
            Assert.Equal(data, read.ToArray());

            foreach (var (language, program) in new[] { (TaskLanguages.CSharp, "int main(int x) => x * x;"), (TaskLanguages.Python, "def main(x): return x * x") })
            {
                var done = await JobWaits.TerminalAsync(fixture.Peers, (await peer.SubmitAsync(
                    new TaskSpec(program, null, "[12]", false, TimeSpan.FromSeconds(60), "after", name, Language: language))).JobId, TimeSpan.FromSeconds(60));
                Assert.Equal("144", done.ResultJson);
            }
        }

        await NoStragglers(fixture, null!);
        await SentinelUntouched(fixture, null!);
        Assert.Empty(Directory.GetFileSystemEntries(Path.GetTempPath(), $"*{fixture.Marker}*"));
        Assert.Empty(Directory.GetFileSystemEntries("/dev/shm", $"*{fixture.Marker}*"));

        var rss = HostProbe.SettledRssBytes();
        output.WriteLine($"resident memory: {fixture.StartRssBytes / Bytes.MiB} MiB at the start, {rss / Bytes.MiB} MiB now");
        Assert.InRange(rss, 0, fixture.StartRssBytes + 50 * Bytes.MiB);
    }

    private async Task RunAsync(Hostile hostile)
    {
        var args = hostile.Args.Replace("$PEER", Environment.ProcessId.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("$MARKER", fixture.Marker, StringComparison.Ordinal)
            .Replace("$SENTINEL", fixture.Sentinel, StringComparison.Ordinal);
        // Python is pinned: past the hook to the peer without it, the rest to the peer with it.
        var pinned = hostile.PastTheHook ? HostileSuiteFixture.BarePeer : hostile.Language == TaskLanguages.Python ? HostileSuiteFixture.HookedPeer : null;
        // No retries: the outcome of the one attempt is the one asserted.
        var job = await fixture.Peers.Peer("peer-1").SubmitAsync(new TaskSpec(hostile.Program, null, args, false,
            TimeSpan.FromSeconds(hostile.TimeoutSeconds), "mallory", pinned, MaxRetries: 0, Language: hostile.Language));
        var done = await JobWaits.TerminalAsync(fixture.Peers, job.JobId, TimeSpan.FromSeconds(hostile.TimeoutSeconds + 60));
        if (pinned is not null) Assert.Equal(pinned, done.ExecutedBy);
        output.WriteLine($"{done.Status} {done.ErrorKind} on {done.ExecutedBy} in {done.RunMs:0} ms\nresult: {done.ResultJson}\nerror: {done.Error}");

        var expected = hostile.Expected;
        Assert.Equal((expected.Status, expected.Kind), (done.Status, done.ErrorKind));
        if (expected.Status == JobStatus.Succeeded)
        {
            if (expected.Says.Length > 0) Assert.Equal(expected.Says, done.ResultJson);
        }
        else
        {
            Assert.Contains(expected.Says, done.Error);
        }

        if (expected.Also is not null) await expected.Also(fixture, done);
    }

    private static async Task NoStragglers(HostileSuiteFixture fixture, JobInfo job)
    {
        try
        {
            await Eventually.TrueAsync(() => Task.FromResult(HostProbe.Stragglers().Count == 0), TimeSpan.FromSeconds(15),
                "no process a task started is alive once its task ended");
        }
        catch (TimeoutException e)
        {
            var left = HostProbe.Stragglers().Take(5).Select(p => $"{p.Pid} (pid {p.InnerPid} inside, uid {p.Field("Uid").Split('\t')[0]}): {p.CommandLine}");
            throw new TimeoutException($"{e.Message}; still alive: {string.Join("; ", left)}", e);
        }
    }

    private static Task SentinelUntouched(HostileSuiteFixture fixture, JobInfo job)
    {
        var (files, text, written) = fixture.SentinelNow();
        Assert.Equal(["file"], files);
        Assert.Equal(fixture.ExpectedSentinelText, text);
        Assert.Equal(fixture.SentinelWritten, written);
        return Task.CompletedTask;
    }
}
