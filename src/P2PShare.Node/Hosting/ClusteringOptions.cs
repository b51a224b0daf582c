using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace P2PShare.Hosting;

/// <summary>
/// How peers find each other and where cluster state lives. Section <c>Clustering</c>; the CLI
/// reads the same keys (<c>P2PSHARE__CLUSTERING__MODE</c>, <c>P2PSHARE__CLUSTERING__CONNECTIONSTRING</c>).
/// </summary>
public sealed class ClusteringOptions
{
    public const string Section = "Clustering";

    /// <summary>Orleans localhost clustering: one machine, the primary peer holds membership.</summary>
    public const string LocalMode = "local";

    /// <summary>Membership, job records and reminders in PostgreSQL: many machines, no primary.</summary>
    public const string PostgresMode = "postgres";

    public const string DefaultMode = LocalMode;

    /// <summary>The ADO.NET invariant name of Npgsql, as the Orleans ADO.NET providers know it.</summary>
    public const string NpgsqlInvariant = "Npgsql";

    /// <summary>
    /// <c>local</c> (default): Orleans localhost clustering, zero setup, one machine; job records and
    /// reminders in memory. <c>postgres</c>: membership, job records and reminders in the PostgreSQL
    /// database of <see cref="ConnectionString"/> (schema: deploy/postgres/schema.sql).
    /// </summary>
    public string Mode { get; set; } = DefaultMode;

    /// <summary>
    /// Npgsql connection string of the cluster database, required in <c>postgres</c> mode, e.g.
    /// <c>Host=10.0.0.5;Port=5432;Database=p2pshare;Username=p2pshare;Password=...</c>.
    /// </summary>
    public string? ConnectionString { get; set; }

    /// <summary>
    /// IP address this peer advertises to other peers and clients (its silo and gateway endpoints
    /// in the membership table). Peers listen on every address; this is the one others dial, so it
    /// must be reachable from the other machines. Default in <c>postgres</c> mode: the first IPv4
    /// address of an interface that is up and not loopback (loopback if there is none). Not used
    /// in <c>local</c> mode, which is loopback only.
    /// </summary>
    public string? AdvertisedAddress { get; set; }

    public bool IsPostgres => string.Equals(Mode, PostgresMode, StringComparison.OrdinalIgnoreCase);

    /// <summary>The address to advertise: <see cref="AdvertisedAddress"/>, else the host's first non-loopback IPv4.</summary>
    public IPAddress ResolveAdvertisedAddress() =>
        HostAddresses.TryParse(AdvertisedAddress, out var ip)
            ? ip
            : HostAddresses.FirstNonLoopbackIPv4() ?? IPAddress.Loopback;
}

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

/// <summary>Checks <see cref="ClusteringOptions"/> at start-up; every failure names the setting.</summary>
public sealed class ClusteringOptionsValidator : IValidateOptions<ClusteringOptions>
{
    public ValidateOptionsResult Validate(string? name, ClusteringOptions o)
    {
        var errors = new List<string>();
        var mode = o.Mode?.Trim() ?? "";
        var known = string.Equals(mode, ClusteringOptions.LocalMode, StringComparison.OrdinalIgnoreCase)
                    || string.Equals(mode, ClusteringOptions.PostgresMode, StringComparison.OrdinalIgnoreCase);
        if (!known)
        {
            errors.Add($"Clustering:Mode '{o.Mode}' is not one of: {ClusteringOptions.LocalMode}, {ClusteringOptions.PostgresMode}");
        }

        if (o.IsPostgres)
        {
            if (string.IsNullOrWhiteSpace(o.ConnectionString))
            {
                errors.Add("Clustering:ConnectionString is required in postgres mode (--db CONNSTR)");
            }
            else if (ConnectionStringProblem(o.ConnectionString) is { } problem)
            {
                errors.Add($"Clustering:ConnectionString is not a valid connection string: {problem}");
            }
        }

        if (!string.IsNullOrWhiteSpace(o.AdvertisedAddress))
        {
            if (!HostAddresses.TryParse(o.AdvertisedAddress, out var ip))
            {
                errors.Add($"Clustering:AdvertisedAddress '{o.AdvertisedAddress}' is not an IP address");
            }
            else if (ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any))
            {
                errors.Add($"Clustering:AdvertisedAddress '{o.AdvertisedAddress}' must be an address other peers can dial, not a wildcard");
            }
            else if (known && !o.IsPostgres)
            {
                errors.Add("Clustering:AdvertisedAddress (--address) only applies in postgres mode; local mode is loopback only");
            }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static string? ConnectionStringProblem(string connectionString)
    {
        try
        {
            _ = new Npgsql.NpgsqlConnectionStringBuilder(connectionString);
            return null;
        }
        catch (ArgumentException ex)
        {
            return ex.Message.ReplaceLineEndings(" ");
        }
    }
}
