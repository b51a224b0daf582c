using System.Globalization;

namespace P2PShare.Configuration;

/// <summary>A duration of at least <paramref name="minimum"/> (written as in appsettings.json, e.g. <c>00:00:00.100</c>).</summary>
public sealed class TimeSpanAtLeastAttribute(string minimum) : SettingRuleAttribute("must be at least " + minimum)
{
    public TimeSpan Minimum { get; } = TimeSpan.Parse(minimum, CultureInfo.InvariantCulture);

    protected override bool IsAllowed(object? value) => value is not TimeSpan t || t >= Minimum;
}
