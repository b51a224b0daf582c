using System.CommandLine;
using System.Text;
using P2PShare.Memory;
using P2PShare.Peers;

namespace P2PShare.Cli.Commands;

/// <summary><c>mem get --json</c>: the value as base64, and as text when it is valid UTF-8.</summary>
public sealed record MemoryValueView(string Key, long ValueBytes, string ValueBase64, string? ValueUtf8);

public static class MemCommands
{
    public const int DefaultListLimit = 1000;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static Command Create(CommandRunner runner)
    {
        var peerOption = CommonOptions.NewPeerOption();
        var command = new Command("mem", "Store, read and list small values in a peer's memory") { peerOption };
        command.Subcommands.Add(Set(runner, peerOption));
        command.Subcommands.Add(Get(runner, peerOption));
        command.Subcommands.Add(MultiSet(runner, peerOption));
        command.Subcommands.Add(MultiGet(runner, peerOption));
        command.Subcommands.Add(Delete(runner, peerOption));
        command.Subcommands.Add(List(runner, peerOption));
        return command;
    }

    /// <summary>
    /// <c>@FILE</c> means the file's bytes, <c>@@text</c> the literal <c>@text</c>, anything else UTF-8 text.
    /// </summary>
    public static (byte[]? Literal, string? File) ParseValue(string value) =>
        value.StartsWith("@@", StringComparison.Ordinal) ? (Encoding.UTF8.GetBytes(value[1..]), null)
        : value.StartsWith('@') ? (null, value[1..])
        : (Encoding.UTF8.GetBytes(value), null);

    private static Command Set(CommandRunner runner, Option<string> peerOption)
    {
        var key = new Argument<string>("KEY") { Description = "The key to store under" };
        var value = new Argument<string>("VALUE") { Description = "UTF-8 text, or @FILE for a file's bytes (@@text for text starting with @)" };
        // Not double?: the parser would name "System.Nullable`1[System.Double]" in its conversion error.
        var ttl = new Option<double>("--ttl") { Description = "Expire the value after this many seconds", HelpName = "SECONDS" };
        CommonOptions.AddCheck(ttl,
            s => s > 0 && s <= TimeSpan.MaxValue.TotalSeconds,
            "--ttl must be a positive number of seconds");

        var command = new Command("set", "Store a value, replacing any old one") { key, value, ttl };
        command.SetAction(async (parse, ct) =>
        {
            var (literal, file) = ParseValue(parse.GetRequiredValue(value));
            if (file is not null)
            {
                if (file.Length == 0 || !File.Exists(file))
                {
                    throw new UsageException($"no such local file '{file}'");
                }
            }

            return await runner.RunAsync(parse, ct, async ctx =>
            {
                var name = parse.GetRequiredValue(key);
                var peerName = await ctx.PeerAsync(peerOption).ConfigureAwait(false);
                var peer = ctx.Cluster.Peer(peerName);
                var bytes = literal ?? await ReadValueFileAsync(peerName, peer, file!, ct).ConfigureAwait(false);
                double? seconds = parse.GetResult(ttl) is null ? null : parse.GetValue(ttl);
                TimeSpan? expiry = seconds is { } s ? TimeSpan.FromSeconds(s) : null;
                await PeerCall.RunAsync(peerName, () => peer.SetAsync(name, bytes, expiry)).ConfigureAwait(false);
                if (ctx.Output.Json)
                {
                    ctx.Output.WriteJson(new { peer = peerName, key = name, valueBytes = bytes.LongLength, ttlSeconds = seconds });
                }
                else
                {
                    ctx.Output.Line($"stored {name} ({Bytes.Format(bytes.LongLength)}) on {peerName}");
                }
            }).ConfigureAwait(false);
        });
        return command;
    }

    private static Command Get(CommandRunner runner, Option<string> peerOption)
    {
        var key = new Argument<string>("KEY") { Description = "The key to read" };
        var command = new Command("get", "Write a value's raw bytes to stdout") { key };
        command.SetAction((parse, ct) => runner.RunAsync(parse, ct, async ctx =>
        {
            var name = parse.GetRequiredValue(key);
            var peerName = await ctx.PeerAsync(peerOption).ConfigureAwait(false);
            var bytes = await PeerCall.RunAsync(peerName, () => ctx.Cluster.Peer(peerName).GetAsync(name)).ConfigureAwait(false);
            if (ctx.Output.Json)
            {
                ctx.Output.WriteJson(new MemoryValueView(name, bytes.LongLength, Convert.ToBase64String(bytes), TryDecode(bytes)));
                return;
            }

            // Raw bytes, no newline: `p2pshare mem get k > f` must reproduce exactly what was stored.
            await using var stdout = Console.OpenStandardOutput();
            await stdout.WriteAsync(bytes, ct).ConfigureAwait(false);
            await stdout.FlushAsync(ct).ConfigureAwait(false);
        }));
        return command;
    }

