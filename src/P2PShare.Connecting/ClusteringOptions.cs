using System.ComponentModel.DataAnnotations;
using System.Net;

namespace P2PShare.Connecting;

/// <summary>
/// How peers find each other and where cluster state lives. Section <c>Clustering</c>; the CLI
/// reads the same keys (<c>P2PSHARE__CLUSTERING__MODE</c>, <c>P2PSHARE__CLUSTERING__CONNECTIONSTRING</c>).
/// </summary>
public sealed class ClusteringOptions : IValidatableObject
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

    /// <summary>
    /// The rules of this section; they depend on the mode, so they are written out here rather than
    /// as attributes on single settings (checked by <c>AnnotatedOptionsValidator</c> like every section).
    /// </summary>
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        var mode = Mode?.Trim() ?? "";
        var known = string.Equals(mode, LocalMode, StringComparison.OrdinalIgnoreCase)
                    || string.Equals(mode, PostgresMode, StringComparison.OrdinalIgnoreCase);
        if (!known)
        {
            yield return new ValidationResult($"Clustering:Mode '{Mode}' is not one of: {LocalMode}, {PostgresMode}");
        }

        if (IsPostgres)
        {
            if (string.IsNullOrWhiteSpace(ConnectionString))
            {
                yield return new ValidationResult("Clustering:ConnectionString is required in postgres mode (--db CONNSTR)");
            }
            else if (ConnectionStringProblem(ConnectionString) is { } problem)
            {
                yield return new ValidationResult($"Clustering:ConnectionString is not a valid connection string: {problem}");
            }
        }

        if (!string.IsNullOrWhiteSpace(AdvertisedAddress))
        {
            if (!HostAddresses.TryParse(AdvertisedAddress, out var ip))
            {
                yield return new ValidationResult($"Clustering:AdvertisedAddress '{AdvertisedAddress}' is not an IP address");
            }
            else if (ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any))
            {
                yield return new ValidationResult($"Clustering:AdvertisedAddress '{AdvertisedAddress}' must be an address other peers can dial, not a wildcard");
            }
            else if (known && !IsPostgres)
            {
                yield return new ValidationResult("Clustering:AdvertisedAddress (--address) only applies in postgres mode; local mode is loopback only");
            }
        }
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
