using Microsoft.Extensions.DependencyInjection;
using P2PShare.Configuration;

namespace P2PShare.Files;

public static class FilesServiceCollectionExtensions
{
    /// <summary>
    /// The peer's shared disk: <see cref="FileStore"/> in <paramref name="dataDirectory"/> and its
    /// options (section <c>Disk</c>).
    /// </summary>
    public static IServiceCollection AddP2PShareFiles(this IServiceCollection services, string dataDirectory)
    {
        services.AddOptions<DiskOptions>().BindConfiguration(DiskOptions.Section).ValidateAnnotated().ValidateOnStart();
        services.AddSingleton(new PeerDataDirectory(dataDirectory));
        services.AddSingleton<FileStore>();
        return services;
    }
}
