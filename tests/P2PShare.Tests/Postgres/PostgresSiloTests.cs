using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Storage;
using P2PShare.Compute;
using P2PShare.Connecting;
using P2PShare.Hosting;
using P2PShare.Tests.Support;

namespace P2PShare.Tests.Postgres;

/// <summary>
/// Real silos configured the way peers are in postgres mode (<see cref="ClusteringSiloBuilderExtensions.UseP2PShareClustering"/>),
/// in this process, against our schema: they join, heartbeat, leave, are listed as gateways, and
/// their job storage and reminder table work.
/// </summary>
public sealed class PostgresSiloTests(TestDatabase db) : IClassFixture<TestDatabase>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [PostgresFact]
    public async Task Silos_join_heartbeat_and_a_stopped_silo_is_dead_and_no_longer_a_gateway()
    {
        var ports = FreeTcpPorts.Pick(4);
        await using var a = await StartSiloAsync("silo-a", ports[0], ports[1]);
        await using var b = await StartSiloAsync("silo-b", ports[2], ports[3]);

        await Eventually.TrueAsync(async () => await StatusAsync("silo-a") == 3 && await StatusAsync("silo-b") == 3,
            Patience, "both silos should be Active in the membership table");
        Assert.Equal(2, (await GatewaysAsync()).Count);

        var firstBeat = await HeartbeatAsync("silo-b");
        await Eventually.TrueAsync(async () => await HeartbeatAsync("silo-b") > firstBeat,
            Patience, "silo-b's IAmAliveTime should advance");

        await b.DisposeAsync();
        await Eventually.TrueAsync(async () => await StatusAsync("silo-b") == 6,
            Patience, "a stopped silo should be Dead in the membership table");
        Assert.Equal([ports[1]], (await GatewaysAsync()).Select(g => g.Port).ToArray());
    }

    [PostgresFact]
    public async Task Job_storage_round_trip_with_etag_conflicts_and_clear()
    {
        var ports = FreeTcpPorts.Pick(2);
        await using var silo = await StartSiloAsync("storage", ports[0], ports[1]);
        var storage = silo.Services.GetRequiredKeyedService<IGrainStorage>(StorageNames.Jobs);
        const string grainType = "p2pshare.test.job";
        var grain = GrainId.Create("job", "peer-1:0123456789abcdef");

        var fresh = new GrainState<List<string>> { State = [] };
        await storage.ReadStateAsync(grainType, grain, fresh);
        Assert.False(fresh.RecordExists);
        Assert.Null(fresh.ETag);

        var first = new GrainState<List<string>> { State = ["queued"] };
        await storage.WriteStateAsync(grainType, grain, first);
        Assert.True(first.RecordExists);
        var firstTag = first.ETag;
        Assert.NotNull(firstTag);

        // A second activation that also saw no record must not overwrite the first one's.
        var rival = new GrainState<List<string>> { State = ["rival"] };
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync(grainType, grain, rival));

        first.State.Add("running");
        await storage.WriteStateAsync(grainType, grain, first);
        Assert.NotEqual(firstTag, first.ETag);

        var stale = new GrainState<List<string>> { State = ["stale"], ETag = firstTag, RecordExists = true };
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync(grainType, grain, stale));
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.ClearStateAsync(grainType, grain, stale));

        var read = new GrainState<List<string>> { State = [] };
        await storage.ReadStateAsync(grainType, grain, read);
        Assert.True(read.RecordExists);
        Assert.Equal(first.ETag, read.ETag);
        Assert.Equal(["queued", "running"], read.State);

        // Another grain's record with the same type is separate.
        var other = GrainId.Create("job", "peer-1:0123456789abcdee");
        var otherState = new GrainState<List<string>> { State = ["other"] };
        await storage.WriteStateAsync(grainType, other, otherState);

        await storage.ClearStateAsync(grainType, grain, read);
        Assert.False(read.RecordExists);
        var cleared = new GrainState<List<string>> { State = [] };
        await storage.ReadStateAsync(grainType, grain, cleared);
        Assert.False(cleared.RecordExists);
        Assert.Empty(cleared.State);
        // Cleared records are deleted, not kept as empty rows.
        Assert.Equal(1L, await db.ScalarAsync<long>("SELECT count(*) FROM p2pshare_grain_state"));

        await storage.WriteStateAsync(grainType, grain, new GrainState<List<string>> { State = ["again"] });
        var again = new GrainState<List<string>> { State = [] };
        await storage.ReadStateAsync(grainType, grain, again);
        Assert.Equal(["again"], again.State);
    }

    [PostgresFact]
    public async Task Reminder_table_round_trip_by_grain_by_name_and_by_hash_range()
    {
        var ports = FreeTcpPorts.Pick(2);
        await using var silo = await StartSiloAsync("reminders", ports[0], ports[1]);
        var table = silo.Services.GetRequiredService<IReminderTable>();
        var grains = Enumerable.Range(0, 8).Select(i => GrainId.Create("job", $"peer-1:{i:x16}")).ToArray();
        var start = new DateTime(2026, 3, 4, 5, 6, 7, 891, DateTimeKind.Utc);

        var tags = new Dictionary<GrainId, string>();
        foreach (var grain in grains)
        {
            tags[grain] = (await table.UpsertRow(new ReminderEntry
            {
                GrainId = grain,
                ReminderName = "supervise",
                StartAt = start,
                Period = TimeSpan.FromMinutes(1),
            }))!;
        }

        var one = await table.ReadRow(grains[0], "supervise");
        Assert.NotNull(one);
        Assert.Equal(grains[0], one.GrainId);
        Assert.Equal(start, one.StartAt);
        Assert.Equal(TimeSpan.FromMinutes(1), one.Period);
        Assert.Equal(tags[grains[0]], one.ETag);
        Assert.Null(await table.ReadRow(grains[0], "nope"));
        Assert.Single((await table.ReadRows(grains[0])).Reminders);

        // Upsert replaces and changes the ETag.
        var newTag = await table.UpsertRow(new ReminderEntry
        {
            GrainId = grains[0],
            ReminderName = "supervise",
            StartAt = start.AddMinutes(5),
            Period = TimeSpan.FromMinutes(2),
        });
        Assert.NotEqual(tags[grains[0]], newTag);
        Assert.Equal(TimeSpan.FromMinutes(2), (await table.ReadRow(grains[0], "supervise"))!.Period);

        // Ranges of the hash ring: (begin, end] when begin < end, wrapping otherwise; split anywhere,
        // the two halves hold every reminder exactly once.
        var hashes = grains.Select(g => g.GetUniformHashCode()).Order().ToArray();
        var split = hashes[3];
        var low = (await table.ReadRows(hashes[0] - 1, split)).Reminders;
        var rest = (await table.ReadRows(split, hashes[0] - 1)).Reminders;
        Assert.Equal(grains.Length, low.Count + rest.Count);
        Assert.Equal(grains.Order().ToArray(), low.Concat(rest).Select(r => r.GrainId).Order().ToArray());
        Assert.Equal(grains.Length, (await table.ReadRows(split, split)).Reminders.Count);

        Assert.False(await table.RemoveRow(grains[0], "supervise", tags[grains[0]]));
        Assert.True(await table.RemoveRow(grains[0], "supervise", newTag!));
        Assert.Null(await table.ReadRow(grains[0], "supervise"));

        await table.TestOnlyClearTable();
        Assert.Empty((await table.ReadRows(0, 0)).Reminders);
    }

    private async Task<SiloHost> StartSiloAsync(string name, int siloPort, int gatewayPort)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.UseOrleans(silo =>
        {
            var clustering = new ClusteringOptions
            {
                Mode = ClusteringOptions.PostgresMode,
                ConnectionString = db.ConnectionString,
                AdvertisedAddress = "127.0.0.1",
            };
            silo.UseP2PShareClustering(clustering, siloPort, gatewayPort, primary: null);
            silo.Configure<SiloOptions>(o => o.SiloName = name);
            silo.Configure<ClusterMembershipOptions>(MembershipTuning.Apply);
            silo.Configure<ClusterMembershipOptions>(o => o.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(1));
        });
        var host = builder.Build();
        using var timeout = new CancellationTokenSource(Patience);
        await host.StartAsync(timeout.Token);
        return new SiloHost(host);
    }

    /// <summary>A started silo host that stops gracefully when disposed (at most once).</summary>
    private sealed class SiloHost(IHost host) : IAsyncDisposable
    {
        private int _disposed;

        public IServiceProvider Services => host.Services;

        public async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
            {
                return;
            }

            using var timeout = new CancellationTokenSource(Patience);
            try
            {
                await host.StopAsync(timeout.Token);
            }
            finally
            {
                host.Dispose();
            }
        }
    }

    private Task<int?> StatusAsync(string silo) =>
        db.ScalarAsync<int?>($"SELECT status FROM p2pshare_membership WHERE silo_name = '{silo}' ORDER BY generation DESC LIMIT 1");

    private async Task<DateTime> HeartbeatAsync(string silo) =>
        (await db.ScalarAsync<DateTime?>($"SELECT i_am_alive_time FROM p2pshare_membership WHERE silo_name = '{silo}' ORDER BY generation DESC LIMIT 1"))
        ?? DateTime.MinValue;

    private async Task<List<Uri>> GatewaysAsync()
    {
        var provider = new Orleans.Runtime.Membership.AdoNetGatewayListProvider(
            Microsoft.Extensions.Logging.Abstractions.NullLogger<Orleans.Runtime.Membership.AdoNetGatewayListProvider>.Instance,
            new ServiceCollection().BuildServiceProvider(),
            Microsoft.Extensions.Options.Options.Create(new AdoNetClusteringClientOptions { Invariant = ClusteringOptions.NpgsqlInvariant, ConnectionString = db.ConnectionString }),
            Microsoft.Extensions.Options.Options.Create(new GatewayOptions()),
            Microsoft.Extensions.Options.Options.Create(new ClusterOptions { ClusterId = ClusterIds.ClusterId, ServiceId = ClusterIds.ServiceId }));
        await provider.InitializeGatewayListProviderAsync(CancellationToken.None);
        return (await provider.GetGatewaysAsync(CancellationToken.None)).ToList();
    }
}
