using Microsoft.Extensions.DependencyInjection;
using P2PShare.Configuration;

namespace P2PShare.Memory;

public static class MemoryServiceCollectionExtensions
{
    /// <summary>The peer's shared memory: <see cref="MemoryStore"/> and its options (section <c>Memory</c>).</summary>
    public static IServiceCollection AddP2PShareMemory(this IServiceCollection services)
    {
        services.AddOptions<MemoryOptions>().BindConfiguration(MemoryOptions.Section).ValidateAnnotated().ValidateOnStart();
        services.AddSingleton<MemoryStore>();
        return services;
    }
}
