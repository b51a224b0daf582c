using System.CommandLine;
using System.CommandLine.Help;
using System.Globalization;
using P2PShare.Cli;

namespace P2PShare.Benchmarks;

/// <summary>
/// The command line of p2pshare-bench, with System.CommandLine as in the CLI and the peer. Built per
/// process: the option objects are read back after parsing.
/// </summary>
internal sealed class BenchCommandLine
{
    private readonly Option<string[]> _gateway = new("--gateway")
    {
        Description = "a cluster gateway (repeatable; default 127.0.0.1:30000, :30001 and :30002)",
        HelpName = "HOST:PORT",
    };

    private readonly Option<bool> _quick = new("--quick")
    {
        Description = "small sizes for a smoke run (the --quick defaults below)",
    };

    private readonly Option<string> _scenarios = new("--scenarios")
    {
        Description = $"scenarios to run, comma-separated (default all: {string.Join(',', BenchOptions.All)})",
        HelpName = "LIST",
    };

    private readonly Option<int?> _tasks = new("--tasks")
    {
        Description = $"tasks of the tasks scenario (default {BenchOptions.DefaultTasks}; --quick: {BenchOptions.QuickTasks})",
        HelpName = "N",
    };

    private readonly Option<string> _submitters = new("--submitters")
    {
        Description = $"concurrent submitters of the tasks scenario, comma-separated counts, each a run of its own with distinct submitter names "
            + $"(default {string.Join(',', BenchOptions.DefaultSubmitters)}; --quick: {string.Join(',', BenchOptions.QuickSubmitters)})",
        HelpName = "N[,N]",
    };

    private readonly Option<string> _variants = new("--variants")
    {
        Description = $"variants of the tasks scenario, comma-separated (default all: {string.Join(',', BenchOptions.AllVariants)}); "
            + "routed runs at every submitter count, the others at the first",
        HelpName = "LIST",
    };

    private readonly Option<double?> _rate = new("--rate")
    {
        Description = string.Create(CultureInfo.InvariantCulture,
            $"tasks per second the open scenario offers (default {BenchOptions.DefaultOpenRate}; --quick: {BenchOptions.QuickOpenRate})"),
        HelpName = "R",
    };

    private readonly Option<double?> _tasksSeconds = new("--tasks-seconds")
    {
        Description = string.Create(CultureInfo.InvariantCulture,
            $"no new task of a tasks run starts after this many seconds (default {BenchOptions.DefaultTasksSeconds}; --quick: {BenchOptions.QuickTasksSeconds})"),
        HelpName = "S",
    };

    private readonly Option<double?> _openSeconds = new("--open-seconds")
    {
        Description = string.Create(CultureInfo.InvariantCulture,
            $"seconds the open scenario offers tasks for (default {BenchOptions.DefaultOpenSeconds}; --quick: {BenchOptions.QuickOpenSeconds})"),
        HelpName = "S",
    };

    private readonly Option<int?> _batchSize = new("--batch-size")
    {
        Description = $"tasks per call of the batch scenario (default {BenchOptions.DefaultBatchSize}; --quick: {BenchOptions.QuickBatchSize})",
        HelpName = "N",
    };

    private readonly Option<double?> _memSeconds = new("--mem-seconds")
    {
        Description = string.Create(CultureInfo.InvariantCulture,
            $"seconds of each mem run (default {BenchOptions.DefaultMemSeconds}; --quick: {BenchOptions.QuickMemSeconds})"),
        HelpName = "S",
    };

    private readonly Option<int?> _fileMiB = new("--file-mib")
    {
        Description = $"size of the file scenario's file in MiB (default {BenchOptions.DefaultFileMiB}; --quick: {BenchOptions.QuickFileMiB})",
        HelpName = "N",
    };

    private readonly Option<string> _timeSlicing = new("--time-slicing")
    {
        Description = $"whether the cluster runs with time slicing, for the fairness line (default {BenchOptions.DefaultTimeSlicing})",
        HelpName = "on|off",
    };

