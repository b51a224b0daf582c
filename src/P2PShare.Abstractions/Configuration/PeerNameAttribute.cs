using System.Globalization;
using P2PShare.Peers;

namespace P2PShare.Configuration;

/// <summary>
/// A peer name by <see cref="PeerNames"/>' rules; unset or blank passes (pair it with <c>[Required]</c>).
/// In the message, <c>{0}</c> is the name and <c>{1}</c> what is wrong with it.
/// </summary>
public sealed class PeerNameAttribute() : SettingRuleAttribute("'{0}' {1}")
{
    protected override bool IsAllowed(object? value) =>
        value is not string name || string.IsNullOrWhiteSpace(name) || PeerNames.Problem(name) is null;

    protected override string Describe(object? value) =>
        string.Format(CultureInfo.InvariantCulture, ErrorMessageString, value, PeerNames.Problem((string)value!));
}
