using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace P2PShare.Peer.Http;

/// <summary>
/// Starts the silo (and the hosted services registered with it) only once the HTTP host listens.
/// ASP.NET Core starts its server after every other hosted service, which would leave a joining peer
/// without <c>/healthz</c> and find a taken HTTP port only after the peer had joined the cluster. The
/// host calls <see cref="StartedAsync"/> after every <c>StartAsync</c>, the server's included.
/// </summary>
internal sealed class StartAfterHttp(IReadOnlyList<IHostedService> services) : IHostedLifecycleService
{
    /// <summary>Moves every hosted service registered so far behind the HTTP server.</summary>
    public static void Defer(IServiceCollection services)
    {
        var deferred = services.Where(d => d.ServiceType == typeof(IHostedService) && !d.IsKeyedService).ToList();
        foreach (var descriptor in deferred) services.Remove(descriptor);
        services.AddSingleton<IHostedService>(provider => new StartAfterHttp(deferred.Select(d => Create(provider, d)).ToList()));
    }

    private static IHostedService Create(IServiceProvider provider, ServiceDescriptor d) =>
        (IHostedService)(d.ImplementationInstance
            ?? d.ImplementationFactory?.Invoke(provider)
            ?? ActivatorUtilities.CreateInstance(provider, d.ImplementationType!));

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StartedAsync(CancellationToken cancellationToken)
    {
        foreach (var service in services)
        {
            if (service is IHostedLifecycleService lifecycle) await lifecycle.StartingAsync(cancellationToken).ConfigureAwait(false);
            await service.StartAsync(cancellationToken).ConfigureAwait(false);
            if (service is IHostedLifecycleService started) await started.StartedAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var service in services.Reverse())
        {
            if (service is IHostedLifecycleService lifecycle) await lifecycle.StoppingAsync(cancellationToken).ConfigureAwait(false);
            await service.StopAsync(cancellationToken).ConfigureAwait(false);
            if (service is IHostedLifecycleService stopped) await stopped.StoppedAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
