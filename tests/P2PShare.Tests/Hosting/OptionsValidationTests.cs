using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using P2PShare.Compute;
using P2PShare.Configuration;
using P2PShare.Connecting;
using P2PShare.Files;
using P2PShare.Legacy;
using P2PShare.Memory;
using P2PShare.Peers;
using P2PShare.Tracker;

namespace P2PShare.Tests.Hosting;

/// <summary>
/// Each feature's options are checked by their annotations at start, and a bad setting is named in
/// the one-line message users and scripts already know.
/// </summary>
public sealed class OptionsValidationTests
{
    [Theory]
    [InlineData("Memory:QuotaBytes=0", "Memory:QuotaBytes must be positive")]
    [InlineData("Memory:MaxKeyBytes=65537", "Memory:MaxKeyBytes must be 1..65536")]
    [InlineData("Memory:MaxValueBytes=0", "Memory:MaxValueBytes must be positive")]
    [InlineData("Memory:MaxValueBytes=67108865", "Memory:MaxValueBytes must be at most 64 MiB (one message)")]
    [InlineData("Memory:ExpirySweepInterval=00:00:00", "Memory:ExpirySweepInterval must be positive")]
    [InlineData("Disk:QuotaBytes=-1", "Disk:QuotaBytes must be positive")]
    [InlineData("Disk:MaxFileBytes=0", "Disk:MaxFileBytes must be positive")]
    [InlineData("Disk:ChunkBytes=4095", "Disk:ChunkBytes must be 4096..16777216")]
    [InlineData("Disk:SessionIdleTimeout=-00:00:01", "Disk:SessionIdleTimeout must be positive")]
    [InlineData("Tracker:ReportInterval=00:00:00.099;Tracker:MinReportGap=00:00:00", "Tracker:ReportInterval must be at least 100 ms")]
    [InlineData("Tracker:MinReportGap=00:00:03", "Tracker:MinReportGap must be between 0 and Tracker:ReportInterval")]
    [InlineData("Tracker:MissedReportsLimit=0", "Tracker:MissedReportsLimit must be at least 1")]
    [InlineData("Compute:Slots=0", "Compute:Slots must be 1..1024")]
    [InlineData("Compute:Quantum=00:00:00.009", "Compute:Quantum must be at least 10 ms")]
    [InlineData("Compute:Slots=9;Compute:MaxLiveWorkers=8;Compute:WarmWorkers=0", "Compute:MaxLiveWorkers must be at least Compute:Slots")]
    [InlineData("Compute:WarmWorkers=-1", "Compute:WarmWorkers must be 0..Compute:MaxLiveWorkers")]
    [InlineData("Compute:RecycleAfterPrograms=0", "Compute:RecycleAfterPrograms must be at least 1")]
    [InlineData("Compute:IdleWorkerTimeout=00:00:00.099", "Compute:IdleWorkerTimeout must be at least 100 ms")]
    [InlineData("Compute:DefaultTimeout=02:00:00", "Compute:DefaultTimeout must be positive and at most Compute:MaxTimeout")]
    [InlineData("Compute:WorkerHeapLimitBytes=16777215", "Compute:WorkerHeapLimitBytes must be at least 16 MiB")]
    [InlineData("Compute:MaxResultBytes=1023", "Compute:MaxResultBytes must be at least 1024")]
    [InlineData("Compute:MaxOutputBytes=-1", "Compute:MaxOutputBytes cannot be negative")]
    [InlineData("Compute:JobRetention=00:00:00", "Compute:JobRetention must be positive")]
    [InlineData("Compute:MaxRetries=11", "Compute:MaxRetries must be 0..10")]
    [InlineData("Compute:WorkerPath=/no/such/p2pshare-worker.dll", "Compute:WorkerPath '/no/such/p2pshare-worker.dll' does not exist")]
    [InlineData("Compute:PythonWarmWorkers=-1", "Compute:PythonWarmWorkers must be 0..Compute:MaxLiveWorkers")]
    [InlineData("Peer:Name=", "Peer:Name is required (--name NAME)")]
    [InlineData("Peer:Name=peer 1", "Peer:Name 'peer 1' may only contain letters, digits, '-', '_' and '.'")]
    [InlineData("Peer:Name=a123456789b123456789c123456789d123456789e123456789f123456789g123",
        "Peer:Name 'a123456789b123456789c123456789d123456789e123456789f123456789g123' is longer than 63 characters")]
    [InlineData("Peer:SiloPort=0", "Peer:SiloPort must be 1..65535, not 0")]
    [InlineData("Peer:GatewayPort=70000", "Peer:GatewayPort must be 1..65535, not 70000")]
    [InlineData("Peer:SiloPort=30000", "Peer:SiloPort and Peer:GatewayPort must differ")]
    [InlineData("Peer:Primary=peer-1", "Peer:Primary 'peer-1' is not host:port")]
    [InlineData("Compute:MaxRetainedResultBytes=1024", "Compute:MaxRetainedResultBytes must be at least Compute:MaxResultBytes (one result must fit)")]
    [InlineData("Compute:WarmCompilers=3", "Compute:WarmCompilers must be 0..Compute:CompilerProcesses")]
    [InlineData("Compute:Isolation=7", "Compute:Isolation must be kernel or none")]
    [InlineData("Compute:BubblewrapPath=", "Compute:BubblewrapPath must name the bwrap executable")]
    [InlineData("Compute:SandboxUidBase=999", "Compute:SandboxUidBase must be at least 1000 and the range end below 65534")]
    [InlineData("Compute:SandboxUidCount=2;Compute:MaxLiveWorkers=3;Compute:Slots=1;Compute:WarmWorkers=1;Compute:PythonWarmWorkers=1",
        "Compute:SandboxUidCount must be at least Compute:MaxLiveWorkers")]
    [InlineData("Compute:WorkerTmpBytes=1000", "Compute:WorkerTmpBytes must be at least 1 MiB")]
    [InlineData("Compute:WorkerNativeBytes=1000", "Compute:WorkerNativeBytes must be at least 64 MiB")]
    [InlineData("Compute:WorkerMaxProcesses=31", "Compute:WorkerMaxProcesses must be at least 32 (the runtimes start threads)")]
    [InlineData("Compute:WorkerMaxOpenFiles=63", "Compute:WorkerMaxOpenFiles must be at least 64")]
    [InlineData("Compute:CompilerProcesses=0;Compute:WarmCompilers=0", "Compute:CompilerProcesses must be 1..64")]
    [InlineData("Compute:CompilerProcesses=65", "Compute:CompilerProcesses must be 1..64")]
    [InlineData("Compute:CompilerHeapLimitBytes=67108863", "Compute:CompilerHeapLimitBytes must be at least 64 MiB")]
    [InlineData("Compute:CompileTimeout=00:00:00.099", "Compute:CompileTimeout must be at least 100 ms")]
    [InlineData("Legacy:PeerPort=70000", "Legacy:PeerPort (--legacy-port) must be 1..65535, not 70000")]
    [InlineData("Legacy:TrackerPort=-1", "Legacy:TrackerPort (--tracker-legacy-port) must be 1..65535, not -1")]
    [InlineData("Legacy:PeerPort=9000;Legacy:TrackerPort=9000", "Legacy:PeerPort and Legacy:TrackerPort must differ")]
    [InlineData("Legacy:BindAddress=everywhere", "Legacy:BindAddress 'everywhere' is not an IP address")]
    [InlineData("Legacy:MaxFrameBytes=1023;Legacy:MaxFileBytes=0", "Legacy:MaxFrameBytes must be at least 1024")]
    [InlineData("Legacy:MaxBufferedBytes=1024", "Legacy:MaxBufferedBytes must be at least Legacy:MaxFrameBytes")]
    [InlineData("Legacy:MaxFileBytes=146800641", "Legacy:MaxFileBytes must fit a message in base64: at most 3/4 of Legacy:MaxFrameBytes")]
    [InlineData("Legacy:MaxConnections=0", "Legacy:MaxConnections must be at least 1")]
    [InlineData("Legacy:StallTimeout=00:00:00", "Legacy:IdleTimeout and Legacy:StallTimeout must be positive")]
    [InlineData("Legacy:DefaultLanguage=cobol", "Legacy:DefaultLanguage 'cobol' is not a known task language")]
    [InlineData("Legacy:ExternalPeerTimeout=00:00:00", "Legacy:ExternalPeerTimeout must be positive")]
    [InlineData("Clustering:Mode=cloud", "Clustering:Mode 'cloud' is not one of: local, postgres")]
    public void A_bad_setting_is_named_in_todays_words(string settings, string expected)
    {
        Assert.Equal([expected], Problems(settings));
    }

