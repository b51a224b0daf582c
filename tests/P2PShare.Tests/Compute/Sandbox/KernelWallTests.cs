using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using P2PShare.Compute;
using P2PShare.Hosting;
using P2PShare.Tests.Support;
using Xunit.Abstractions;

namespace P2PShare.Tests.Compute.Sandbox;

/// <summary>One wall for the class: probing it starts a sandbox.</summary>
public sealed class KernelWallFixture : IDisposable
{
    public KernelWallFixture() => Wall = new KernelSandbox(Options.Create(Compute), NullLogger<KernelSandbox>.Instance);

    public static ComputeOptions Compute { get; } = new();

    public KernelSandbox Wall { get; }

    public void Dispose() => Wall.Dispose();
}

/// <summary>
/// The wall itself, attacked directly: shell commands and Python run inside exactly the sandbox a
/// worker gets (same launcher, uid, namespaces, seccomp program, cgroup and rlimits), so no language
/// check stands in front. Every attack asserts its specific safe outcome.
/// </summary>
public sealed class KernelWallTests(KernelWallFixture fixture, ITestOutputHelper output) : IClassFixture<KernelWallFixture>
{
    private const string Python = "/usr/bin/python3";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private KernelSandbox Wall => fixture.Wall;

    private async Task<SandboxRun> ShAsync(string script, long memory = 64 * Bytes.MiB)
    {
        Assert.True(Wall.Refusal is null, Wall.Refusal);
        var run = await Wall.RunAsync(new SandboxRequest("/bin/sh", ["-c", script], [], new Dictionary<string, string> { ["PATH"] = "/usr/bin" }, memory), "", Deadline);
        output.WriteLine($"exit {run.ExitCode}\nstdout: {run.Stdout}\nstderr: {run.Stderr}");
        return run;
    }

    private Task<SandboxRun> PythonAsync(string code, long memory = 64 * Bytes.MiB) =>
        ShAsync($"exec {Python} -I -c {SandboxCommand.Quote(code)}", memory);

    [Fact]
    public async Task Etc_passwd_is_not_there()
    {
        var run = await ShAsync("cat /etc/passwd");
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("No such file or directory", run.Stderr);
        Assert.DoesNotContain("root:", run.Stdout);
    }

