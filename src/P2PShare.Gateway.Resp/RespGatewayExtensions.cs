using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using P2PShare.Configuration;
using P2PShare.Peers;

namespace P2PShare.Resp;

/// <summary>How a peer host adds the Redis-protocol endpoint to its silo; the engine never does.</summary>
public static class RespGatewayExtensions
{
    /// <summary>True when configuration sets <c>Resp:Port</c>: the peer host adds the endpoint only then.</summary>
    public static bool IsConfigured(IConfiguration configuration) =>
        !string.IsNullOrEmpty(configuration.GetSection(RespOptions.Section)[nameof(RespOptions.Port)]);

    /// <summary>
    /// The Redis-protocol endpoint on this peer's silo: options from section <c>Resp</c>, checked at
    /// start; the port opens once the silo is active and joins the peer's load reports as
    /// <see cref="RespEndpoint.Key"/>. Needs the peer's services (<c>AddP2PSharePeer</c>).
    /// </summary>
    public static ISiloBuilder AddP2PShareResp(this ISiloBuilder silo)
    {
        silo.Services.AddP2PShareResp();
        return silo;
    }

    /// <inheritdoc cref="AddP2PShareResp(ISiloBuilder)"/>
    public static IServiceCollection AddP2PShareResp(this IServiceCollection services)
    {
        services.AddOptions<RespOptions>().BindConfiguration(RespOptions.Section).ValidateAnnotated().ValidateOnStart();
        services.AddSingleton<RespEndpoint>();
        services.AddSingleton<IPeerEndpointSource>(sp => sp.GetRequiredService<RespEndpoint>());
        services.AddSingleton<RespGateway>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<RespGateway>());
        return services;
    }
}
