using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Serialization;
using Orleans.Storage;
using P2PShare.Compute;
using P2PShare.Connecting;

namespace P2PShare.Hosting;

public static class ClusteringSiloBuilderExtensions
{
    /// <summary>The job supervisor registers one-minute reminders; Orleans must accept that period.</summary>
    public static readonly TimeSpan MaxMinimumReminderPeriod = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Membership, endpoints, job storage (<see cref="StorageNames.Jobs"/>) and reminders for the
    /// chosen clustering mode. <c>local</c>: Orleans localhost clustering with the primary peer's
    /// silo endpoint (null on the primary), in-memory job storage and reminders. <c>postgres</c>:
    /// ADO.NET clustering, grain storage and reminders on PostgreSQL; the silo listens on every
    /// address and advertises <see cref="ClusteringOptions.ResolveAdvertisedAddress"/>.
    /// </summary>
    public static ISiloBuilder UseP2PShareClustering(
        this ISiloBuilder silo, ClusteringOptions clustering, int siloPort, int gatewayPort, IPEndPoint? primary)
    {
        if (clustering.IsPostgres)
        {
            var connectionString = clustering.ConnectionString
                ?? throw new ArgumentException("postgres clustering needs a connection string", nameof(clustering));
            silo.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = ClusterIds.ClusterId;
                o.ServiceId = ClusterIds.ServiceId;
            });
            silo.ConfigureEndpoints(clustering.ResolveAdvertisedAddress(), siloPort, gatewayPort, listenOnAnyHostAddress: true);
            silo.UseAdoNetClustering(o =>
            {
                o.Invariant = ClusteringOptions.NpgsqlInvariant;
                o.ConnectionString = connectionString;
            });
            silo.AddP2PShareJobStorage(connectionString);
        }
        else
        {
            silo.UseLocalhostClustering(siloPort, gatewayPort, primary, ClusterIds.ServiceId, ClusterIds.ClusterId);
            silo.AddP2PShareJobStorage(null);
        }

        silo.Services.PostConfigure<ReminderOptions>(o =>
        {
            if (o.MinimumReminderPeriod > MaxMinimumReminderPeriod)
            {
                o.MinimumReminderPeriod = MaxMinimumReminderPeriod;
            }
        });
        return silo;
    }

    /// <summary>
    /// Job records (<see cref="StorageNames.Jobs"/>) and reminders: in PostgreSQL when
    /// <paramref name="postgresConnectionString"/> is given, else in memory. Job state is written with
    /// Orleans' own serializer in both, so any type that can cross a grain call ([GenerateSerializer],
    /// [Id]) can be stored, with its version tolerance, instead of Orleans' default JSON with .NET
    /// type names. In PostgreSQL, <see cref="StoredJobSweep"/> expires the records no silo tracks.
    /// </summary>
    public static ISiloBuilder AddP2PShareJobStorage(this ISiloBuilder silo, string? postgresConnectionString)
    {
        if (postgresConnectionString is null)
        {
            silo.AddMemoryGrainStorage(StorageNames.Jobs, options => options.Configure<Serializer>(
                (o, serializer) => o.GrainStorageSerializer = new OrleansGrainStorageSerializer(serializer)));
            silo.UseInMemoryReminderService();
            return silo;
        }

        silo.AddAdoNetGrainStorage(StorageNames.Jobs, options => options.Configure<Serializer>((o, serializer) =>
        {
            o.Invariant = ClusteringOptions.NpgsqlInvariant;
            o.ConnectionString = postgresConnectionString;
            o.GrainStorageSerializer = new OrleansGrainStorageSerializer(serializer);
            // Cleared job records are deleted, not kept as empty rows forever.
            o.DeleteStateOnClear = true;
        }));
        // Records whose supervising silo is gone are tracked by no silo's RetainedJobs: swept from storage.
        silo.Services.AddSingleton(sp => ActivatorUtilities.CreateInstance<StoredJobSweep>(sp, postgresConnectionString));
        silo.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<StoredJobSweep>());
        // Finished fast-path jobs reach the same storage in batches, so they outlive their origin too.
        silo.Services.AddSingleton<FinishedJobWriter>();
        silo.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<FinishedJobWriter>());
        silo.UseAdoNetReminderService(o =>
        {
            o.Invariant = ClusteringOptions.NpgsqlInvariant;
            o.ConnectionString = postgresConnectionString;
        });
        return silo;
    }
}
