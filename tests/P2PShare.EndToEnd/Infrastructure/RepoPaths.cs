namespace P2PShare.EndToEnd.Infrastructure;

public static class RepoPaths
{
    /// <summary>The folder holding P2PShare.sln, found by walking up from the test binaries.</summary>
    public static string Root { get; } = FindRoot();

    public static string ClusterScript => Path.Combine(Root, "deploy", "local", "cluster.sh");

    public static string CliWrapper => Path.Combine(Root, "deploy", "local", "p2pshare");

    public static string SchemaFile => Path.Combine(Root, "deploy", "postgres", "schema.sql");

    /// <summary>The peer host as cluster.sh builds it (Release); the apphost, without `dotnet`.</summary>
    public static string PeerHost => Path.Combine(Root, "src", "P2PShare.Peer", "bin", "Release", "net10.0", "p2pshare-peer");

    public static string CliDll => Path.Combine(Root, "src", "P2PShare.Cli", "bin", "Release", "net10.0", "p2pshare.dll");

    /// <summary>Our stdlib-only seed-protocol client.</summary>
    public static string LegacyClient => Path.Combine(Root, "tests", "legacy-client", "p2pshare_legacy.py");

    public static string NetnsScript => Path.Combine(Root, "deploy", "netns", "cluster.sh");

    public static string NetnsCliWrapper => Path.Combine(Root, "deploy", "netns", "p2pshare");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "P2PShare.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"P2PShare.sln not found above {AppContext.BaseDirectory}");
    }
}
