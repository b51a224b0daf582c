using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using P2PShare.Compute;
using P2PShare.Hosting;
using Xunit.Abstractions;

namespace P2PShare.Tests.Compute.Sandbox;

/// <summary>Workers of both runtimes as the scheduler gets them, seen from outside the wall; and a peer that cannot build it.</summary>
public sealed class SandboxedWorkerTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly List<IWorker> _workers = [];
    private readonly List<string> _files = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var worker in _workers) await worker.DisposeAsync();
        foreach (var file in _files) File.Delete(file);
    }

    private async Task<WorkerProcess> Start(IWorkerFactory factory)
    {
        var worker = factory switch
        {
            WorkerProcessFactory csharp => await csharp.StartWorkerAsync(CancellationToken.None),
            PythonWorkerFactory python => await python.StartWorkerAsync(CancellationToken.None),
            _ => throw new ArgumentException("unknown factory"),
        };
        _workers.Add(worker);
        return worker;
    }

    private static ComputeOptions Options(Action<ComputeOptions>? change = null)
    {
        var options = new ComputeOptions();
        change?.Invoke(options);
        return options;
    }

    private static ExecutionRequest Python(string program, string args = "[]")
    {
        var source = Encoding.UTF8.GetBytes(program);
        return new ExecutionRequest(Convert.ToHexStringLower(SHA256.HashData(source)), source, "main", args, 1 << 20, 1 << 16, TaskLanguages.Python);
    }

    [RootFact]
    public async Task A_running_workers_uid_outside_the_sandbox_is_a_dedicated_unprivileged_one()
    {
        var options = Microsoft.Extensions.Options.Options.Create(Options());
        var csharp = await Start(new WorkerProcessFactory(options, NullLogger<WorkerProcessFactory>.Instance));
        var python = await Start(new PythonWorkerFactory(options, NullLogger<PythonWorkerFactory>.Instance));
        var uids = new List<int>();
        foreach (var worker in new[] { csharp, python })
        {
            var line = File.ReadLines($"/proc/{worker.ProcessId}/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal));
            output.WriteLine($"worker {worker.ProcessId}: {line}");
            var ids = line[4..].Split('\t', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
            Assert.Equal(4, ids.Length);
            Assert.All(ids, id => Assert.InRange(id, ComputeOptions.DefaultSandboxUidBase, ComputeOptions.DefaultSandboxUidBase + ComputeOptions.DefaultSandboxUidCount - 1));
            Assert.Single(ids.Distinct());
            uids.Add(ids[0]);
        }

        Assert.NotEqual(uids[0], uids[1]);
    }

    [RootFact]
    public async Task A_python_zygote_is_not_dumpable_so_its_tasks_cannot_open_its_memory()
    {
        var options = Microsoft.Extensions.Options.Options.Create(Options());
        var csharp = await Start(new WorkerProcessFactory(options, NullLogger<WorkerProcessFactory>.Instance));
        var python = await Start(new PythonWorkerFactory(options, NullLogger<PythonWorkerFactory>.Instance));
        // The kernel gives a non-dumpable process's /proc files to root: its own uid (and so the
        // tasks it forks, which run as that uid) cannot open /proc/PID/mem. The C# worker is the control.
        static (int Uid, int MemOwner) Ids(int pid)
        {
            var uid = int.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal))[4..]
                .Split('\t', StringSplitOptions.RemoveEmptyEntries)[0]);
            var stat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%u", $"/proc/{pid}/mem"]) { RedirectStandardOutput = true })!;
            var owner = int.Parse(stat.StandardOutput.ReadToEnd().Trim());
            stat.WaitForExit();
            return (uid, owner);
        }

        var (csharpUid, csharpOwner) = Ids(csharp.ProcessId);
        var (pythonUid, pythonOwner) = Ids(python.ProcessId);
        output.WriteLine($"C# worker uid {csharpUid}, mem owner {csharpOwner}; python zygote uid {pythonUid}, mem owner {pythonOwner}");
        Assert.Equal(csharpUid, csharpOwner);
        Assert.NotEqual(pythonUid, pythonOwner);
        Assert.Equal(0, pythonOwner);
    }

    [Fact]
    public async Task A_python_task_behind_the_wall_sees_no_peer_files_no_environment_and_no_network()
    {
        Environment.SetEnvironmentVariable("P2PSHARE_TEST_SECRET", "hunter2");
        var factory = new PythonWorkerFactory(Microsoft.Extensions.Options.Options.Create(Options()), NullLogger<PythonWorkerFactory>.Instance);
        Assert.True(factory.Unavailable is null, factory.Unavailable);
        var worker = await Start(factory);
        var result = await worker.RunAsync(Python("""
            import os
            def main(peer_folder):
                return [os.path.exists(peer_folder), os.path.exists('/worker/p2pshare_worker.py'), dict(os.environ), os.getcwd()]
            """, $"[\"{AppContext.BaseDirectory}\"]"), CancellationToken.None).WaitAsync(Deadline);
        Assert.True(result.ErrorKind == TaskErrorKind.None, result.Error);
        Assert.Equal("[false, true, {}, \"/tmp\"]", result.ResultJson);
    }

    [Fact]
    public async Task A_CSharp_worker_runs_behind_the_wall_and_pauses_with_its_whole_group()
    {
        var factory = new WorkerProcessFactory(Microsoft.Extensions.Options.Options.Create(Options()), NullLogger<WorkerProcessFactory>.Instance);
        Assert.Null(factory.Unavailable);
        Assert.Equal(SandboxStates.Kernel, factory.Sandbox.Status);
        var worker = await Start(factory);
        // It says hello as PID 2 inside its PID namespace; the peer signals it by its own number for it.
        var nspid = File.ReadLines($"/proc/{worker.ProcessId}/status").First(l => l.StartsWith("NSpid:", StringComparison.Ordinal));
        output.WriteLine($"worker {worker.ProcessId} {nspid}; cgroups {factory.Sandbox.UsesCgroups}; started in {worker.StartupTime.TotalMilliseconds:0} ms");
        Assert.EndsWith("\t2", nspid);
        Assert.True(worker.IsHealthy);
    }

    [Fact]
    public async Task Without_bubblewrap_the_peer_refuses_tasks_and_says_why()
    {
        var options = Microsoft.Extensions.Options.Options.Create(Options(o => o.BubblewrapPath = "/nonexistent/bwrap"));
        var csharp = new WorkerProcessFactory(options, NullLogger<WorkerProcessFactory>.Instance);
        var python = new PythonWorkerFactory(options, NullLogger<PythonWorkerFactory>.Instance);
        Assert.Equal("refusing tasks: bubblewrap is not installed (/nonexistent/bwrap not found; Debian: apt-get install bubblewrap)", csharp.Unavailable);
        Assert.Equal(csharp.Unavailable, python.Unavailable);
        Assert.StartsWith(SandboxStates.RefusingPrefix, csharp.Sandbox.Status);
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => csharp.StartWorkerAsync(CancellationToken.None));
        Assert.Contains("bubblewrap is not installed", refused.Message);
    }

    [Fact]
    public void A_launcher_that_builds_no_wall_is_caught_by_the_probe()
    {
        // A "bwrap" that ignores every option and runs the command as it is: the probe sees no
        // seccomp filter and no_new_privs, so the peer refuses tasks instead of trusting the name.
        var fake = Path.Combine(Path.GetTempPath(), $"fake-bwrap-{Guid.NewGuid():N}");
        File.WriteAllText(fake, "#!/bin/sh\nwhile [ \"$1\" != \"--\" ]; do shift; done\nshift\nexec \"$@\" 3<&-\n");
        if (OperatingSystem.IsLinux()) File.SetUnixFileMode(fake, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        _files.Add(fake);
        using var sandbox = new KernelSandbox(Microsoft.Extensions.Options.Options.Create(Options(o => o.BubblewrapPath = fake)), NullLogger<KernelSandbox>.Instance);
        output.WriteLine(sandbox.Status);
        Assert.NotNull(sandbox.Refusal);
        Assert.Matches("no_new_privs|seccomp|capabilities|uid", sandbox.Refusal);
    }

    [Fact]
    public async Task Isolation_none_is_the_explicit_way_to_run_without_the_wall()
    {
        var options = Microsoft.Extensions.Options.Options.Create(Options(o => o.Isolation = WorkerIsolation.None));
        var factory = new WorkerProcessFactory(options, NullLogger<WorkerProcessFactory>.Instance);
        Assert.Null(factory.Unavailable);
        Assert.Equal(SandboxStates.Unsandboxed, factory.Sandbox.Status);
        var worker = await Start(factory);
        // Unsandboxed, the worker is the peer's own user.
        var uid = File.ReadLines($"/proc/{worker.ProcessId}/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal));
        Assert.Equal(File.ReadLines("/proc/self/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal)), uid);
    }
}

/// <summary>A test of what the wall does when the peer runs as root (as CI does); skipped, with the reason, otherwise.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (Environment.UserName != "root") Skip = "needs root: only a root peer gives each worker a uid of its own";
    }
}