    private readonly Option<int?> _redisPort = new("--redis-port")
    {
        Description = "also run redis-benchmark against the redis-server on this port for mem (default: no comparison)",
        HelpName = "P",
    };

    private readonly Option<int?> _redisPid = new("--redis-pid")
    {
        Description = "the redis-server's process id, for its CPU per command in the redis scenario (default: not measured)",
        HelpName = "PID",
    };

    private readonly Option<int?> _respPort = new("--resp-port")
    {
        Description = "the first peer's RESP (Redis protocol) port: the redis scenario runs redis-benchmark against it too (default: redis-server only)",
        HelpName = "P",
    };

    private readonly Option<string> _cli = new("--cli")
    {
        Description = "the p2pshare command for the file scenario (default deploy/local/p2pshare)",
        HelpName = "PATH",
    };

    private readonly Option<string> _pidDir = new("--pid-dir")
    {
        Description = "the cluster's run/ folder, for the peers' peak resident memory and CPU per task (default: not measured)",
        HelpName = "DIR",
    };

    private readonly Option<string> _legacy = new("--legacy")
    {
        Description = "the original system's peer for the legacy scenario: Python CPU_TASKs and SET/GET_MEM, one connection "
            + "per request like the original client, against the first peer's seed-protocol port and also against this one "
            + "(the original system's peer), with the ratio (default: ours only)",
        HelpName = "HOST:PORT",
    };

    public BenchCommandLine()
    {
        Root = new RootCommand(
            "p2pshare-bench: runs the benchmark scenarios against a running cluster and prints one JSON line per scenario "
            + "(and per variant: tasks with and without --confidential, mem at concurrency 8 and 50, redis per test and shape).")
        {
            _gateway, _quick, _scenarios, _tasks, _submitters, _variants, _rate, _tasksSeconds, _openSeconds, _batchSize, _memSeconds, _fileMiB, _timeSlicing, _redisPort, _redisPid, _respPort, _cli, _pidDir, _legacy,
        };
        Root.Options.Remove(Root.Options.OfType<VersionOption>().Single());
        _gateway.Validators.Add(result =>
        {
            foreach (var token in result.Tokens)
            {
                try
                {
                    Gateways.Parse(token.Value);
                }
                catch (UsageException e)
                {
                    result.AddError(e.Message);
                }
            }
        });
        _scenarios.Validators.Add(result =>
        {
            if (result.Tokens.Count == 1 && Scenarios(result.Tokens[0].Value).Except(BenchOptions.All).FirstOrDefault() is { } unknown)
                result.AddError($"unknown scenario {unknown}");
        });
        _variants.Validators.Add(result =>
        {
            if (result.Tokens.Count == 1 && Scenarios(result.Tokens[0].Value).Except(BenchOptions.AllVariants).FirstOrDefault() is { } unknown)
                result.AddError($"unknown variant {unknown}");
        });
        _submitters.Validators.Add(result =>
        {
            if (result.Tokens.Count == 1 && Counts(result.Tokens[0].Value) is null)
                result.AddError($"--submitters wants positive counts separated by commas, got '{result.Tokens[0].Value}'");
        });
        _rate.Validators.Add(result =>
        {
            if (Number(result) is not (> 0 and < 1e7))
                result.AddError("--rate must be a positive number of tasks per second");
        });
        _tasksSeconds.Validators.Add(result =>
        {
            if (Number(result) is not (> 0 and <= 86_400))
                result.AddError("--tasks-seconds must be between 0 and 86400");
        });
        _openSeconds.Validators.Add(result =>
        {
            if (Number(result) is not (> 0 and <= 3600))
                result.AddError("--open-seconds must be between 0 and 3600");
        });
        _batchSize.Validators.Add(result =>
        {
            if (Number(result) is not (>= 1 and <= 1_000_000) || !int.TryParse(result.Tokens[^1].Value, CultureInfo.InvariantCulture, out _))
                result.AddError("--batch-size must be a whole number between 1 and 1000000");
        });
        _legacy.Validators.Add(result =>
        {
            if (result.Tokens.Count == 1 && Legacy.TryParseEndpoint(result.Tokens[0].Value) is null)
                result.AddError($"--legacy wants HOST:PORT, got '{result.Tokens[0].Value}'");
        });
    }

