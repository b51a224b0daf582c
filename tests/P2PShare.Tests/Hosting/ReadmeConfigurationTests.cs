using System.Text.RegularExpressions;
using P2PShare.Peer;

namespace P2PShare.Tests.Hosting;

/// <summary>
/// The README's configuration table and <c>p2pshare-peer --help</c> come from different places (prose
/// and <see cref="PeerSwitches"/>); the rows that name a switch must say what the declaration says.
/// </summary>
public sealed partial class ReadmeConfigurationTests
{
    [Fact]
    public void Every_switch_has_a_readme_row_with_its_setting_default_and_meaning()
    {
        var rows = SwitchRows();

        foreach (var declared in PeerSwitches.All)
        {
            Assert.True(rows.TryGetValue(declared.Name, out var row), $"README's configuration table has no row for {declared.Name}");
            Assert.Equal(declared.Key, row.Key);
            Assert.Equal(Plain(declared.Default), Plain(row.Default));
            Assert.Equal(Plain(declared.Help), Plain(row.Meaning));
        }

        Assert.Empty(rows.Keys.Except(PeerSwitches.All.Select(s => s.Name)));
    }

    /// <summary>Rows <c>| `Key` | `--switch` | default | meaning |</c> of the README's configuration section.</summary>
    private static Dictionary<string, (string Key, string Default, string Meaning)> SwitchRows()
    {
        var readme = File.ReadAllText(Path.Combine(RepositoryRoot(), "README.md"));
        var start = readme.IndexOf("\n## Configuration", StringComparison.Ordinal);
        Assert.True(start >= 0, "README.md has no Configuration section");
        var end = readme.IndexOf("\n## ", start + 1, StringComparison.Ordinal);
        var section = readme[start..(end < 0 ? readme.Length : end)];
        var rows = new Dictionary<string, (string, string, string)>(StringComparer.Ordinal);
        foreach (Match m in Row().Matches(section))
        {
            rows[m.Groups["switch"].Value] = (m.Groups["key"].Value, m.Groups["default"].Value.Trim(), m.Groups["meaning"].Value.Trim());
        }

        return rows;
    }

    // Markdown code spans and the help's quotes are the same text to a reader.
    private static string Plain(string text) => text.Replace("`", "", StringComparison.Ordinal).Replace("'", "", StringComparison.Ordinal);

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "P2PShare.sln"))) return dir.FullName;
        }

        throw new InvalidOperationException($"P2PShare.sln not found above {AppContext.BaseDirectory}");
    }

    [GeneratedRegex(@"^\| `(?<key>[A-Za-z]+:[A-Za-z]+)` \| `(?<switch>--[a-z-]+)` \| (?<default>[^|]+) \| (?<meaning>.+) \|$", RegexOptions.Multiline)]
    private static partial Regex Row();
}
