namespace P2PShare.Configuration;

/// <summary>A TCP port, 1..65535; null (no port) passes.</summary>
public sealed class PortAttribute() : SettingRuleAttribute("must be 1..65535, not {0}")
{
    /// <summary>Also accept 0, which asks the OS for a free port (tests use it).</summary>
    public bool AllowZero { get; set; }

    protected override bool IsAllowed(object? value) =>
        value is not int port || port is >= 1 and <= 65535 || (AllowZero && port == 0);
}