    public RootCommand Root { get; }

    public ParseResult Parse(IReadOnlyList<string> args) => Root.Parse(args);

    public static bool IsHelp(ParseResult parse) => parse.Action is HelpAction;

    /// <summary>What the command line asks for; explicit sizes win over --quick's.</summary>
    public BenchOptions Read(ParseResult parse)
    {
        var quick = parse.GetValue(_quick);
        var gateways = (parse.GetValue(_gateway) ?? []).Select(Gateways.Parse).ToList();
        return new BenchOptions
        {
            Gateways = gateways.Count > 0 ? gateways : [.. BenchOptions.DefaultGateways],
            Scenarios = parse.GetValue(_scenarios) is { } list ? Scenarios(list) : [.. BenchOptions.All],
            Quick = quick,
            Tasks = parse.GetValue(_tasks) ?? (quick ? BenchOptions.QuickTasks : BenchOptions.DefaultTasks),
            Submitters = parse.GetValue(_submitters) is { } counts ? Counts(counts)! : (quick ? BenchOptions.QuickSubmitters : BenchOptions.DefaultSubmitters),
            Variants = parse.GetValue(_variants) is { } variants ? Scenarios(variants) : [.. BenchOptions.AllVariants],
            OpenRate = parse.GetValue(_rate) ?? (quick ? BenchOptions.QuickOpenRate : BenchOptions.DefaultOpenRate),
            TasksSeconds = parse.GetValue(_tasksSeconds) ?? (quick ? BenchOptions.QuickTasksSeconds : BenchOptions.DefaultTasksSeconds),
            OpenSeconds = parse.GetValue(_openSeconds) ?? (quick ? BenchOptions.QuickOpenSeconds : BenchOptions.DefaultOpenSeconds),
            BatchSize = parse.GetValue(_batchSize) ?? (quick ? BenchOptions.QuickBatchSize : BenchOptions.DefaultBatchSize),
            MemSeconds = parse.GetValue(_memSeconds) ?? (quick ? BenchOptions.QuickMemSeconds : BenchOptions.DefaultMemSeconds),
            FileMiB = parse.GetValue(_fileMiB) ?? (quick ? BenchOptions.QuickFileMiB : BenchOptions.DefaultFileMiB),
            TimeSlicing = parse.GetValue(_timeSlicing) ?? BenchOptions.DefaultTimeSlicing,
            RedisPort = parse.GetValue(_redisPort),
            RedisPid = parse.GetValue(_redisPid),
            RespPort = parse.GetValue(_respPort),
            Cli = parse.GetValue(_cli),
            PidDir = parse.GetValue(_pidDir),
            Legacy = parse.GetValue(_legacy),
        };
    }

    private static List<string> Scenarios(string list) =>
        [.. list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];

    /// <summary>
    /// The option's last token as a number, NaN when it is not one: read from the token, because the
    /// typed value of a token that does not parse throws inside a validator.
    /// </summary>
    private static double Number(System.CommandLine.Parsing.OptionResult result) =>
        result.Tokens.Count > 0 && double.TryParse(result.Tokens[^1].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var value)
            ? value
            : double.NaN;

    private static int[]? Counts(string list)
    {
        var counts = new List<int>();
        foreach (var item in Scenarios(list))
        {
            if (!int.TryParse(item, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n is < 1 or > 100_000) return null;
            counts.Add(n);
        }

        return counts.Count > 0 ? [.. counts] : null;
    }
}
