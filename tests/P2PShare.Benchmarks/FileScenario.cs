using System.Globalization;

namespace P2PShare.Benchmarks;

/// <summary>
/// What the file scenario reports about memory: a peer's resident set is mostly its runtime and
/// caches, so the figure that says what a transfer costs is its peak above the resident set it
/// had, idle, just before (VmHWM after a reset, minus VmRSS before).
/// </summary>
internal static class FileScenarioMemory
{
    /// <summary>The process's resident set now (VmRSS) in MiB, or null when it is gone or unknown.</summary>
    public static double? RssMiB(int? pid)
    {
        if (pid is null) return null;
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    return double.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024;
            }
        }
        catch (IOException)
        {
        }

        return null;
    }

    /// <summary>Peak minus idle, when both are known.</summary>
    public static double? AboveIdle(double? peak, double? idle) => peak is { } p && idle is { } i ? Samples.Round(p - i) : null;
}