    [Fact]
    public void Every_problem_is_reported_at_once_single_settings_first()
    {
        Assert.Equal(
            ["Peer:Name is required (--name NAME)", "Peer:Primary 'x' is not host:port", "Peer:SiloPort and Peer:GatewayPort must differ"],
            Problems("Peer:Name=;Peer:SiloPort=30000;Peer:Primary=x"));
        Assert.Equal(
            ["Compute:Slots must be 1..1024", "Compute:WarmWorkers must be 0..Compute:MaxLiveWorkers"],
            Problems("Compute:Slots=0;Compute:MaxLiveWorkers=4;Compute:WarmWorkers=5"));
    }

    [Theory]
    [InlineData("Memory")]
    [InlineData("Disk")]
    [InlineData("Tracker")]
    [InlineData("Compute")]
    [InlineData("Peer")]
    [InlineData("Legacy")]
    [InlineData("Clustering")]
    public void The_defaults_are_valid(string section)
    {
        Assert.Empty(Problems($"{section}:Unused=1"));
    }

    [Fact]
    public void Registered_options_fail_with_the_messages_as_written()
    {
        var services = new ServiceCollection();
        services.AddOptions<MemoryOptions>().Configure(o =>
        {
            o.QuotaBytes = 0;
            o.MaxKeyBytes = 0;
        }).ValidateAnnotated();
        using var provider = services.BuildServiceProvider();

        var failure = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<MemoryOptions>>().Value);

