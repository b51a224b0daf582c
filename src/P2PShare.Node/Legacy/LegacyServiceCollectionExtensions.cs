using Microsoft.Extensions.DependencyInjection;

namespace P2PShare.Legacy;

public static class LegacyServiceCollectionExtensions
{
    /// <summary>The seed-protocol gateway (off unless a port is set) and its options (section <c>Legacy</c>).</summary>
    public static IServiceCollection AddP2PShareLegacy(this IServiceCollection services)
    {
        services.AddSingleton<IValidateOptions<LegacyOptions>, LegacyOptionsValidator>();
        services.AddOptions<LegacyOptions>().BindConfiguration(LegacyOptions.Section).ValidateOnStart();
        services.AddSingleton<LegacyGateway>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<LegacyGateway>());
        return services;
    }
}
