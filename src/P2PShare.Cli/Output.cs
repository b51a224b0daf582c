using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace P2PShare.Cli;

/// <summary>
/// Where results go: Spectre tables for people, one camelCase JSON document for scripts. Notes and
/// progress go to stderr so stdout stays exactly the result.
/// </summary>
public sealed class Output(bool json, IAnsiConsole console, TextWriter stdout, TextWriter stderr)
{
    private readonly JsonSerializerOptions _jsonOptions = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public bool Json { get; } = json;

    public IAnsiConsole Ansi { get; } = console;

    public TextWriter Error { get; } = stderr;

    public void WriteJson<T>(T value)
    {
        stdout.WriteLine(JsonSerializer.Serialize(value, _jsonOptions));
        stdout.Flush();
    }

    public void WriteTable(Table table) => Ansi.Write(table);

    /// <summary>Plain text on stdout, never parsed as Spectre markup (names may contain brackets).</summary>
    public void Line(string text) => Ansi.WriteLine(text);

    /// <summary>Side information that must not pollute a JSON document or piped output.</summary>
    public void Note(string text) => Error.WriteLine($"note: {text}");

    public static Table NewTable(params string[] headers)
    {
        var table = new Table().Border(TableBorder.Rounded);
        foreach (var header in headers)
        {
            table.AddColumn(new TableColumn(new Text(header, new Style(decoration: Decoration.Bold))));
        }

        return table;
    }

    /// <summary>Adds a row of literal text; user data must never be interpreted as markup.</summary>
    public static void AddRow(Table table, params string[] cells) =>
        table.AddRow(cells.Select(c => (IRenderable)new Text(c)).ToArray());

    public static string Used(long used, long quota) => $"{Bytes.Format(used)} / {Bytes.Format(quota)}";

    public static string Age(DateTime utc, DateTime nowUtc)
    {
        var age = nowUtc - utc;
        if (age < TimeSpan.Zero)
        {
            age = TimeSpan.Zero; // clocks of different machines disagree a little
        }

        return age.TotalSeconds < 60 ? string.Create(CultureInfo.InvariantCulture, $"{age.TotalSeconds:0}s ago")
            : age.TotalMinutes < 60 ? string.Create(CultureInfo.InvariantCulture, $"{age.TotalMinutes:0}m ago")
            : age.TotalHours < 48 ? string.Create(CultureInfo.InvariantCulture, $"{age.TotalHours:0}h ago")
            : string.Create(CultureInfo.InvariantCulture, $"{age.TotalDays:0}d ago");
    }

    public static string Timestamp(DateTime? utc) =>
        utc is null ? "-" : utc.Value.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);
}
