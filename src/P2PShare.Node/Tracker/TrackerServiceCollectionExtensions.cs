using Microsoft.Extensions.DependencyInjection;
using P2PShare.Configuration;

namespace P2PShare.Tracker;

public static class TrackerServiceCollectionExtensions
{
    /// <summary>
    /// This peer's side of the tracker: the <see cref="LoadReporter"/>, which registers the peer when
    /// the silo starts and reports its load, the <see cref="LoadView"/> its reports bring back, and its options (section <c>Tracker</c>).
    /// </summary>
    public static IServiceCollection AddP2PShareTracker(this IServiceCollection services)
    {
        services.AddOptions<TrackerOptions>().BindConfiguration(TrackerOptions.Section).ValidateAnnotated().ValidateOnStart();
        services.AddSingleton<LoadView>();
        services.AddSingleton<LoadReporter>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<LoadReporter>());
        return services;
    }
}
