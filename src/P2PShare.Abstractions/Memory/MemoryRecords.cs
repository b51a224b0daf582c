using System.Collections.Immutable;

namespace P2PShare.Memory;

/// <summary>One key in a peer's memory store, without its value.</summary>
[GenerateSerializer, Immutable]
public sealed record MemoryEntryInfo(
    [property: Id(0)] string Key,
    [property: Id(1)] long ValueBytes,
    [property: Id(2)] DateTime UpdatedUtc,
    [property: Id(3)] DateTime? ExpiresUtc);

/// <summary>A page of keys; <see cref="Truncated"/> says more matched than were returned.</summary>
[GenerateSerializer, Immutable]
public sealed record MemoryListing(
    [property: Id(0)] ImmutableArray<MemoryEntryInfo> Entries,
    [property: Id(1)] bool Truncated);

/// <summary>One key and its value, for writing several at once (<c>MSetAsync</c>).</summary>
[GenerateSerializer, Immutable]
public sealed record MemoryItem(
    [property: Id(0)] string Key,
    [property: Id(1)] byte[] Value);
