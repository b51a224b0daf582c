using Microsoft.Extensions.DependencyInjection;

namespace P2PShare.Telemetry;

public static class TelemetryServiceCollectionExtensions
{
    /// <summary>The peer's metrics and the gauges of its memory, disk and CPU use.</summary>
    public static IServiceCollection AddP2PShareTelemetry(this IServiceCollection services)
    {
        services.AddSingleton<P2PShareMetrics>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, UsageGauges>();
        return services;
    }
}
