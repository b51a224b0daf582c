using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Npgsql;
using Xunit;

namespace P2PShare.EndToEnd.Infrastructure;

/// <summary>
/// A test that needs the PostgreSQL server tests/run.sh starts; skipped, with the reason, when
/// <c>P2PSHARE_TEST_PG</c> is not set.
/// </summary>
public sealed class PostgresFactAttribute : FactAttribute
{
    public PostgresFactAttribute()
    {
        if (PostgresCluster.ServerConnectionString is null)
        {
            Skip = $"needs PostgreSQL: {PostgresCluster.EnvironmentVariable} is not set (tests/run.sh starts a throwaway server with deploy/postgres/pg.sh and sets it)";
        }
    }
}

/// <summary>
/// <see cref="Size"/> real <c>p2pshare-peer</c> processes in postgres clustering mode on loopback,
/// with free ports, sharing a PostgreSQL schema of their own (Search Path) in the test server's
/// database, so that nothing else sees this cluster. Torn down by <see cref="DisposeAsync"/>.
/// </summary>
public sealed class PostgresCluster : IAsyncLifetime
{
    public const string EnvironmentVariable = "P2PSHARE_TEST_PG";
    public const int Size = 3;

    private static readonly TimeSpan BuildTimeout = TimeSpan.FromMinutes(6);
    private static readonly TimeSpan FormTimeout = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan CliTimeout = TimeSpan.FromSeconds(60);

    private readonly Dictionary<string, PeerProcess> _peers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string?> _environment = new();
    private readonly string _dataRoot = Path.Combine(Path.GetTempPath(), "p2pshare-pg-e2e-" + Guid.NewGuid().ToString("N")[..12]);

    public static string? ServerConnectionString =>
        Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } value ? value : null;

    public string SchemaName { get; } = "e2e_" + Guid.NewGuid().ToString("N")[..16];

    /// <summary>The connection string peers and CLI get: the test server, this cluster's schema.</summary>
    public string ConnectionString { get; private set; } = "";

    public IEnumerable<string> PeerNames => Enumerable.Range(1, Size).Select(i => $"pg-peer-{i}");

    public async Task InitializeAsync()
    {
        if (ServerConnectionString is not { } server)
        {
            return; // every test using this is skipped
        }

        // Ours, not the developer's: no clustering settings or gateways from the shell, no MSBuild
        // state of `dotnet test` leaking into the build cluster.sh runs.
        foreach (var name in Environment.GetEnvironmentVariables().Keys.Cast<string>())
        {
            if (name.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || name.StartsWith("P2PSHARE_", StringComparison.Ordinal))
            {
                _environment[name] = null;
            }
        }

        try
        {
            await ExecuteAsync(server, $"CREATE SCHEMA \"{SchemaName}\"");
            ConnectionString = new NpgsqlConnectionStringBuilder(server) { SearchPath = SchemaName }.ConnectionString;
            await ExecuteAsync(ConnectionString, await File.ReadAllTextAsync(RepoPaths.SchemaFile));

            await BuildOnceAsync();

            var ports = FreePorts.PickBases(Size);
            var i = 0;
            foreach (var name in PeerNames)
            {
                _peers[name] = PeerProcess.Start(name, ports.SiloBase + i, ports.GatewayBase + i, ConnectionString,
                    Path.Combine(_dataRoot, name), _environment);
                i++;
            }

            await WaitUntilListedAsync(PeerNames.ToArray(), FormTimeout);
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    public async Task DisposeAsync()
    {
        // Called by xunit and, when start-up failed, by InitializeAsync: the second call finds nothing left.
        var peers = _peers.Values.ToList();
        _peers.Clear();
        await Task.WhenAll(peers.Select(p => p.StopAsync(StopTimeout)));
        foreach (var peer in peers)
        {
            peer.Dispose();
        }

        if (ServerConnectionString is { } server && ConnectionString.Length > 0)
        {
            ConnectionString = "";
            NpgsqlConnection.ClearAllPools();
            await ExecuteAsync(server, $"DROP SCHEMA IF EXISTS \"{SchemaName}\" CASCADE");
        }

        try
        {
            Directory.Delete(_dataRoot, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
        catch (IOException)
        {
            // A leftover temp folder is not worth failing the run for.
        }
    }

    /// <summary>Builds peer host and CLI (Release) with cluster.sh, once per test process.</summary>
    public static Task BuildOnceAsync() => Build.Value;

    private static readonly Lazy<Task> Build = new(async () =>
    {
        var environment = Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Where(n => n.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase))
            .ToDictionary(n => n, _ => (string?)null);
        var build = await ProcessRunner.RunAsync(RepoPaths.ClusterScript, ["build"], BuildTimeout, environment);
        if (build.ExitCode != 0)
        {
            throw new InvalidOperationException($"build failed:\n{build}");
        }
    });

    public PeerProcess Peer(string name) => _peers[name];

    /// <summary>Runs the real CLI against this cluster through the database (<c>--db</c>).</summary>
    public Task<ProcessResult> CliAsync(params string[] arguments) =>
        ProcessRunner.RunAsync("dotnet", [RepoPaths.CliDll, "--db", ConnectionString, .. arguments], CliTimeout, _environment);

    /// <summary>Runs the CLI until its result satisfies <paramref name="done"/>; fails with the last result after 30 s.</summary>
    public async Task<ProcessResult> CliEventuallyAsync(Func<ProcessResult, bool> done, params string[] arguments)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var result = await CliAsync(arguments);
            if (done(result))
            {
                return result;
            }

            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(30), $"still not as expected after 30 s: {result}\n{Logs()}");
            await Task.Delay(200);
        }
    }

    /// <summary>The peer names <c>peers --json</c> lists now, or null when the CLI failed.</summary>
    public async Task<string[]?> ListedPeerNamesAsync() => PeerNamesIn(await CliAsync("peers", "--json"));

    /// <summary>The sorted peer names of a <c>peers --json</c> result, or null when the CLI failed.</summary>
    public static string[]? PeerNamesIn(ProcessResult result)
    {
        if (result.ExitCode != 0)
        {
            return null;
        }

        using var json = JsonDocument.Parse(result.StdoutBytes);
        return json.RootElement.EnumerateArray().Select(p => p.GetProperty("name").GetString()!).Order(StringComparer.Ordinal).ToArray();
    }

    public async Task WaitUntilListedAsync(string[] expected, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        string[]? listed = null;
        while (deadline.Elapsed < timeout)
        {
            foreach (var (name, peer) in _peers)
            {
                if (peer.HasExited && expected.Contains(name))
                {
                    Assert.Fail($"{name} exited with {peer.ExitCode}:\n{peer.Output}");
                }
            }

            listed = await ListedPeerNamesAsync();
            if (listed is not null && listed.SequenceEqual(expected.Order(StringComparer.Ordinal)))
            {
                return;
            }

            await Task.Delay(300);
        }

        Assert.Fail($"after {timeout.TotalSeconds:0}s `peers` lists [{string.Join(", ", listed ?? [])}], not [{string.Join(", ", expected)}]\n{Logs()}");
    }

    /// <summary>Each member row: silo name → Orleans status (3 Active, 6 Dead), newest generation.</summary>
    public async Task<Dictionary<string, int>> MembershipAsync()
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT DISTINCT ON (silo_name) silo_name, status FROM p2pshare_membership ORDER BY silo_name, generation DESC", connection);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new Dictionary<string, int>(StringComparer.Ordinal);
        while (await reader.ReadAsync())
        {
            rows[reader.GetString(0)] = reader.GetInt32(1);
        }

        return rows;
    }

    public string Logs() =>
        string.Join('\n', _peers.Select(p => $"--- {p.Key} (last lines) ---\n{p.Value.Output.Tail(30)}"));

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}

