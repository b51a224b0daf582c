using Microsoft.Extensions.DependencyInjection;
using P2PShare.Configuration;
using P2PShare.Telemetry;

namespace P2PShare.Compute;

public static class ComputeServiceCollectionExtensions
{
    /// <summary>
    /// The peer's shared CPU: compiler, the kernel sandbox, C# and Python worker factories, the scheduler, the job store
    /// and service, and their options (section <c>Compute</c>). Job storage and reminders come with
    /// the clustering mode.
    /// </summary>
    public static IServiceCollection AddP2PShareCompute(this IServiceCollection services)
    {
        services.AddOptions<ComputeOptions>().BindConfiguration(ComputeOptions.Section).ValidateAnnotated().ValidateOnStart();
        services.AddSingleton<ProgramCompiler>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, CompilerWarmUp>();
        services.AddSingleton<KernelSandbox>();
        services.AddSingleton<IWorkerFactory, WorkerProcessFactory>();
        services.AddSingleton<IWorkerFactory, PythonWorkerFactory>();
        services.AddSingleton(sp => new ComputeScheduler(sp.GetServices<IWorkerFactory>(),
            sp.GetRequiredService<IOptions<ComputeOptions>>(), sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<ComputeScheduler>>(),
            sp.GetRequiredService<P2PShareMetrics>()));
        services.AddSingleton<JobStore>();
        services.AddSingleton<RetainedJobs>();
        services.AddSingleton<JobService>();
        services.AddSingleton<RecentJobs>();
        services.AddSingleton<JobRunner>();
        return services;
    }
}
