using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Storage;
using P2PShare.Compute;
using P2PShare.Configuration;
using P2PShare.Connecting;
using P2PShare.Hosting;
using P2PShare.Tests.Postgres;

namespace P2PShare.Tests.Hosting;

public sealed class ClusteringOptionsTests
{
    [Theory]
    [InlineData("local", null, null, null)]
    [InlineData("LOCAL", null, null, null)]
    [InlineData("postgres", "Host=db;Database=p2pshare;Username=p2pshare;Password=x", null, null)]
    [InlineData("postgres", "Host=db", "10.0.0.7", null)]
    [InlineData("postgres", "Host=db", "fd00::7", null)]
    [InlineData("etcd", null, null, "Clustering:Mode 'etcd' is not one of: local, postgres")]
    [InlineData("postgres", null, null, "Clustering:ConnectionString is required in postgres mode (--db CONNSTR)")]
    [InlineData("postgres", "Nonsense=1", null, "Clustering:ConnectionString is not a valid connection string")]
    [InlineData("postgres", "Host=db", "1.2.3", "Clustering:AdvertisedAddress '1.2.3' is not an IP address")]
    [InlineData("postgres", "Host=db", "0.0.0.0", "must be an address other peers can dial")]
    [InlineData("local", null, "10.0.0.7", "only applies in postgres mode")]
    public void Clustering_settings_are_checked_with_a_message_naming_the_setting(string mode, string? db, string? address, string? problem)
    {
        var result = new AnnotatedOptionsValidator<ClusteringOptions>().Validate(null,
            new ClusteringOptions { Mode = mode, ConnectionString = db, AdvertisedAddress = address });

        if (problem is null)
        {
            Assert.True(result.Succeeded, result.FailureMessage);
        }
        else
        {
            Assert.Contains(problem, Assert.Single(result.Failures!));
        }
    }

    [Fact]
    public void Advertised_address_defaults_to_a_non_loopback_IPv4_when_the_host_has_one()
    {
        var chosen = new ClusteringOptions { Mode = ClusteringOptions.PostgresMode }.ResolveAdvertisedAddress();
        var expected = HostAddresses.FirstNonLoopbackIPv4() ?? System.Net.IPAddress.Loopback;
        Assert.Equal(expected, chosen);
        Assert.Equal(System.Net.IPAddress.Parse("10.1.2.3"),
            new ClusteringOptions { AdvertisedAddress = " 10.1.2.3 " }.ResolveAdvertisedAddress());
    }

    [Fact]
    public async Task Local_mode_keeps_job_records_and_reminders_in_memory_and_accepts_one_minute_reminders()
    {
        var ports = FreeTcpPorts.Pick(2);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.UseOrleans(silo =>
        {
            silo.UseP2PShareClustering(new ClusteringOptions(), ports[0], ports[1], primary: null);
            silo.Configure<SiloOptions>(o => o.SiloName = "local-mode");
        });
        using var host = builder.Build();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await host.StartAsync(timeout.Token);
        try
        {
            Assert.True(host.Services.GetRequiredService<IOptions<ReminderOptions>>().Value.MinimumReminderPeriod <= TimeSpan.FromMinutes(1));
            Assert.NotNull(host.Services.GetRequiredService<IReminderTable>());

            var storage = host.Services.GetRequiredKeyedService<IGrainStorage>(StorageNames.Jobs);
            var grain = GrainId.Create("job", "peer-1:1");
            var state = new GrainState<List<string>> { State = ["queued"] };
            await storage.WriteStateAsync("test.job", grain, state);
            var read = new GrainState<List<string>> { State = [] };
            await storage.ReadStateAsync("test.job", grain, read);
            Assert.Equal(["queued"], read.State);
        }
        finally
        {
            await host.StopAsync(timeout.Token);
        }
    }
}