    private static Command MultiSet(CommandRunner runner, Option<string> peerOption)
    {
        var pairs = new Argument<string[]>("KEY VALUE") { Description = "Keys and values in turn; values as for `mem set` (UTF-8 text, @FILE, @@text)", Arity = ArgumentArity.OneOrMore };
        var ttl = new Option<double>("--ttl") { Description = "Expire every value after this many seconds", HelpName = "SECONDS" };
        CommonOptions.AddCheck(ttl, s => s > 0 && s <= TimeSpan.MaxValue.TotalSeconds, "--ttl must be a positive number of seconds");
        var command = new Command("mset", "Store several values at once: all of them or, over quota, none") { pairs, ttl };
        command.SetAction(async (parse, ct) =>
        {
            var given = parse.GetRequiredValue(pairs);
            if (given.Length % 2 != 0) throw new UsageException("mset takes keys and values in pairs: KEY VALUE [KEY VALUE ...]");
            var parsed = new List<(string Key, byte[]? Literal, string? File)>();
            for (var i = 0; i < given.Length; i += 2)
            {
                var (literal, file) = ParseValue(given[i + 1]);
                if (file is not null && (file.Length == 0 || !File.Exists(file))) throw new UsageException($"no such local file '{file}'");
                parsed.Add((given[i], literal, file));
            }

            return await runner.RunAsync(parse, ct, async ctx =>
            {
                var peerName = await ctx.PeerAsync(peerOption).ConfigureAwait(false);
                var peer = ctx.Cluster.Peer(peerName);
                var items = new List<MemoryItem>();
                foreach (var (key, literal, file) in parsed)
                    items.Add(new MemoryItem(key, literal ?? await ReadValueFileAsync(peerName, peer, file!, ct).ConfigureAwait(false)));
                double? seconds = parse.GetResult(ttl) is null ? null : parse.GetValue(ttl);
                await PeerCall.RunAsync(peerName, () => peer.MSetAsync([.. items], seconds is { } s ? TimeSpan.FromSeconds(s) : null)).ConfigureAwait(false);
                var total = items.Sum(i => i.Value.LongLength);
                if (ctx.Output.Json) ctx.Output.WriteJson(new { peer = peerName, keys = items.Select(i => i.Key).ToArray(), valueBytes = total, ttlSeconds = seconds });
                else ctx.Output.Line($"stored {items.Count} keys ({Bytes.Format(total)}) on {peerName}");
            }).ConfigureAwait(false);
        });
        return command;
    }

    private static Command MultiGet(CommandRunner runner, Option<string> peerOption)
    {
        var keys = new Argument<string[]>("KEY") { Description = "The keys to read", Arity = ArgumentArity.OneOrMore };
        var command = new Command("mget",
            "Read several values in one consistent look: a table (text, or the size of binary values), or --json with base64. "
            + "Every key is shown, a missing one as (missing), null in --json; then, as `mem get` does for its key, "
            + "exit 3 with one error line naming the missing keys") { keys };
        command.SetAction((parse, ct) => runner.RunAsync(parse, ct, async ctx =>
        {
            var names = parse.GetRequiredValue(keys);
            var peerName = await ctx.PeerAsync(peerOption).ConfigureAwait(false);
            var values = await PeerCall.RunAsync(peerName, () => ctx.Cluster.Peer(peerName).MGetAsync([.. names])).ConfigureAwait(false);
            if (ctx.Output.Json)
            {
                ctx.Output.WriteJson(names.Select((name, i) => values[i] is { } v
                    ? new MemoryValueView(name, v.LongLength, Convert.ToBase64String(v), TryDecode(v))
                    : null).ToArray());
            }
            else
            {
                var table = Output.NewTable("Key", "Size", "Value");
                for (var i = 0; i < names.Length; i++)
                {
                    var value = values[i];
                    Output.AddRow(table, names[i], value is null ? "-" : Bytes.Format(value.LongLength),
                        value is null ? "(missing)" : TryDecode(value) is { } text && !text.Any(char.IsControl) ? text : $"(binary; `mem get {names[i]}` writes its bytes)");
                }

                ctx.Output.WriteTable(table);
            }

            // A script that reads several keys must be able to tell "all there" from the exit code alone.
            if (MissingKeysError(names, values, peerName) is { } missing) throw missing;
        }));
        return command;
    }

