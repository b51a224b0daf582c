using System.Net;

namespace P2PShare.Configuration;

/// <summary>An IP address (v4 or v6) to bind to; null passes, an empty text does not.</summary>
public sealed class IpAddressAttribute() : SettingRuleAttribute("'{0}' is not an IP address")
{
    protected override bool IsAllowed(object? value) => value is not string text || IPAddress.TryParse(text, out _);
}
