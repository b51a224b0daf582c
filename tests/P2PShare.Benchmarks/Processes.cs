using System.Diagnostics;
using System.Globalization;

namespace P2PShare.Benchmarks;

internal sealed record ProcessRun(int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed, double PeakRssMiB);

/// <summary>Child processes with their wall time and peak resident memory (VmHWM from /proc, sampled until exit).</summary>
internal static class Processes
{
    public static async Task<ProcessRun> RunAsync(string file, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        double peak = 0;
        while (!process.HasExited)
        {
            // The CLI wrapper execs dotnet, so the PID is the CLI's own.
            if (PeakRssMiB(process.Id) is { } now && now > peak) peak = now;
            await Task.Delay(20);
        }

        await process.WaitForExitAsync();
        clock.Stop();
        return new ProcessRun(process.ExitCode, await stdout, await stderr, clock.Elapsed, peak);
    }

    /// <summary>The process's peak resident set (VmHWM) in MiB, or null when it is gone or unknown.</summary>
    public static double? PeakRssMiB(int? pid)
    {
        if (pid is null) return null;
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return double.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024;
            }
        }
        catch (IOException)
        {
        }

        return null;
    }

    /// <summary>Resets the peak resident set of a process (Linux: clear_refs 5); needs permission over it.</summary>
    public static void ResetPeak(int? pid)
    {
        if (pid is null) return;
        try
        {
            File.WriteAllText($"/proc/{pid}/clear_refs", "5");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}
