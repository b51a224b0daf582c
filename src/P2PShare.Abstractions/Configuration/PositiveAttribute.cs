namespace P2PShare.Configuration;

/// <summary>A count, size or duration above zero; null passes.</summary>
public sealed class PositiveAttribute() : SettingRuleAttribute("must be positive")
{
    protected override bool IsAllowed(object? value) => value switch
    {
        null => true,
        int n => n > 0,
        long n => n > 0,
        double n => n > 0,
        TimeSpan t => t > TimeSpan.Zero,
        _ => throw new InvalidOperationException($"[Positive] does not apply to {value.GetType().Name}"),
    };
}
