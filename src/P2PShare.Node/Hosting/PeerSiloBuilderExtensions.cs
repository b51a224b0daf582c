using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Orleans.Hosting;
using P2PShare.Compute;
using P2PShare.Legacy;
using P2PShare.Files;
using P2PShare.Memory;
using P2PShare.Peers;
using P2PShare.Placement;
using P2PShare.Telemetry;
using P2PShare.Tracker;

namespace P2PShare.Hosting;

public static class PeerSiloBuilderExtensions
{
    /// <summary>
    /// Everything a silo needs to act as a P2PShare peer: the resource services, peer placement and
    /// the load reporter. Used by the peer host and by the cluster tests alike.
    /// </summary>
    public static ISiloBuilder AddP2PSharePeer(this ISiloBuilder silo, string dataDirectory)
    {
        var services = silo.Services;
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(new PeerDataDirectory(dataDirectory));
        services.AddSingleton<IValidateOptions<PeerOptions>, OptionsValidator>();
        services.AddSingleton<IValidateOptions<MemoryOptions>, OptionsValidator>();
        services.AddSingleton<IValidateOptions<DiskOptions>, OptionsValidator>();
        services.AddSingleton<IValidateOptions<TrackerOptions>, OptionsValidator>();
        services.AddOptions<MemoryOptions>().ValidateOnStart();
        services.AddOptions<DiskOptions>().ValidateOnStart();
        services.AddOptions<TrackerOptions>().ValidateOnStart();
        services.AddSingleton<IValidateOptions<ComputeOptions>, OptionsValidator>();
        services.AddOptions<ComputeOptions>().ValidateOnStart();
        services.AddSingleton<IValidateOptions<LegacyOptions>, OptionsValidator>();
        services.AddOptions<LegacyOptions>().ValidateOnStart();

        services.AddSingleton<P2PShareMetrics>();
        services.AddSingleton<PeerIdentity>();
        services.AddSingleton<MemoryStore>();
        services.AddSingleton<FileStore>();
        services.AddSingleton<ProgramCompiler>();
        services.AddSingleton<IWorkerFactory, WorkerProcessFactory>();
        services.AddSingleton<IWorkerFactory, PythonWorkerFactory>();
        services.AddSingleton(sp => new ComputeScheduler(sp.GetServices<IWorkerFactory>(),
            sp.GetRequiredService<IOptions<ComputeOptions>>(), sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<ComputeScheduler>>(),
            sp.GetRequiredService<P2PShareMetrics>()));
        services.AddSingleton<JobStore>();
        services.AddSingleton<RetainedJobs>();
        services.AddSingleton<JobService>();
        services.AddSingleton<PeerLiveness>();
        services.AddSingleton<LoadReporter>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, UniquePeerNameCheck>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<LoadReporter>());
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, UsageGauges>();
        services.AddSingleton<PeerReadiness>();
        services.AddSingleton<LegacyGateway>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<LegacyGateway>());

        silo.AddPlacementDirector<PeerPlacementStrategy, PeerPlacementDirector>();
        return silo;
    }
}
