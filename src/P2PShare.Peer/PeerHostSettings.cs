using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Configuration;
using P2PShare.Configuration;
using P2PShare.Connecting;
using P2PShare.Hosting;
using P2PShare.Peer.Http;
using P2PShare.Peers;

namespace P2PShare.Peer;

/// <summary>
/// What the host must know before it is built: the peer's name and ports, how it finds the cluster,
/// and its HTTP port. Checked together, because some rules span them.
/// </summary>
internal sealed class PeerHostSettings(PeerOptions peer, ClusteringOptions clustering, HttpOptions http) : IValidatableObject
{
    public PeerOptions Peer { get; } = peer;

    public ClusteringOptions Clustering { get; } = clustering;

    public HttpOptions Http { get; } = http;

    /// <exception cref="InvalidOperationException">A value cannot be converted to its setting's type.</exception>
    public static PeerHostSettings Read(IConfiguration configuration) => new(
        configuration.GetSection(PeerOptions.Section).Get<PeerOptions>() ?? new PeerOptions(),
        PeerHost.ReadClustering(configuration),
        PeerHost.ReadHttp(configuration));

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        var problems = AnnotatedOptionsValidator<PeerOptions>.Problems(Peer)
            .Concat(AnnotatedOptionsValidator<ClusteringOptions>.Problems(Clustering))
            .Concat(AnnotatedOptionsValidator<HttpOptions>.Problems(Http));
        foreach (var problem in problems)
            yield return new ValidationResult(problem);

        if (Http.Port is > 0 && (Http.Port == Peer.SiloPort || Http.Port == Peer.GatewayPort))
            yield return new ValidationResult($"Http:Port {Http.Port} is already the silo or gateway port");
        if (Clustering.IsPostgres && !string.IsNullOrWhiteSpace(Peer.Primary))
        {
            yield return new ValidationResult(
                "Peer:Primary (--primary) only applies in local mode; in postgres mode peers find each other in the database");
        }
    }
}
