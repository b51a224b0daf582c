using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using P2PShare.Benchmarks;
using P2PShare.Cli;

// p2pshare-bench: runs the benchmark scenarios against a running cluster and prints one JSON line each.
var commandLine = new BenchCommandLine();
var parse = commandLine.Parse(args);
if (BenchCommandLine.IsHelp(parse))
{
    return parse.Invoke();
}

if (parse.Errors.Count > 0)
{
    Console.Error.WriteLine($"p2pshare-bench: {parse.Errors[0].Message} (see --help)");
    return 2;
}

var options = commandLine.Read(parse);

ClusterConnection cluster;
try
{
    cluster = await ClusterConnection.ConnectAsync(new ConnectionSettings(options.Gateways, Origin: null), CancellationToken.None);
}
catch (ClusterUnreachableException e)
{
    Console.Error.WriteLine($"p2pshare-bench: {e.Message.ReplaceLineEndings(" ")}");
    return 5;
}

await using var connected = cluster;
var bench = new Scenarios(cluster, options);
var failed = 0;
foreach (var scenario in options.Scenarios)
{
    try
    {
        foreach (var line in await bench.RunAsync(scenario))
            Console.WriteLine(line.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
    }
    catch (Exception e)
    {
        failed++;
        Console.WriteLine(new JsonObject { ["scenario"] = scenario, ["error"] = e.Message.ReplaceLineEndings(" ") }.ToJsonString());
        Console.Error.WriteLine($"p2pshare-bench: {scenario} failed: {e}");
    }
}

return failed == 0 ? 0 : 1;
