namespace P2PShare.Legacy;

/// <summary>Checks <see cref="LegacyOptions"/> at start-up and names the bad setting in a one-line message.</summary>
public sealed class LegacyOptionsValidator : IValidateOptions<LegacyOptions>
{
    public ValidateOptionsResult Validate(string? name, LegacyOptions o)
    {
        var errors = new List<string>();
        // Port 0 asks the OS for a free port (tests use it).
        if (o.PeerPort is < 0 or > 65535) errors.Add($"Legacy:PeerPort (--legacy-port) must be 1..65535, not {o.PeerPort}");
        if (o.TrackerPort is < 0 or > 65535) errors.Add($"Legacy:TrackerPort (--tracker-legacy-port) must be 1..65535, not {o.TrackerPort}");
        if (o.PeerPort is > 0 && o.PeerPort == o.TrackerPort) errors.Add("Legacy:PeerPort and Legacy:TrackerPort must differ");
        if (!System.Net.IPAddress.TryParse(o.BindAddress, out _)) errors.Add($"Legacy:BindAddress '{o.BindAddress}' is not an IP address");
        if (o.MaxFrameBytes < 1024) errors.Add("Legacy:MaxFrameBytes must be at least 1024");
        if (o.MaxBufferedBytes < o.MaxFrameBytes)
            errors.Add("Legacy:MaxBufferedBytes must be at least Legacy:MaxFrameBytes");
        if (o.MaxFileBytes < 0 || o.MaxFileBytes > (long)o.MaxFrameBytes * 3 / 4)
            errors.Add("Legacy:MaxFileBytes must fit a message in base64: at most 3/4 of Legacy:MaxFrameBytes");
        if (o.MaxConnections < 1) errors.Add("Legacy:MaxConnections must be at least 1");
        if (o.IdleTimeout <= TimeSpan.Zero || o.StallTimeout <= TimeSpan.Zero) errors.Add("Legacy:IdleTimeout and Legacy:StallTimeout must be positive");
        if (TaskLanguagesCheck(o.DefaultLanguage) is { } bad) errors.Add(bad);
        if (o.ExternalPeerTimeout <= TimeSpan.Zero) errors.Add("Legacy:ExternalPeerTimeout must be positive");
        return Result(errors);
    }

    private static string? TaskLanguagesCheck(string language) =>
        P2PShare.Compute.TaskLanguages.Normalize(language) is null ? $"Legacy:DefaultLanguage '{language}' is not a known task language" : null;

    private static ValidateOptionsResult Result(List<string> errors) =>
        errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
}
