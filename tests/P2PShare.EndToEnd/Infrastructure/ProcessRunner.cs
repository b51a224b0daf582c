using System.Diagnostics;
using System.Text;

namespace P2PShare.EndToEnd.Infrastructure;

/// <summary>What a finished process left behind.</summary>
public sealed record ProcessResult(string Command, int ExitCode, byte[] StdoutBytes, string Stderr)
{
    public string Stdout => Encoding.UTF8.GetString(StdoutBytes);

    /// <summary>The stderr lines, without the trailing newline's empty line.</summary>
    public string[] StderrLines => Stderr.Length == 0 ? [] : Stderr.TrimEnd('\n').Split('\n');

    public override string ToString() =>
        $"`{Command}` exited {ExitCode}\n--- stdout ---\n{Truncate(Stdout)}\n--- stderr ---\n{Truncate(Stderr)}";

    private static string Truncate(string text) => text.Length <= 4000 ? text : text[..4000] + "\n[...]";
}

/// <summary>Runs a program to completion with a deadline; a process that overstays is killed with its children.</summary>
public static class ProcessRunner
{
    public static async Task<ProcessResult> RunAsync(
        string fileName,
        IEnumerable<string> arguments,
        TimeSpan timeout,
        IReadOnlyDictionary<string, string?>? environment = null,
        byte[]? stdin = null)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                startInfo.Environment.Remove(name);
            }
            else
            {
                startInfo.Environment[name] = value;
            }
        }

        var command = string.Join(' ', startInfo.ArgumentList.Prepend(fileName));
        using var process = Process.Start(startInfo) ?? throw new InvalidOperationException($"could not start {command}");

        var stdout = new MemoryStream();
        var stdoutCopy = process.StandardOutput.BaseStream.CopyToAsync(stdout);
        var stderrRead = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await process.StandardInput.BaseStream.WriteAsync(stdin);
        }

        process.StandardInput.Close();

        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
            await Task.WhenAll(stdoutCopy, stderrRead).WaitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // Exited already; a child of it still held the output pipes.
            }

            var partial = new ProcessResult(command, -1, stdout.ToArray(), stderrRead.IsCompleted ? await stderrRead : "");
            throw new TimeoutException($"timed out after {timeout.TotalSeconds:0}s: {partial}");
        }

        return new ProcessResult(command, process.ExitCode, stdout.ToArray(), await stderrRead);
    }
}
