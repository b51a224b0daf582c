using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace P2PShare.Connecting;

/// <summary>The machine's own addresses, for choosing what a peer advertises.</summary>
public static class HostAddresses
{
    /// <summary>
    /// An IP address as users write it: four dotted decimals or IPv6. Stricter than
    /// <see cref="IPAddress.TryParse(string?, out IPAddress?)"/>, which reads "1.2.3" as 1.2.0.3.
    /// </summary>
    public static bool TryParse(string? text, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IPAddress? address)
    {
        address = null;
        var s = text?.Trim();
        if (string.IsNullOrEmpty(s))
        {
            return false;
        }

        if (!s.Contains(':', StringComparison.Ordinal)
            && !System.Text.RegularExpressions.Regex.IsMatch(s, @"^\d{1,3}(\.\d{1,3}){3}$"))
        {
            return false;
        }

        return IPAddress.TryParse(s, out address);
    }

    public static IPAddress? FirstNonLoopbackIPv4()
    {
        // Interfaces in the kernel's order; "Unknown" covers virtual links (veth) that do not
        // report an operational state but carry traffic.
        foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
        {
            if (nic.NetworkInterfaceType == NetworkInterfaceType.Loopback
                || nic.OperationalStatus is not (OperationalStatus.Up or OperationalStatus.Unknown))
            {
                continue;
            }

            foreach (var unicast in nic.GetIPProperties().UnicastAddresses)
            {
                var address = unicast.Address;
                if (address.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(address))
                {
                    return address;
                }
            }
        }

        return null;
    }
}
