using System.CommandLine;
using System.CommandLine.Invocation;
using P2PShare.Cli;

ParseResult parse;
try
{
    parse = CliApp.Build().Parse(args, CliApp.Parser());
}
catch (Exception ex)
{
    // A validator bug must still end as one line, not an unhandled-exception dump.
    Console.Error.WriteLine($"error: {ErrorReporting.OneLine(ex)}");
    return ExitCodes.Usage;
}

// System.CommandLine prints every parse error plus the full help; scripts and people want one line.
if (parse.Action is ParseErrorAction && parse.Errors.Count > 0)
{
    Console.Error.WriteLine($"error: {CliApp.MostSpecific(parse).Message} (see --help)");
    return ExitCodes.Usage;
}

try
{
    return await parse.InvokeAsync(CliApp.Invocation()).ConfigureAwait(false);
}
catch (Exception ex)
{
    return ErrorReporting.Report(ex, Console.Error);
}
