namespace P2PShare;

/// <summary>
/// How long one call may take, and how often callers ask again: the limits that keep every wait
/// call answered inside Orleans' response timeout, so a job of any length is followed in slices
/// instead of a call that times out. Clients (the CLI, the seed-protocol gateway, the benchmark)
/// and the peers' grains take them from here so they cannot drift apart.
/// </summary>
public static class CallLimits
{
    /// <summary>
    /// Orleans' response timeout, which P2PShare leaves at its default on silos and clients alike
    /// (<c>SiloMessagingOptions.ResponseTimeout</c>, <c>ClientMessagingOptions.ResponseTimeout</c>):
    /// a call not answered within it fails with a <see cref="TimeoutException"/>. Every limit below
    /// is chosen to stay under it.
    /// </summary>
    public static readonly TimeSpan ResponseTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The longest wait a client asks for in one call (<c>p2pshare run</c> and <c>job wait</c>, a
    /// seed-protocol CPU_TASK, the benchmark); it then asks again. Well below
    /// <see cref="ResponseTimeout"/>, so the answer, sent after the wait and a last
    /// <see cref="RefreshTimeout"/>-bounded look at the attempt, still arrives in time under load.
    /// </summary>
    public static readonly TimeSpan WaitSlice = TimeSpan.FromSeconds(20);

    /// <summary>
    /// The longest wait a grain grants, whatever the caller asked for (<c>IJobGrain.WaitAsync</c>,
    /// <c>IPeerGrain.WaitAttemptAsync</c>): a caller that asks for more still gets its answer
    /// before <see cref="ResponseTimeout"/>, with room for <see cref="RefreshTimeout"/> and the trip back.
    /// </summary>
    public static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(25);

    /// <summary>
    /// How long one long poll of a job's supervisor waits on the peer running the attempt; then it
    /// polls again. Below <see cref="MaxWait"/>, so the peer never has to cut the wait short.
    /// </summary>
    public static readonly TimeSpan PollWait = TimeSpan.FromSeconds(20);

    /// <summary>
    /// How long a job's supervisor waits for a quick look at its attempt (a wait of zero) on the
    /// attempt's peer before it answers with what it already knows. A wait that ran for
    /// <see cref="MaxWait"/> ends with such a look, so both together stay under <see cref="ResponseTimeout"/>.
    /// </summary>
    public static readonly TimeSpan RefreshTimeout = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How long a client keeps retrying a call to a job's grain that fails because the grain's silo
    /// died: the grain comes back on a live silo once membership has noticed (a few seconds), so
    /// only a longer outage is reported.
    /// </summary>
    public static readonly TimeSpan RetryWindow = TimeSpan.FromSeconds(20);

    /// <summary>The pause between those retries: short, since membership usually settles within seconds.</summary>
    public static readonly TimeSpan RetryBackoff = TimeSpan.FromMilliseconds(500);
}
