namespace P2PShare.Peers;

/// <summary>Rules for peer names: they are silo names, DNS-ish labels and file-system safe.</summary>
public static class PeerNames
{
    public static string? Problem(string name)
    {
        if (name.Length > 63) return "is longer than 63 characters";
        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
                return "may only contain letters, digits, '-', '_' and '.'";
        }
        return null;
    }
}
