namespace P2PShare.Files;

/// <summary>The peer's data folder, resolved once at start.</summary>
public sealed class PeerDataDirectory(string path)
{
    public string Path { get; } = System.IO.Path.GetFullPath(path);
}
