using Spectre.Console;

namespace P2PShare.Cli;

/// <summary>
/// A byte-count progress bar on stderr, or nothing. It is drawn only for a person at a terminal:
/// in a pipe or with --json it would be noise mixed into the output.
/// </summary>
public sealed class TransferProgress(IAnsiConsole? console)
{
    public static TransferProgress For(bool json)
    {
        if (json || Console.IsErrorRedirected)
        {
            return new TransferProgress(null);
        }

        var stderr = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        return new TransferProgress(stderr.Profile.Capabilities.Interactive ? stderr : null);
    }

    /// <summary>False when nothing will be drawn, so callers can skip work done only for the bar.</summary>
    public bool IsVisible => console is not null;

    public async Task<T> RunAsync<T>(string description, long totalBytes, Func<Action<long>, Task<T>> transfer)
    {
        if (console is null)
        {
            return await transfer(static _ => { }).ConfigureAwait(false);
        }

        return await console.Progress()
            .AutoClear(true)
            .HideCompleted(false)
            .Columns(
                new TaskDescriptionColumn(),
                new ProgressBarColumn(),
                new PercentageColumn(),
                new DownloadedColumn(),
                new TransferSpeedColumn(),
                new RemainingTimeColumn())
            .StartAsync(async ctx =>
            {
                // A zero-byte file would otherwise divide by zero in the percentage.
                var task = ctx.AddTask(Markup.Escape(description), maxValue: Math.Max(totalBytes, 1));
                var result = await transfer(bytes => task.Increment(bytes)).ConfigureAwait(false);
                task.Value = task.MaxValue;
                return result;
            }).ConfigureAwait(false);
    }
}
