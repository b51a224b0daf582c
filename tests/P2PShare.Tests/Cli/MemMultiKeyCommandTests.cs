using System.CommandLine;
using P2PShare.Cli;
using P2PShare.Cli.Commands;

namespace P2PShare.Tests.Cli;

/// <summary>
/// <c>mem mset</c>/<c>mem mget</c> without a cluster: what is refused before connecting, and the rule
/// for missing keys. Against real peers through the CLI binary: EndToEnd's RedisClientTests.
/// </summary>
public sealed class MemMultiKeyCommandTests
{
    /// <summary>Runs the CLI's command tree as Program does, up to the point of connecting.</summary>
    private static async Task<(int ExitCode, string Error)> RunAsync(params string[] args)
    {
        var parse = CliApp.Build().Parse(args, CliApp.Parser());
        if (parse.Errors.Count > 0) return (ExitCodes.Usage, CliApp.MostSpecific(parse).Message);
        try
        {
            // Port 9 (discard) is never a gateway: anything that got past the checks fails to connect, exit 5.
            return (await parse.InvokeAsync(CliApp.Invocation()), "");
        }
        catch (Exception ex)
        {
            var failure = ErrorReporting.Classify(ex);
            return (failure.ExitCode, failure.Message);
        }
    }

    [Theory]
    [InlineData("a")]
    [InlineData("a", "1", "b")]
    public async Task Mset_with_a_key_without_a_value_is_a_usage_error_before_connecting(params string[] pairs)
    {
        var (code, error) = await RunAsync(["--gateway", "127.0.0.1:9", "mem", "mset", .. pairs]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Equal("mset takes keys and values in pairs: KEY VALUE [KEY VALUE ...]", error);
    }

    [Fact]
    public async Task Mset_with_a_missing_local_file_is_a_usage_error_naming_it()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"p2pshare-no-such-{Guid.NewGuid():N}.bin");
        var (code, error) = await RunAsync("--gateway", "127.0.0.1:9", "mem", "mset", "a", "1", "b", "@" + missing);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Equal($"no such local file '{missing}'", error);
    }

    [Theory]
    [InlineData("mem", "mset")]
    [InlineData("mem", "mget")]
    [InlineData("mem", "mset", "a", "1", "--ttl", "0")]
    [InlineData("mem", "mset", "a", "1", "--ttl", "abc")]
    public async Task Mset_and_mget_without_keys_or_with_a_bad_ttl_are_usage_errors(params string[] args)
    {
        var (code, error) = await RunAsync(args);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.False(string.IsNullOrWhiteSpace(error));
    }

    [Fact]
    public async Task Well_formed_mset_and_mget_get_as_far_as_connecting()
    {
        // The checks above are not refusing everything: a good command line reaches the network.
        var (mset, _) = await RunAsync("--gateway", "127.0.0.1:9", "mem", "mset", "a", "1", "b", "@@2", "--ttl", "5");
        Assert.Equal(ExitCodes.Unavailable, mset);
        var (mget, _) = await RunAsync("--gateway", "127.0.0.1:9", "mem", "mget", "a", "b");
        Assert.Equal(ExitCodes.Unavailable, mget);
    }

    [Fact]
    public void Mget_with_every_key_present_is_no_error()
    {
        Assert.Null(MemCommands.MissingKeysError(["a", "b"], [[1], []], "peer-1"));
    }

    [Fact]
    public void Mget_with_a_missing_key_is_not_found_exit_3_naming_it_as_mem_get_does()
    {
        var error = MemCommands.MissingKeysError(["a", "nope", "b"], [[1], null, [2]], "peer-2");
        Assert.NotNull(error);
        var failure = ErrorReporting.Classify(error);
        Assert.Equal(ExitCodes.NotFound, failure.ExitCode);
        Assert.Equal("key 'nope' not found on peer-2", failure.Message);
    }

    [Fact]
    public void Mget_with_many_missing_keys_names_a_few_on_one_line()
    {
        string[] names = ["k1", "k2", "k1", "k3", "k4", "k5", "k6", "k7", "here"];
        var values = names.Select(n => n == "here" ? new byte[] { 1 } : null).ToArray();
        var failure = ErrorReporting.Classify(MemCommands.MissingKeysError(names, values, "peer-1")!);
        Assert.Equal(ExitCodes.NotFound, failure.ExitCode);
        Assert.Equal("7 of 8 keys not found on peer-1: 'k1', 'k2', 'k3', 'k4', 'k5' and 2 more", failure.Message);
    }

    [Fact]
    public void Mget_help_says_how_a_missing_key_ends()
    {
        var mget = CliApp.Build().Subcommands.Single(c => c.Name == "mem").Subcommands.Single(c => c.Name == "mget");
        Assert.Contains("(missing)", mget.Description);
        Assert.Contains("exit 3", mget.Description);
    }
}
