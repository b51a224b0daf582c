namespace P2PShare.Configuration;

/// <summary>An endpoint as users type it, <c>host:port</c> (see <see cref="Endpoints.TryParse"/>); unset or blank passes.</summary>
public sealed class HostPortAttribute() : SettingRuleAttribute("'{0}' is not host:port")
{
    protected override bool IsAllowed(object? value) =>
        value is not string text || string.IsNullOrWhiteSpace(text) || Endpoints.TryParse(text, out _);
}
