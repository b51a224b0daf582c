using System.Collections.Immutable;

namespace P2PShare.Files;

/// <summary>A stored file as a peer describes it. <see cref="Sha256"/> is lowercase hex.</summary>
[GenerateSerializer, Immutable]
public sealed record StoredFileInfo(
    [property: Id(0)] string Name,
    [property: Id(1)] long Size,
    [property: Id(2)] string Sha256,
    [property: Id(3)] DateTime ModifiedUtc);

[GenerateSerializer, Immutable]
public sealed record FileListing(
    [property: Id(0)] ImmutableArray<StoredFileInfo> Files,
    [property: Id(1)] bool Truncated);

/// <summary>
/// An upload in progress. The caller writes chunks of at most <see cref="MaxChunkBytes"/> at any
/// offset, then completes it with the SHA-256 it computed; only then does the file appear.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record UploadTicket(
    [property: Id(0)] Guid UploadId,
    [property: Id(1)] int MaxChunkBytes);

/// <summary>
/// A download in progress. It reads one fixed version of the file: a put that replaces the file
/// meanwhile does not change what this download returns.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record DownloadTicket(
    [property: Id(0)] Guid DownloadId,
    [property: Id(1)] StoredFileInfo File,
    [property: Id(2)] int MaxChunkBytes);