        Assert.Equal(["Memory:QuotaBytes must be positive", "Memory:MaxKeyBytes must be 1..65536"], failure.Failures);
    }

    /// <summary>
    /// Binds <c>Section:Key=value;...</c> as the host does and checks the section's options. A peer is
    /// named <c>peer-1</c> unless the settings name it.
    /// </summary>
    private static IReadOnlyList<string> Problems(string settings)
    {
        var pairs = settings.Split(';').Select(s => s.Split('=', 2)).ToDictionary(p => p[0], p => (string?)p[1]);
        var section = pairs.Keys.First().Split(':')[0];
        if (section == PeerOptions.Section) pairs.TryAdd("Peer:Name", "peer-1");
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(pairs).Build();
        return section switch
        {
            MemoryOptions.Section => Check<MemoryOptions>(configuration, MemoryOptions.Section),
            DiskOptions.Section => Check<DiskOptions>(configuration, DiskOptions.Section),
            TrackerOptions.Section => Check<TrackerOptions>(configuration, TrackerOptions.Section),
            ComputeOptions.Section => Check<ComputeOptions>(configuration, ComputeOptions.Section),
            PeerOptions.Section => Check<PeerOptions>(configuration, PeerOptions.Section),
            LegacyOptions.Section => Check<LegacyOptions>(configuration, LegacyOptions.Section),
            ClusteringOptions.Section => Check<ClusteringOptions>(configuration, ClusteringOptions.Section),
            var other => throw new ArgumentException($"no options for section {other}", nameof(settings)),
        };
    }

    private static IReadOnlyList<string> Check<T>(IConfiguration configuration, string section) where T : class, new() =>
        AnnotatedOptionsValidator<T>.Problems(configuration.GetSection(section).Get<T>() ?? new T());
}
