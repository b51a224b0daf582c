namespace P2PShare.Memory;

/// <summary>Which writes <see cref="MemoryStore.TrySet"/> makes.</summary>
public enum SetCondition
{
    Always,
    /// <summary>Only when the key has no live value (Redis' NX).</summary>
    IfAbsent,
    /// <summary>Only when the key has a live value (Redis' XX).</summary>
    IfExists,
}

public enum WriteStatus
{
    Stored,
    /// <summary>The <see cref="SetCondition"/> did not hold; nothing changed.</summary>
    ConditionNotMet,
    /// <summary>The write would pass the quota; nothing changed and nothing was evicted.</summary>
    OverQuota,
    InvalidKey,
    ValueTooLarge,
    /// <summary>The expiry is not positive, or too far away to represent.</summary>
    InvalidTtl,
}

/// <summary>What a write did; for <see cref="WriteStatus.OverQuota"/> the bytes it needed, those used and the quota.</summary>
public readonly record struct WriteResult(WriteStatus Status, long Needed = 0, long Used = 0, long Limit = 0)
{
    /// <summary>For a batch: the key that failed it, when one key did.</summary>
    public string? FailedKey { get; init; }

    /// <summary>The typed error a caller of the throwing API gets; its message is the one line every door shows.</summary>
    public P2PShareException ToException(string key) => Status switch
    {
        WriteStatus.OverQuota => new QuotaExceededException("memory", Needed, Used, Limit),
        WriteStatus.ValueTooLarge => new InvalidArgumentException(
            $"value of {Bytes.Format(Needed)} is larger than the limit of {Bytes.Format(Limit)}"),
        WriteStatus.InvalidTtl => new InvalidArgumentException("ttl must be positive"),
        WriteStatus.InvalidKey => new InvalidNameException("key", key, "it breaks the key rules"),
        WriteStatus.ConditionNotMet => new InvalidArgumentException($"key '{key}' was not written: its condition did not hold"),
        _ => new P2PShareException(ErrorKind.Internal, $"write of '{key}' reported {Status}"),
    };
}
