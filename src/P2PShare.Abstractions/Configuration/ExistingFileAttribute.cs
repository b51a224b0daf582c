namespace P2PShare.Configuration;

/// <summary>The path of a file that exists; unset or empty passes (a default is used).</summary>
public sealed class ExistingFileAttribute() : SettingRuleAttribute("'{0}' does not exist")
{
    protected override bool IsAllowed(object? value) => value is not string { Length: > 0 } path || File.Exists(path);
}
