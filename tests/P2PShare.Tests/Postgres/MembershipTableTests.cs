using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Runtime.Membership;
using Orleans.Runtime.MembershipService;
using P2PShare.Connecting;

namespace P2PShare.Tests.Postgres;

/// <summary>
/// The real Orleans ADO.NET membership table and gateway list provider against our schema,
/// driven step by step: the version protocol that serialises membership changes, heartbeats,
/// gateway listing and clean-up.
/// </summary>
public sealed class MembershipTableTests(TestDatabase db) : IClassFixture<TestDatabase>
{
    private static readonly DateTime Start = new(2026, 1, 2, 3, 4, 5, 678, DateTimeKind.Utc);

    [PostgresFact]
    public async Task Membership_changes_need_the_current_table_version()
    {
        var table = await OpenTableAsync("versions");
        var empty = await table.ReadAllAsync(CancellationToken.None);
        Assert.Empty(empty.Members);
        Assert.Equal(0, empty.Version.Version);

        var a = Entry(1, "peer-a", SiloStatus.Active);
        Assert.True(await table.InsertRowAsync(a, empty.Version.Next(), CancellationToken.None));
        // A second writer that read the same version loses.
        Assert.False(await table.InsertRowAsync(Entry(2, "peer-b", SiloStatus.Active), empty.Version.Next(), CancellationToken.None));
        // The same silo twice never.
        var afterA = await table.ReadAllAsync(CancellationToken.None);
        Assert.False(await table.InsertRowAsync(a, afterA.Version.Next(), CancellationToken.None));

        var read = Assert.Single(afterA.Members).Item1;
        Assert.Equal(1, afterA.Version.Version);
        Assert.Equal(a.SiloAddress, read.SiloAddress);
        Assert.Equal("peer-a", read.SiloName);
        Assert.Equal(a.HostName, read.HostName);
        Assert.Equal(SiloStatus.Active, read.Status);
        Assert.Equal(a.ProxyPort, read.ProxyPort);
        Assert.Equal(Start, read.StartTime);

        var suspicion = new List<Tuple<SiloAddress, DateTime>> { Tuple.Create(Silo(9), Start.AddSeconds(3)) };
        var dead = Entry(1, "peer-a", SiloStatus.Dead);
        dead.SuspectTimes = suspicion;
        // The provider hands out the table version as every row's ETag; a stale one is refused.
        var etag = Assert.Single(afterA.Members).Item2;
        Assert.Equal(afterA.Version.VersionEtag, etag);
        Assert.False(await table.UpdateRowAsync(dead, empty.Version.VersionEtag, empty.Version.Next(), CancellationToken.None));
        await TestDatabase.ExecuteAsync(db.ConnectionString,
            "UPDATE p2pshare_membership_version SET version = version + 1 WHERE cluster_id = 'versions'");
        Assert.False(await table.UpdateRowAsync(dead, etag, afterA.Version.Next(), CancellationToken.None));
        await TestDatabase.ExecuteAsync(db.ConnectionString,
            "UPDATE p2pshare_membership_version SET version = version - 1 WHERE cluster_id = 'versions'");
        Assert.True(await table.UpdateRowAsync(dead, etag, afterA.Version.Next(), CancellationToken.None));

        var row = await table.ReadRowAsync(a.SiloAddress, CancellationToken.None);
        Assert.Equal(2, row.Version.Version);
        var updated = Assert.Single(row.Members).Item1;
        Assert.Equal(SiloStatus.Dead, updated.Status);
        var vote = Assert.Single(updated.SuspectTimes!);
        Assert.Equal(Silo(9), vote.Item1);
    }

    [PostgresFact]
    public async Task Concurrent_joins_that_read_the_same_version_admit_exactly_one()
    {
        var table = await OpenTableAsync("race");
        var version = (await table.ReadAllAsync(CancellationToken.None)).Version.Next();

        var results = await Task.WhenAll(Enumerable.Range(1, 8).Select(n =>
            Task.Run(() => table.InsertRowAsync(Entry(n, "racer-" + n, SiloStatus.Joining), version, CancellationToken.None))));

        Assert.Single(results, won => won);
        var after = await table.ReadAllAsync(CancellationToken.None);
        Assert.Single(after.Members);
        Assert.Equal(1, after.Version.Version);
    }

