namespace P2PShare.Connecting;

/// <summary>A <see cref="HostPort"/> whose name DNS could not turn into an address.</summary>
/// <param name="reason">What went wrong, on one line, e.g. <c>cannot resolve 'peer-a.lan': Name or service not known</c>.</param>
public sealed class HostResolutionException(HostPort address, string reason, Exception? inner = null)
    : Exception($"{address}: {reason}", inner)
{
    public HostPort Address { get; } = address;

    public string Reason { get; } = reason;
}
