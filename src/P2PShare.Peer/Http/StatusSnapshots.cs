using P2PShare.Status;

namespace P2PShare.Peer.Http;

/// <summary>
/// Hands out the cluster's status for <c>/api/status</c>, reading it at most once per
/// <see cref="Freshness"/> however many pages poll, and sharing one read among concurrent requests.
/// </summary>
public sealed class StatusSnapshots(IGrainFactory grains, TimeProvider time, HttpOptions options)
{
    /// <summary>Pages poll every second; two reads a second keep them current without multiplying calls per viewer.</summary>
    public static readonly TimeSpan Freshness = TimeSpan.FromMilliseconds(500);

    private readonly ClusterStatusReader _reader = new(grains, time);
    private readonly object _gate = new();
    private Task<ClusterStatus>? _current;
    private long _startedAt;

    /// <exception cref="TimeoutException">The tracker did not answer in time.</exception>
    public Task<ClusterStatus> GetAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var fresh = _current is not null && time.GetElapsedTime(_startedAt) < Freshness && !_current.IsFaulted;
            if (!fresh || _current is null)
            {
                _startedAt = time.GetTimestamp();
                // Not the request's token: the read is shared, and one viewer leaving must not fail the others.
                _current = _reader.ReadAsync(options.RecentJobs, CancellationToken.None);
            }

            return _current.WaitAsync(cancellationToken);
        }
    }
}
