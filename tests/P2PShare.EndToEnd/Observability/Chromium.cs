using Xunit;

namespace P2PShare.EndToEnd.Observability;

/// <summary>
/// The distribution's Chromium, which the browser tests drive through Playwright (Playwright's own
/// browser download is never used). tests/run.sh installs it with apt-get when it runs as root.
/// </summary>
public static class Chromium
{
    public const string EnvironmentVariable = "P2PSHARE_CHROMIUM";

    private static readonly string[] Candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];

    /// <summary>The browser executable, or null when none is installed.</summary>
    public static string? Path =>
        Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } configured ? configured
        : Candidates.FirstOrDefault(File.Exists);

    public static bool InCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public const string Missing =
        "chromium is not installed (looked for /usr/bin/chromium, /usr/bin/chromium-browser, $P2PSHARE_CHROMIUM): " +
        "tests/run.sh installs it with apt-get when run as root; otherwise run 'apt-get install chromium'";
}

/// <summary>
/// A fact that needs Chromium. Without it the test is reported skipped with the reason, except in CI
/// (CI=true), where a browser test that cannot run is a failure, not a pass.
/// </summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public ChromiumFactAttribute()
    {
        if (Chromium.Path is null && !Chromium.InCi) Skip = Chromium.Missing;
    }
}
