using System.Globalization;
using P2PShare.Cli;
using P2PShare.Connecting;

namespace P2PShare.Benchmarks;

/// <summary>Command line of p2pshare-bench; every size has a full and a --quick default.</summary>
internal sealed record BenchOptions
{
    public const string Usage = """
        p2pshare-bench [--gateway HOST:PORT ...] [--quick] [--scenarios tasks,compile,balance,fairness,mem,file]
                       [--tasks N] [--submitters N] [--mem-seconds S] [--file-mib N] [--time-slicing on|off]
                       [--redis-port P] [--cli PATH] [--pid-dir DIR] [--legacy HOST:PORT]
        Prints one JSON line per scenario (and per variant: tasks with and without --confidential,
        mem at concurrency 8 and 50). --redis-port: also run redis-benchmark against that server for
        mem. --cli: the p2pshare command for the file scenario (default deploy/local/p2pshare);
        --pid-dir: the cluster's run/ folder, for the peers' peak resident memory.
        --legacy: a seed-protocol peer port for the legacy scenario (Python CPU_TASKs and SET/GET_MEM,
        one connection per request like the original client; also works against the original system).
        """;

    public static readonly string[] All = ["compile", "file", "tasks", "balance", "fairness", "mem", "legacy"];

    public List<HostPort> Gateways { get; init; } = [];
    public List<string> Scenarios { get; init; } = [.. All];
    public bool Quick { get; init; }
    public int Tasks { get; init; } = 3000;
    public int Submitters { get; init; } = 16;
    public double MemSeconds { get; init; } = 5;
    public int FileMiB { get; init; } = 1024;
    public string TimeSlicing { get; init; } = "on";
    public int? RedisPort { get; init; }
    public string? Cli { get; init; }
    public string? PidDir { get; init; }
    public string? Legacy { get; init; }

    public static BenchOptions? Parse(string[] args)
    {
        var gateways = new List<HostPort>();
        var o = new BenchOptions();
        var quick = args.Contains("--quick");
        if (quick) o = o with { Quick = true, Tasks = 200, Submitters = 4, MemSeconds = 1, FileMiB = 16 };
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int Int() => int.Parse(Next(), CultureInfo.InvariantCulture);
            try
            {
                o = args[i] switch
                {
                    "--quick" => o,
                    "--gateway" => Add(o, gateways, P2PShare.Cli.Gateways.Parse(Next())),
                    "--scenarios" => o with { Scenarios = [.. Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)] },
                    "--tasks" => o with { Tasks = Int() },
                    "--submitters" => o with { Submitters = Int() },
                    "--mem-seconds" => o with { MemSeconds = double.Parse(Next(), CultureInfo.InvariantCulture) },
                    "--file-mib" => o with { FileMiB = Int() },
                    "--time-slicing" => o with { TimeSlicing = Next() },
                    "--redis-port" => o with { RedisPort = Int() },
                    "--cli" => o with { Cli = Next() },
                    "--pid-dir" => o with { PidDir = Next() },
                    "--legacy" => o with { Legacy = Next() },
                    _ => throw new ArgumentException($"unknown argument {args[i]}"),
                };
            }
            catch (Exception e) when (e is ArgumentException or FormatException or OverflowException or UsageException)
            {
                Console.Error.WriteLine($"p2pshare-bench: {e.Message}");
                return null;
            }
        }

        if (o.Scenarios.Except(All).FirstOrDefault() is { } unknown)
        {
            Console.Error.WriteLine($"p2pshare-bench: unknown scenario {unknown}");
            return null;
        }

        if (gateways.Count == 0)
            gateways.AddRange(Enumerable.Range(0, 3).Select(k => new HostPort("127.0.0.1", 30000 + k)));
        return o with { Gateways = gateways };
    }

    private static BenchOptions Add(BenchOptions o, List<HostPort> gateways, HostPort gateway)
    {
        gateways.Add(gateway);
        return o;
    }
}
