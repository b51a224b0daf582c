using System.Net;
using Microsoft.Extensions.Options;

namespace P2PShare.Connecting;

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