/// <summary>One peer process; its output is kept in memory for failure messages.</summary>
public sealed class PeerProcess : IDisposable
{
    private readonly Process _process;
    private readonly OutputBuffer _output = new();

    private PeerProcess(Process process) => _process = process;

    public OutputBuffer Output => _output;

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public static PeerProcess Start(string name, int siloPort, int gatewayPort, string connectionString, string dataDir,
        IReadOnlyDictionary<string, string?> environment)
    {
        var info = new ProcessStartInfo(RepoPaths.PeerHost)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[]
                 {
                     "--name", name, "--clustering", "postgres", "--db", connectionString, "--address", "127.0.0.1",
                     "--silo-port", siloPort.ToString(), "--gateway-port", gatewayPort.ToString(), "--data-dir", dataDir,
                 })
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in environment)
        {
            if (value is null)
            {
                info.Environment.Remove(key);
            }
            else
            {
                info.Environment[key] = value;
            }
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {RepoPaths.PeerHost}");
        var peer = new PeerProcess(process);
        process.OutputDataReceived += (_, e) => peer._output.Add(e.Data);
        process.ErrorDataReceived += (_, e) => peer._output.Add(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.StandardInput.Close();
        return peer;
    }

    /// <summary>SIGKILL: the process gets no chance to leave the cluster.</summary>
    public void Kill() => _process.Kill();

    /// <summary>SIGTERM (a graceful stop), then SIGKILL after <paramref name="timeout"/>.</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        if (_process.HasExited)
        {
            return;
        }

        using (var term = Process.Start("kill", ["-TERM", _process.Id.ToString()]))
        {
            await term!.WaitForExitAsync();
        }

        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    public void Dispose() => _process.Dispose();
}

/// <summary>Lines a process wrote, safe to append from its output events.</summary>
public sealed class OutputBuffer
{
    private readonly List<string> _lines = [];

    public void Add(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_lines)
        {
            _lines.Add(line);
        }
    }

    public string Tail(int count)
    {
        lock (_lines)
        {
            return string.Join('\n', _lines.TakeLast(count));
        }
    }

    public override string ToString()
    {
        lock (_lines)
        {
            var text = new StringBuilder();
            foreach (var line in _lines)
            {
                text.AppendLine(line);
            }

            return text.ToString();
        }
    }
}
