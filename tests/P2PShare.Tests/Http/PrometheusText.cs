using System.Globalization;

namespace P2PShare.Tests.Http;

/// <summary>Reads samples out of a Prometheus text-format scrape.</summary>
public static class PrometheusText
{
    /// <summary>
    /// The sum of every sample of <paramref name="metric"/> whose labels include all of
    /// <paramref name="labels"/> (each as <c>name="value"</c>); null when there is none.
    /// </summary>
    public static double? Sum(string scrape, string metric, params string[] labels)
    {
        double? sum = null;
        foreach (var line in scrape.Split('\n'))
        {
            if (line.StartsWith('#') || !line.StartsWith(metric, StringComparison.Ordinal)) continue;
            var rest = line[metric.Length..];
            if (rest.Length == 0 || (rest[0] != '{' && rest[0] != ' ')) continue; // a longer name
            var labelEnd = rest[0] == '{' ? rest.IndexOf('}') : -1;
            var labelText = labelEnd > 0 ? rest[..(labelEnd + 1)] : "";
            if (!labels.All(l => labelText.Contains(l, StringComparison.Ordinal))) continue;
            var value = rest[(labelEnd + 1)..].Trim().Split(' ')[0];
            sum = (sum ?? 0) + double.Parse(value, CultureInfo.InvariantCulture);
        }

        return sum;
    }
}
