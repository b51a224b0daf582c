using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.Versioning;
using System.Security.Cryptography;
using System.Text;

namespace P2PShare.Compute;

/// <summary>
/// Makes the files a sandbox binds reachable by the unprivileged uid it runs as. bwrap opens each
/// bind's source after the uid drop, so a peer run as root from a private folder (a home folder, a
/// mktemp checkout: mode 0700) could not start a single worker. A file the uid cannot reach is
/// copied once into a root-owned, world-readable folder and bound from there; what others can
/// already read is bound where it is.
/// </summary>
internal sealed class StagedFiles(string root)
{
    /// <summary>Under /run: root-owned and world-traversable, so no other local user can plant a folder there first.</summary>
    public const string DefaultRoot = "/run/p2pshare-sandbox-files";

    private const UnixFileMode FolderMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    private const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    private readonly ConcurrentDictionary<string, string> _staged = new(StringComparer.Ordinal);

    /// <summary>The binds with every file others cannot read replaced by a staged copy; folders are left as they are.</summary>
    public IReadOnlyList<(string Source, string Target)> Reachable(IReadOnlyList<(string Source, string Target)> binds)
    {
        if (!OperatingSystem.IsLinux()) return binds;
        List<(string, string)>? result = null;
        for (var i = 0; i < binds.Count; i++)
        {
            var (source, target) = binds[i];
            var reachable = File.Exists(source) && !OthersCanRead(source) ? Stage(source) : source;
            if (ReferenceEquals(reachable, source) && result is null) continue;
            result ??= [.. binds.Take(i)];
            result.Add((reachable, target));
        }

        return result ?? binds;
    }

    /// <summary>True when every folder on the path lets others through and the file lets them read.</summary>
    [SupportedOSPlatform("linux")]
    internal static bool OthersCanRead(string path)
    {
        var full = Path.GetFullPath(path);
        if ((File.GetUnixFileMode(full) & UnixFileMode.OtherRead) == 0) return false;
        for (var folder = Path.GetDirectoryName(full); !string.IsNullOrEmpty(folder); folder = Path.GetDirectoryName(folder))
            if ((File.GetUnixFileMode(folder) & UnixFileMode.OtherExecute) == 0) return false;
        return true;
    }

    [SupportedOSPlatform("linux")]
    private string Stage(string source)
    {
        var info = new FileInfo(source);
        // Keyed by path, size and time: a rebuilt file gets a new copy, an unchanged one is copied once.
        var key = $"{info.FullName}\n{info.Length}\n{info.LastWriteTimeUtc.Ticks.ToString(CultureInfo.InvariantCulture)}";
        return _staged.GetOrAdd(key, k => Copy(info, Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(k)))[..32]));
    }

    [SupportedOSPlatform("linux")]
    private string Copy(FileInfo source, string id)
    {
        EnsureOwnFolder(root);
        var folder = Path.Combine(root, id);
        var target = Path.Combine(folder, source.Name);
        if (File.Exists(target) && new FileInfo(target).Length == source.Length) return target;
        Directory.CreateDirectory(folder, FolderMode);
        var part = target + "." + Guid.NewGuid().ToString("N") + ".part";
        File.Copy(source.FullName, part);
        File.SetUnixFileMode(part, FileMode);
        File.Move(part, target, overwrite: true);
        return target;
    }

    /// <summary>
    /// The staging folder must be writable by nobody but its owner. Under /run only root can create it,
    /// so no other user can have planted it.
    /// </summary>
    [SupportedOSPlatform("linux")]
    private static void EnsureOwnFolder(string folder)
    {
        Directory.CreateDirectory(folder, FolderMode);
        var mode = File.GetUnixFileMode(folder);
        if ((mode & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
            throw new InvalidOperationException($"the sandbox's staging folder {folder} is writable by others (mode {mode}); remove it");
    }
}
