using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using P2PShare.Configuration;
using P2PShare.Peers;

namespace P2PShare.Legacy;

/// <summary>How a peer host adds the seed-protocol gateway to its silo; the engine never does.</summary>
public static class LegacyGatewayExtensions
{
    /// <summary>
    /// True when configuration asks for a seed-protocol listener (<c>Legacy:PeerPort</c> or
    /// <c>Legacy:TrackerPort</c>): the peer host adds the gateway only then.
    /// </summary>
    public static bool IsConfigured(IConfiguration configuration)
    {
        var section = configuration.GetSection(LegacyOptions.Section);
        return !string.IsNullOrEmpty(section[nameof(LegacyOptions.PeerPort)])
            || !string.IsNullOrEmpty(section[nameof(LegacyOptions.TrackerPort)]);
    }

    /// <summary>
    /// The seed-protocol gateway on this peer's silo: options from section <c>Legacy</c>, checked at
    /// start; its listeners open once the silo is active and its peer port joins the peer's load
    /// reports as <see cref="SeedProtocolEndpoint.Key"/>. Needs the peer's services
    /// (<c>AddP2PSharePeer</c>).
    /// </summary>
    public static ISiloBuilder AddP2PShareLegacyGateway(this ISiloBuilder silo)
    {
        silo.Services.AddP2PShareLegacyGateway();
        return silo;
    }

    /// <inheritdoc cref="AddP2PShareLegacyGateway(ISiloBuilder)"/>
    public static IServiceCollection AddP2PShareLegacyGateway(this IServiceCollection services)
    {
        services.AddOptions<LegacyOptions>().BindConfiguration(LegacyOptions.Section).ValidateAnnotated().ValidateOnStart();
        services.AddSingleton<SeedProtocolEndpoint>();
        services.AddSingleton<IPeerEndpointSource>(sp => sp.GetRequiredService<SeedProtocolEndpoint>());
        services.AddSingleton<LegacyGateway>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<LegacyGateway>());
        return services;
    }
}
