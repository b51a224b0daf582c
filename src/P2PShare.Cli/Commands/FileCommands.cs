using System.CommandLine;
using P2PShare.Files;
using P2PShare.Peers;

namespace P2PShare.Cli.Commands;

public static class FileCommands
{
    public static Command Create(CommandRunner runner)
    {
        var peerOption = CommonOptions.NewPeerOption();
        var command = new Command("file", "Upload, download and manage files on a peer's disk") { peerOption };
        command.Subcommands.Add(Put(runner, peerOption));
        command.Subcommands.Add(Get(runner, peerOption));
        command.Subcommands.Add(List(runner, peerOption));
        command.Subcommands.Add(Stat(runner, peerOption));
        command.Subcommands.Add(Remove(runner, peerOption));
        return command;
    }

    /// <summary>
    /// Where <c>file get</c> writes: <c>-o</c> as given (into it when it is a directory), else the
    /// remote name's last segment in the current directory.
    /// </summary>
    public static string DestinationFor(string remoteName, string? output)
    {
        var leaf = Path.GetFileName(remoteName.Replace('\\', '/').TrimEnd('/'));
        if (string.IsNullOrEmpty(leaf))
        {
            throw new UsageException($"cannot derive a local file name from '{remoteName}'; pass -o LOCAL");
        }

        if (string.IsNullOrEmpty(output))
        {
            return Path.GetFullPath(leaf);
        }

        return Directory.Exists(output) ? Path.GetFullPath(Path.Combine(output, leaf)) : Path.GetFullPath(output);
    }

    private static Command Put(CommandRunner runner, Option<string> peerOption)
    {
        var local = new Argument<string>("LOCAL") { Description = "The local file to upload" };
        var name = new Option<string>("--name") { Description = "Name on the peer (default: the local file's name)", HelpName = "REMOTE" };
        var command = new Command("put", "Upload a file (streamed, verified by SHA-256)") { local, name };
        command.SetAction(async (parse, ct) =>
        {
            var path = parse.GetRequiredValue(local);
            if (!File.Exists(path))
            {
                throw new UsageException(Directory.Exists(path)
                    ? $"'{path}' is a directory; upload files one at a time"
                    : $"no such local file '{path}'");
            }

            var remote = parse.GetValue(name) is { Length: > 0 } given ? given : Path.GetFileName(Path.GetFullPath(path));
            return await runner.RunAsync(parse, ct, async ctx =>
            {
                var peerName = await ctx.PeerAsync(peerOption).ConfigureAwait(false);
                var size = new FileInfo(path).Length;
                var stored = await TransferAsync(ctx, peerName, transfer => TransferProgress.For(ctx.Output.Json).RunAsync(
                    $"put {remote}", size,
                    progress => transfer.UploadAsync(path, remote, progress, ct)))
                    .ConfigureAwait(false);
                Report(ctx.Output, stored, $"uploaded to {peerName}");
            }).ConfigureAwait(false);
        });
        return command;
    }

    private static Command Get(CommandRunner runner, Option<string> peerOption)
    {
        var remote = new Argument<string>("REMOTE") { Description = "The file's name on the peer" };
        var output = new Option<string>("--output", "-o") { Description = "Local path or directory (default: the file's name in the current directory)", HelpName = "LOCAL" };
        var command = new Command("get", "Download a file (streamed, verified by SHA-256, written atomically)") { remote, output };
        command.SetAction(async (parse, ct) =>
        {
            var name = parse.GetRequiredValue(remote);
            var destination = DestinationFor(name, parse.GetValue(output));
            if (Path.GetDirectoryName(destination) is { } dir && !Directory.Exists(dir))
            {
                throw new UsageException($"no such local directory '{dir}'");
            }

            return await runner.RunAsync(parse, ct, async ctx =>
            {
                var peerName = await ctx.PeerAsync(peerOption).ConfigureAwait(false);
                var stored = await TransferAsync(ctx, peerName, transfer => DownloadWithProgressAsync(ctx, transfer, peerName, name, destination))
                    .ConfigureAwait(false);
                Report(ctx.Output, stored, $"downloaded to {destination}");
            }).ConfigureAwait(false);
        });
        return command;
    }