    [PostgresFact]
    public async Task Heartbeat_moves_IAmAliveTime_without_a_new_table_version()
    {
        var table = await OpenTableAsync("heartbeat");
        var entry = Entry(1, "peer-a", SiloStatus.Active);
        Assert.True(await table.InsertRowAsync(entry, (await table.ReadAllAsync(CancellationToken.None)).Version.Next(), CancellationToken.None));

        entry.IAmAliveTime = Start.AddMinutes(1);
        await table.UpdateIAmAliveAsync(entry, CancellationToken.None);

        var row = await table.ReadRowAsync(entry.SiloAddress, CancellationToken.None);
        Assert.Equal(1, row.Version.Version);
        Assert.Equal(Start.AddMinutes(1), Assert.Single(row.Members).Item1.IAmAliveTime);
    }

    [PostgresFact]
    public async Task Gateways_are_the_live_silos_that_have_one_and_cleanup_removes_old_dead_silos()
    {
        const string cluster = "gateways";
        var table = await OpenTableAsync(cluster);
        var live = Entry(1, "live", SiloStatus.Active);
        var dead = Entry(2, "dead", SiloStatus.Dead);
        var joining = Entry(3, "joining", SiloStatus.Joining);
        var noGateway = Entry(4, "no-gateway", SiloStatus.Active);
        noGateway.ProxyPort = 0;
        foreach (var e in new[] { live, dead, joining, noGateway })
        {
            Assert.True(await table.InsertRowAsync(e, (await table.ReadAllAsync(CancellationToken.None)).Version.Next(), CancellationToken.None));
        }

        var gateways = new AdoNetGatewayListProvider(
            NullLogger<AdoNetGatewayListProvider>.Instance,
            new ServiceCollection().BuildServiceProvider(),
            Options.Create(new AdoNetClusteringClientOptions { Invariant = ClusteringOptions.NpgsqlInvariant, ConnectionString = db.ConnectionString }),
            Options.Create(new GatewayOptions()),
            Options.Create(new ClusterOptions { ClusterId = cluster, ServiceId = ClusterIds.ServiceId }));
        await gateways.InitializeGatewayListProviderAsync(CancellationToken.None);
        var listed = Assert.Single(await gateways.GetGatewaysAsync(CancellationToken.None));
        Assert.Equal(live.SiloAddress.Endpoint.Address.ToString(), listed.Host);
        Assert.Equal(live.ProxyPort, listed.Port);

        await table.CleanupDefunctSiloEntriesAsync(Start.AddHours(1), CancellationToken.None);
        var left = (await table.ReadAllAsync(CancellationToken.None)).Members.Select(m => m.Item1.SiloName).Order().ToArray();
        Assert.Equal(["joining", "live", "no-gateway"], left);

        await table.DeleteMembershipTableEntriesAsync(cluster, CancellationToken.None);
        Assert.Equal(0L, await db.ScalarAsync<long>($"SELECT count(*) FROM p2pshare_membership WHERE cluster_id = '{cluster}'"));
        Assert.Equal(0L, await db.ScalarAsync<long>($"SELECT count(*) FROM p2pshare_membership_version WHERE cluster_id = '{cluster}'"));
    }

    private async Task<AdoNetClusteringTable> OpenTableAsync(string clusterId)
    {
        var table = new AdoNetClusteringTable(
            new ServiceCollection().BuildServiceProvider(),
            Options.Create(new ClusterOptions { ClusterId = clusterId, ServiceId = ClusterIds.ServiceId }),
            Options.Create(new AdoNetClusteringSiloOptions { Invariant = ClusteringOptions.NpgsqlInvariant, ConnectionString = db.ConnectionString }),
            NullLogger<AdoNetClusteringTable>.Instance);
        await table.InitializeMembershipTableAsync(tryInitTableVersion: true, CancellationToken.None);
        // A second silo initialising finds the version row and leaves it alone.
        await table.InitializeMembershipTableAsync(tryInitTableVersion: true, CancellationToken.None);
        return table;
    }

    private static SiloAddress Silo(int n) => SiloAddress.New(new IPEndPoint(IPAddress.Parse("10.0.0." + n), 11110 + n), 500 + n);

    private static MembershipEntry Entry(int n, string name, SiloStatus status) => new()
    {
        SiloAddress = Silo(n),
        SiloName = name,
        HostName = "host-" + n,
        Status = status,
        ProxyPort = 30000 + n,
        StartTime = Start,
        IAmAliveTime = Start,
    };
}
