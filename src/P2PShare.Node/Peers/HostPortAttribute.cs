using P2PShare.Configuration;
using P2PShare.Connecting;

namespace P2PShare.Peers;

/// <summary>
/// An endpoint as users type it, <c>host:port</c>, read as a peer's primary always was (a bare IPv6
/// address before the last colon is allowed; see <see cref="HostPort.TryParse"/>); unset or blank passes.
/// </summary>
public sealed class HostPortAttribute() : SettingRuleAttribute("'{0}' is not host:port")
{
    protected override bool IsAllowed(object? value) =>
        value is not string text || string.IsNullOrWhiteSpace(text) || HostPort.TryParse(text, out _, allowBareIPv6: true);
}
