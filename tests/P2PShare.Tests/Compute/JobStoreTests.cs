using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using P2PShare.Compute;
using P2PShare.Hosting;

namespace P2PShare.Tests.Compute;

/// <summary>The executing peer's attempt records: swept after their retention, read or not, and capped in result bytes.</summary>
public sealed class JobStoreTests
{
    private static readonly TimeSpan Retention = TimeSpan.FromMinutes(10);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));

    private JobStore Store(long maxRetainedBytes = ComputeOptions.DefaultMaxRetainedResultBytes) =>
        new(Options.Create(new ComputeOptions { JobRetention = Retention, MaxRetainedResultBytes = maxRetainedBytes }), _time);

    private JobRecord Finished(JobStore store, string jobId, string result)
    {
        var spec = new TaskSpec("int main() => 1;", null, "[]", false, null, "tester", null);
        var record = store.Create(new JobAssignment(jobId, 1, "peer-1", spec), "peer-1");
        record.Finish(JobStatus.Succeeded, _time.GetUtcNow().UtcDateTime, new ExecutionResult(TaskErrorKind.None, result, null, ""), TimeSpan.Zero);
        return record;
    }

    [Fact]
    public void A_finished_attempt_nobody_reads_is_swept_after_its_retention_and_reads_as_expired()
    {
        using var store = Store();
        Finished(store, "peer-1:000000000001", "42");
        _time.Advance(Retention - TimeSpan.FromSeconds(1));
        Assert.Equal("42", store.Get("peer-1:000000000001", 1).Snapshot().ResultJson);

        _time.Advance(TimeSpan.FromMinutes(1)); // the sweep timer fires; nobody reads in between
        Assert.Null(store.TryGet("peer-1:000000000001", 1));
        Assert.Equal(0, store.RetainedResultBytes);
        var ex = Assert.Throws<ExpiredException>(() => store.Get("peer-1:000000000001", 1));
        Assert.Equal("job attempt 'peer-1:000000000001#1' expired: finished attempts are kept for 10 min", ex.Message);
        Assert.Equal(ErrorKind.NotFound, ex.Kind);
    }

    [Fact]
    public void An_expired_attempt_is_unknown_after_one_more_retention()
    {
        using var store = Store();
        Finished(store, "peer-1:000000000001", "42");
        _time.Advance(Retention + TimeSpan.FromMinutes(1));
        Assert.Throws<ExpiredException>(() => store.Get("peer-1:000000000001", 1));
        _time.Advance(Retention + TimeSpan.FromMinutes(1));
        Assert.Throws<NotFoundException>(() => store.Get("peer-1:000000000001", 1));
    }

    [Fact]
    public void Over_the_byte_cap_the_oldest_finished_attempts_are_dropped_first()
    {
        using var store = Store(maxRetainedBytes: 2500);
        var kilobyte = new string('x', 1000);
        Finished(store, "peer-1:000000000001", kilobyte);
        _time.Advance(TimeSpan.FromSeconds(1));
        Finished(store, "peer-1:000000000002", kilobyte);
        _time.Advance(TimeSpan.FromSeconds(1));
        Finished(store, "peer-1:000000000003", kilobyte);

        var ex = Assert.Throws<ExpiredException>(() => store.Get("peer-1:000000000001", 1));
        Assert.Contains($"keeps at most {Bytes.Format(2500)} of finished attempts' results and dropped the oldest", ex.Message);
        Assert.Equal(kilobyte, store.Get("peer-1:000000000002", 1).Snapshot().ResultJson);
        Assert.Equal(kilobyte, store.Get("peer-1:000000000003", 1).Snapshot().ResultJson);
        Assert.Equal(2000, store.RetainedResultBytes);
    }

    [Fact]
    public void A_running_attempt_is_never_swept()
    {
        using var store = Store(maxRetainedBytes: 1);
        var spec = new TaskSpec("int main() => 1;", null, "[]", false, null, "tester", null);
        store.Create(new JobAssignment("peer-1:000000000009", 1, "peer-1", spec), "peer-1");
        _time.Advance(Retention * 3);
        Assert.Equal(JobStatus.Queued, store.Get("peer-1:000000000009", 1).Snapshot().Status);
    }

    [Theory]
    [InlineData(24 * 3600, "24 h")]
    [InlineData(90 * 60, "90 min")]
    [InlineData(2, "2 s")]
    [InlineData(0.5, "0.5 s")]
    public void Retention_reads_as_people_say_it(double seconds, string expected) =>
        Assert.Equal(expected, RetainedJobs.Describe(TimeSpan.FromSeconds(seconds)));
}