    /// <summary>
    /// Runs a transfer through the peer's own gateway when it answers, so its chunks do not pass
    /// through the silo the CLI first connected to; otherwise through that one.
    /// </summary>
    private static async Task<StoredFileInfo> TransferAsync(CommandContext ctx, string peerName, Func<FileTransfer, Task<StoredFileInfo>> run)
    {
        var tuning = TransferTuning.FromEnvironment(Environment.GetEnvironmentVariable);
        await using var direct = await ctx.Cluster.ConnectToPeerGatewayAsync(peerName, ctx.Cancel).ConfigureAwait(false);
        var transfer = new FileTransfer(direct ?? ctx.Cluster, peerName, tuning);
        if (direct is null)
        {
            return await run(transfer).ConfigureAwait(false);
        }

        try
        {
            // As the runner does for the first connection: calls take no token, so a lost gateway
            // would otherwise leave them waiting for the full response timeout.
            return await run(transfer).WaitAsync(direct.ConnectionLost).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (direct.ConnectionLost.IsCancellationRequested && !ctx.Cancel.IsCancellationRequested)
        {
            throw new PeerUnavailableException(peerName, "the connection to its gateway was lost", ex);
        }
    }

    private static async Task<StoredFileInfo> DownloadWithProgressAsync(
        CommandContext ctx, FileTransfer transfer, string peerName, string name, string destination)
    {
        var progress = TransferProgress.For(ctx.Output.Json);
        // Stat first to size the bar; the download itself reads a fixed version whatever happens meanwhile.
        var size = !progress.IsVisible
            ? 0
            : (await PeerCall.RunAsync(peerName, () => ctx.Cluster.Peer(peerName).StatAsync(name)).ConfigureAwait(false)).Size;
        return await progress.RunAsync($"get {name}", size,
            p => transfer.DownloadAsync(name, destination, p, ctx.Cancel)).ConfigureAwait(false);
    }

    private static Command List(CommandRunner runner, Option<string> peerOption)
    {
        var prefix = new Argument<string>("PREFIX") { Description = "Only names starting with this", Arity = ArgumentArity.ZeroOrOne };
        var limit = MemCommands.ListLimitOption();
        var command = new Command("ls", "List stored files") { prefix, limit };
        command.Aliases.Add("list");
        command.SetAction((parse, ct) => runner.RunAsync(parse, ct, async ctx =>
        {
            var peerName = await ctx.PeerAsync(peerOption).ConfigureAwait(false);
            var listing = await PeerCall.RunAsync(peerName,
                () => ctx.Cluster.Peer(peerName).ListFilesAsync(parse.GetValue(prefix) ?? "", parse.GetValue(limit)))
                .ConfigureAwait(false);
            var files = listing.Files.IsDefault ? [] : listing.Files.OrderBy(f => f.Name, StringComparer.Ordinal).ToList();
            if (ctx.Output.Json)
            {
                ctx.Output.WriteJson(files);
            }
            else if (files.Count == 0)
            {
                ctx.Output.Line("No files.");
            }
            else
            {
                var table = Output.NewTable("Name", "Size", "Modified", "SHA-256");
                foreach (var f in files)
                {
                    Output.AddRow(table, f.Name, Bytes.Format(f.Size), Output.Timestamp(f.ModifiedUtc), f.Sha256);
                }

                ctx.Output.WriteTable(table);
            }

            if (listing.Truncated)
            {
                ctx.Output.Note($"more files match than the {parse.GetValue(limit)} shown; narrow the prefix or raise --limit");
            }
        }));
        return command;
    }

    private static Command Stat(CommandRunner runner, Option<string> peerOption)
    {
        var name = new Argument<string>("NAME") { Description = "The file's name on the peer" };
        var command = new Command("stat", "Show a stored file's size, time and SHA-256") { name };
        command.SetAction((parse, ct) => runner.RunAsync(parse, ct, async ctx =>
        {
            var file = parse.GetRequiredValue(name);
            var peerName = await ctx.PeerAsync(peerOption).ConfigureAwait(false);
            var info = await PeerCall.RunAsync(peerName, () => ctx.Cluster.Peer(peerName).StatAsync(file)).ConfigureAwait(false);
            Report(ctx.Output, info, $"on {peerName}");
        }));
        return command;
    }

    private static Command Remove(CommandRunner runner, Option<string> peerOption)
    {
        var name = new Argument<string>("NAME") { Description = "The file's name on the peer" };
        var command = new Command("rm", "Delete a stored file") { name };
        command.Aliases.Add("del");
        command.SetAction((parse, ct) => runner.RunAsync(parse, ct, async ctx =>
        {
            var file = parse.GetRequiredValue(name);
            var peerName = await ctx.PeerAsync(peerOption).ConfigureAwait(false);
            await PeerCall.RunAsync(peerName, () => ctx.Cluster.Peer(peerName).DeleteFileAsync(file)).ConfigureAwait(false);
            if (ctx.Output.Json)
            {
                ctx.Output.WriteJson(new { peer = peerName, name = file, deleted = true });
            }
            else
            {
                ctx.Output.Line($"removed {file} on {peerName}");
            }
        }));
        return command;
    }

    private static void Report(Output output, StoredFileInfo info, string where)
    {
        if (output.Json)
        {
            output.WriteJson(info);
            return;
        }

        var table = Output.NewTable(info.Name, where);
        Output.AddRow(table, "Size", $"{Bytes.Format(info.Size)} ({info.Size} bytes)");
        Output.AddRow(table, "SHA-256", info.Sha256);
        Output.AddRow(table, "Modified", Output.Timestamp(info.ModifiedUtc));
        output.WriteTable(table);
    }
}