    /// <summary>
    /// The error for the keys <paramref name="values"/> has no value for, null when every key has one:
    /// one line, the same kind as <c>mem get</c>'s missing key (exit 3).
    /// </summary>
    public static P2PShareException? MissingKeysError(IReadOnlyList<string> names, IReadOnlyList<byte[]?> values, string peerName)
    {
        var missing = names.Where((_, i) => values[i] is null).Distinct(StringComparer.Ordinal).ToList();
        if (missing.Count == 0) return null;
        if (missing.Count == 1) return new P2PShareException(ErrorKind.NotFound, $"key '{missing[0]}' not found on {peerName}");
        const int Shown = 5;
        var listed = string.Join(", ", missing.Take(Shown).Select(k => $"'{k}'")) + (missing.Count > Shown ? $" and {missing.Count - Shown} more" : "");
        var asked = names.Distinct(StringComparer.Ordinal).Count();
        return new P2PShareException(ErrorKind.NotFound, $"{missing.Count} of {asked} keys not found on {peerName}: {listed}");
    }

    private static Command Delete(CommandRunner runner, Option<string> peerOption)
    {
        var key = new Argument<string>("KEY") { Description = "The key to delete" };
        var command = new Command("del", "Delete a key") { key };
        command.Aliases.Add("rm");
        command.SetAction((parse, ct) => runner.RunAsync(parse, ct, async ctx =>
        {
            var name = parse.GetRequiredValue(key);
            var peerName = await ctx.PeerAsync(peerOption).ConfigureAwait(false);
            await PeerCall.RunAsync(peerName, () => ctx.Cluster.Peer(peerName).DeleteAsync(name)).ConfigureAwait(false);
            if (ctx.Output.Json)
            {
                ctx.Output.WriteJson(new { peer = peerName, key = name, deleted = true });
            }
            else
            {
                ctx.Output.Line($"deleted {name} on {peerName}");
            }
        }));
        return command;
    }

    private static Command List(CommandRunner runner, Option<string> peerOption)
    {
        var prefix = new Argument<string>("PREFIX") { Description = "Only keys starting with this", Arity = ArgumentArity.ZeroOrOne };
        var limit = ListLimitOption();
        var command = new Command("ls", "List keys with their sizes and expiry") { prefix, limit };
        command.Aliases.Add("list");
        command.SetAction((parse, ct) => runner.RunAsync(parse, ct, async ctx =>
        {
            var peerName = await ctx.PeerAsync(peerOption).ConfigureAwait(false);
            var listing = await PeerCall.RunAsync(peerName,
                () => ctx.Cluster.Peer(peerName).ListAsync(parse.GetValue(prefix) ?? "", parse.GetValue(limit)))
                .ConfigureAwait(false);
            var entries = listing.Entries.IsDefault ? [] : listing.Entries.OrderBy(e => e.Key, StringComparer.Ordinal).ToList();
            if (ctx.Output.Json)
            {
                ctx.Output.WriteJson(entries);
            }
            else
            {
                Render(ctx.Output, entries);
            }

            if (listing.Truncated)
            {
                ctx.Output.Note($"more keys match than the {parse.GetValue(limit)} shown; narrow the prefix or raise --limit");
            }
        }));
        return command;
    }

    internal static Option<int> ListLimitOption()
    {
        var limit = new Option<int>("--limit")
        {
            Description = "Return at most this many entries",
            HelpName = "N",
            DefaultValueFactory = _ => DefaultListLimit,
        };
        CommonOptions.AddCheck(limit, n => n > 0, "--limit must be a positive number");
        return limit;
    }

    private static void Render(Output output, IReadOnlyList<MemoryEntryInfo> entries)
    {
        if (entries.Count == 0)
        {
            output.Line("No keys.");
            return;
        }

        var table = Output.NewTable("Key", "Size", "Updated", "Expires");
        foreach (var e in entries)
        {
            Output.AddRow(table, e.Key, Bytes.Format(e.ValueBytes), Output.Timestamp(e.UpdatedUtc), Output.Timestamp(e.ExpiresUtc));
        }

        output.WriteTable(table);
    }

    /// <summary>
    /// Checks the value against the peer's limit before reading it, so a huge file is refused
    /// instead of being loaded whole into memory and rejected after the upload.
    /// </summary>
    private static async Task<byte[]> ReadValueFileAsync(string peerName, IPeerGrain peer, string path, CancellationToken ct)
    {
        var length = new FileInfo(path).Length;
        var description = await PeerCall.RunAsync(peerName, peer.DescribeAsync).ConfigureAwait(false);
        if (length > description.MaxValueBytes)
        {
            throw new InvalidArgumentException(
                $"'{path}' is {Bytes.Format(length)}, more than the {Bytes.Format(description.MaxValueBytes)} a value on {peerName} may hold; use `file put`");
        }

        return await File.ReadAllBytesAsync(path, ct).ConfigureAwait(false);
    }

    private static string? TryDecode(byte[] bytes)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }
}
