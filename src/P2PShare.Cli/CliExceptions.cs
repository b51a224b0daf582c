namespace P2PShare.Cli;

/// <summary>The user asked for something the CLI cannot do as asked (missing local file, bad gateway, ...).</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>No configured gateway accepted the client; distinct from one peer being down.</summary>
public sealed class ClusterUnreachableException(string gateways, string reason, Exception? inner = null)
    : Exception($"cannot reach the cluster at {gateways}: {reason}", inner);