    [Fact]
    public async Task The_root_holds_only_the_runtime()
    {
        var run = await ShAsync("ls -A / && ls -A /etc");
        Assert.Equal(0, run.ExitCode);
        Assert.Equal(["bin", "dev", "etc", "lib", "lib64", "proc", "sbin", "tmp", "usr", "ld.so.cache"],
            run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Theory]
    [InlineData("/x")]
    [InlineData("/usr/x")]
    [InlineData("/etc/x")]
    [InlineData("/dev/x")]
    public async Task Writing_outside_tmp_fails_read_only(string path)
    {
        var run = await ShAsync($"echo owned > {path}");
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("Read-only file system", run.Stderr);
    }

    [Theory]
    [InlineData("/tmp")]
    [InlineData("/dev/shm")]
    public async Task Filling_a_tmpfs_stops_at_its_cap_and_the_peer_is_fine(string folder)
    {
        var cap = KernelWallFixture.Compute.WorkerTmpBytes;
        var files = cap / Bytes.MiB / 16 + 2;
        var run = await ShAsync($"for i in $(seq {files}); do head -c {16 * Bytes.MiB} /dev/zero > {folder}/f$i || break; done; du -sb {folder}");
        Assert.Contains("No space left on device", run.Stderr);
        var used = long.Parse(run.Stdout.Split('\t')[0], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(used, cap - 2 * Bytes.MiB, cap + 64 * 1024); // du counts folder entries too
    }

    [Fact]
    public async Task Internet_sockets_are_refused_but_local_ones_work()
    {
        var run = await PythonAsync("""
            import socket, errno
            out = []
            for family in (socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK, socket.AF_PACKET):
                try:
                    socket.socket(family, socket.SOCK_RAW if family == socket.AF_PACKET else socket.SOCK_DGRAM)
                    out.append('open')
                except OSError as e:
                    out.append(errno.errorcode[e.errno])
            a, b = socket.socketpair(socket.AF_UNIX)
            a.send(b'x')
            out.append(b.recv(1).decode())
            print(' '.join(out))
            """);
        Assert.Equal("EAFNOSUPPORT EAFNOSUPPORT EAFNOSUPPORT EAFNOSUPPORT x", run.Stdout.Trim());
    }

    [Fact]
    public async Task Debugging_mounting_and_new_namespaces_are_refused()
    {
        // Raw system calls through ctypes: no language check in the way, only the kernel.
        var run = await PythonAsync("""
            import ctypes, errno, os
            libc = ctypes.CDLL(None, use_errno=True)
            def call(nr, *args):
                r = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
                return 'ok' if r >= 0 else errno.errorcode[ctypes.get_errno()]
            parent = os.getppid()
            print('ptrace', call(101, 16, parent, 0, 0))               # PTRACE_ATTACH
            print('unshare', call(272, 0x10000000))                    # CLONE_NEWUSER
            print('unshare-net', call(272, 0x40000000))
            print('clone-newuser', call(56, 0x10000000 | 17, 0, 0, 0, 0))
            print('clone3', call(435, 0, 0))
            print('mount', call(165, 0, 0, 0, 0, 0))
            print('setns', call(308, 0, 0))
            print('io_uring_setup', call(425, 8, 0))
            print('bpf', call(321, 0, 0, 0))
            print('keyctl', call(250, 0, 0))
            print('process_vm_readv', call(310, parent, 0, 0, 0, 0, 0))
            print('userfaultfd', call(323, 0))
            print('perf_event_open', call(298, 0, 0, -1, -1, 0))
            """);
        var answers = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')).ToDictionary(p => p[0], p => p[1]);
        Assert.Equal("EPERM", answers["ptrace"]);
        Assert.Equal("EPERM", answers["unshare"]);
        Assert.Equal("EPERM", answers["unshare-net"]);
        Assert.Equal("EPERM", answers["clone-newuser"]);
        Assert.Equal("ENOSYS", answers["clone3"]);
        Assert.Equal("EPERM", answers["mount"]);
        Assert.Equal("EPERM", answers["setns"]);
        Assert.Equal("EPERM", answers["io_uring_setup"]);
        Assert.Equal("EPERM", answers["bpf"]);
        Assert.Equal("EPERM", answers["keyctl"]);
        Assert.Equal("EPERM", answers["process_vm_readv"]);
        Assert.Equal("EPERM", answers["userfaultfd"]);
        Assert.Equal("EPERM", answers["perf_event_open"]);
    }

    [Fact]
    public async Task Only_its_own_processes_are_visible()
    {
        var run = await ShAsync("ls /proc | grep -E '^[0-9]+$'");
        var pids = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
        // bwrap's reaper (1), the shell (2), ls and grep.
        Assert.InRange(pids.Length, 2, 4);
        Assert.All(pids, pid => Assert.InRange(pid, 1, 10));
        Assert.DoesNotContain(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture), run.Stdout.Split('\n'));
    }

    [Fact]
    public async Task It_runs_unprivileged_with_no_capabilities_no_new_privileges_and_its_filter()
    {
        var run = await ShAsync("cat /proc/self/status");
        string Field(string name) => run.Stdout.Split('\n').First(l => l.StartsWith(name + ":", StringComparison.Ordinal))[(name.Length + 1)..].Trim();
        Assert.All(Field("Uid").Split('\t'), uid => Assert.NotEqual("0", uid));
        Assert.All(Field("Gid").Split('\t'), gid => Assert.NotEqual("0", gid));
        foreach (var caps in new[] { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" }) Assert.Equal("0000000000000000", Field(caps));
        Assert.Equal("1", Field("NoNewPrivs"));
        Assert.Equal("2", Field("Seccomp"));
    }

    [Fact]
    public async Task Its_network_has_only_loopback()
    {
        var run = await ShAsync("tail -n +3 /proc/net/dev | cut -d: -f1");
        Assert.Equal(["lo"], run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    [Fact]
    public async Task Its_environment_and_its_launchers_are_empty()
    {
        Environment.SetEnvironmentVariable("P2PSHARE_TEST_SECRET", "hunter2");
        // bwrap is PID 1 inside and runs as the task's uid: its environment is readable too.
        var run = await ShAsync("tr '\\0' '\\n' < /proc/self/environ; echo --; tr '\\0' '\\n' < /proc/1/environ");
        Assert.Equal(0, run.ExitCode);
        // bwrap itself adds PWD for the folder it changed to.
        Assert.Equal(["PATH=/usr/bin", "PWD=/tmp", "--", "PWD=/tmp"], run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task It_holds_no_descriptor_but_its_standard_ones()
    {
        var run = await PythonAsync("import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd')))");
        // 0-2 and the folder listdir itself holds open.
        Assert.Equal("[0, 1, 2, 3]", run.Stdout.Trim());
    }

    [RootFact] // a peer that is not root has no process limit of the worker's own: see docs/SANDBOX.md
    public async Task A_fork_bomb_is_stopped_by_the_process_limit()
    {
        var run = await PythonAsync("""
            import os, time, errno
            n = 0
            try:
                while True:
                    if os.fork() == 0:
                        time.sleep(30)
                        os._exit(0)
                    n += 1
            except OSError as e:
                print(n, errno.errorcode[e.errno])
            """);
        var parts = run.Stdout.Trim().Split(' ');
        Assert.Equal("EAGAIN", parts[1]);
        Assert.InRange(int.Parse(parts[0]), 1, KernelWallFixture.Compute.WorkerMaxProcesses);
    }

    [Fact]
    public async Task A_native_memory_bomb_is_killed_by_the_memory_limit()
    {
        var watch = Stopwatch.StartNew();
        var run = await PythonAsync("""
            hog = []
            while True:
                hog.append(bytearray(1 << 20))
                hog[-1][::4096] = b'x' * 256
            """, memory: 32 * Bytes.MiB);
        output.WriteLine($"ended after {watch.ElapsedMilliseconds} ms");
        if (Wall.UsesCgroups)
            Assert.Equal(137, run.ExitCode); // SIGKILL from the cgroup's OOM killer
        else
            Assert.Contains("MemoryError", run.Stderr); // RLIMIT_AS
    }

    [Fact]
    public async Task Processes_a_task_double_forks_die_with_it()
    {
        // A marker no other process has: the sleep's argument.
        var marker = 4000 + Random.Shared.Next(1000);
        var run = await ShAsync($"(setsid sleep {marker} &) ; echo started");
        Assert.Equal("started", run.Stdout.Trim());
        await Eventually.TrueAsync(() => Task.FromResult(!SleepAlive(marker)), TimeSpan.FromSeconds(10), "the double-forked sleep is gone");
    }

    private static bool SleepAlive(int marker)
    {
        foreach (var folder in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                if (File.ReadAllText(Path.Combine(folder, "cmdline")) == $"sleep\0{marker}\0") return true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }

        return false;
    }
}
