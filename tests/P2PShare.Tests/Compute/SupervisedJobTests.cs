using Microsoft.Extensions.Time.Testing;
using Orleans.Storage;
using P2PShare.Compute;

namespace P2PShare.Tests.Compute;

/// <summary>A job's record as its supervisor keeps it, without a cluster: what news changes, what is stored.</summary>
public sealed class SupervisedJobTests
{
    private static readonly DateTime Submitted = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 1, 0, TimeSpan.Zero));
    private readonly FakeStorage _storage = new();

    private SupervisedJob Job() => new(_storage, "peer-1:job", _time);

    private static TaskSpec Spec(bool confidential = false, string? on = null, int retries = 3) =>
        new("int main() => 1;", null, "[7]", confidential, null, "me", on, retries);

    private static JobInfo Peer(JobStatus status, DateTime submitted) =>
        new("peer-1:job", status, "peer-1", "peer-2", "me", false, "main", submitted, null, null, 0, 0, null, TaskErrorKind.None, null, "", false);

    private SupervisedJob Started(TaskSpec task)
    {
        var job = Job();
        job.Begin("peer-1", task);
        job.Add(1, "peer-2", Peer(JobStatus.Queued, Submitted));
        return job;
    }

    [Fact]
    public void Confidential_program_and_arguments_are_kept_in_memory_only()
    {
        var job = Started(Spec(confidential: true));

        Assert.Equal("", job.State.Spec!.Program);
        Assert.Equal("[]", job.State.Spec.ArgsJson);
        Assert.Equal("int main() => 1;", job.FullSpec!.Program);
    }

    [Fact]
    public void Confidential_task_is_never_rerun_after_its_peer_is_lost() =>
        Assert.Equal("PeerLost: peer-1 died; a confidential task never runs anywhere but its origin",
            Started(Spec(confidential: true)).EndInsteadOfRerun("peer-1 died")?.Error);

    [Fact]
    public void Pinned_task_is_never_moved_to_another_peer() =>
        Assert.Equal("PeerLost: peer-2 died; the task is pinned to that peer", Started(Spec(on: "peer-2")).EndInsteadOfRerun("peer-2 died")?.Error);

    [Fact]
    public void Task_is_rerun_until_its_retries_are_used_up()
    {
        var job = Started(Spec(retries: 1));
        Assert.Null(job.EndInsteadOfRerun("peer-2 died"));

        // The second attempt ran on the same peer (it came back), so only the retry count stops it.
        job.Lose(job.Last, "peer-2 died");
        job.Add(2, "peer-2", Peer(JobStatus.Queued, Submitted.AddMinutes(1)));
        job.Lose(job.Last, "peer-2 died");
        Assert.Equal((JobStatus.PeerLost, TaskErrorKind.PeerLost, "PeerLost: peer-2 died; no retries left after 2 attempts"),
            job.EndInsteadOfRerun("peer-2 died"));
    }

    [Fact]
    public void Task_whose_peer_died_under_it_on_two_peers_fails_instead_of_going_round_the_rest()
    {
        var job = Started(Spec(retries: 3));
        job.Lose(job.Last, "peer-2 died");
        job.Add(2, "peer-3", Peer(JobStatus.Queued, Submitted.AddMinutes(1)));
        job.Lose(job.Last, "peer-3 died");

        var end = job.EndInsteadOfRerun("peer-3 died");

        Assert.Equal(JobStatus.Failed, end?.Status);
        Assert.Equal(TaskErrorKind.Crashed, end?.Kind);
        Assert.Equal("Crashed: its peer died under it on 'peer-2' and on 'peer-3' (peer-3 died); a task that ends like that on two peers is not tried again",
            end?.Error);
    }

    [Fact]
    public void A_peers_record_keeps_the_jobs_submission_time()
    {
        var job = Started(Spec());

        job.Observe(Peer(JobStatus.Running, Submitted.AddMinutes(5)));

        Assert.Equal(JobStatus.Running, job.Info().Status);
        Assert.Equal(JobStatus.Running, job.Last.Status);
        Assert.Equal(Submitted, job.Info().SubmittedUtc);
    }

    [Fact]
    public void News_of_a_running_attempt_changes_nothing_once_the_job_ended()
    {
        var job = Started(Spec());
        job.End(JobStatus.Cancelled, TaskErrorKind.Cancelled, "Cancelled: by me");

        job.Observe(Peer(JobStatus.Running, Submitted));

        Assert.Equal(JobStatus.Cancelled, job.Info().Status);
    }

    [Fact]
    public async Task Write_conflict_keeps_the_terminal_record_another_activation_stored()
    {
        var job = Started(Spec());
        var theirs = new JobState { Origin = "peer-1", Current = Peer(JobStatus.Succeeded, Submitted), Attempts = [new(1, "peer-2", JobStatus.Succeeded, Submitted, Submitted, null)] };
        _storage.WrittenMeanwhile = theirs;

        await job.WriteAsync();

        Assert.Same(theirs, _storage.Stored);
        Assert.Equal(JobStatus.Succeeded, job.Info().Status);
        Assert.Equal(JobStatus.Succeeded, (await job.EndedWithinAsync(TimeSpan.Zero))?.Status);
    }

    [Fact]
    public async Task Write_conflict_with_a_running_record_stores_ours()
    {
        var job = Started(Spec());
        var mine = job.State;
        _storage.WrittenMeanwhile = new JobState { Origin = "peer-1", Current = Peer(JobStatus.Queued, Submitted) };

        await job.WriteAsync();

        Assert.Same(mine, _storage.Stored);
        Assert.Null(await job.EndedWithinAsync(TimeSpan.Zero));
    }

    /// <summary>Grain storage in memory; <see cref="WrittenMeanwhile"/> plays another activation that wrote first.</summary>
    private sealed class FakeStorage : IPersistentState<JobState>
    {
        public JobState State { get; set; } = new();
        public JobState? Stored { get; private set; }
        public JobState? WrittenMeanwhile { get; set; }
        public string? Etag => null;
        public bool RecordExists => Stored is not null;

        public Task ClearStateAsync()
        {
            Stored = null;
            return Task.CompletedTask;
        }

        public Task WriteStateAsync()
        {
            if (WrittenMeanwhile is { } theirs)
            {
                Stored = theirs;
                WrittenMeanwhile = null;
                throw new InconsistentStateException("written by another activation");
            }

            Stored = State;
            return Task.CompletedTask;
        }

        public Task ReadStateAsync()
        {
            State = Stored ?? new JobState();
            return Task.CompletedTask;
        }
    }
}
