namespace P2PShare.Benchmarks;

/// <summary>Latency samples in milliseconds and the percentiles we publish.</summary>
internal sealed class Samples
{
    private readonly List<double> _values = [];
    private readonly object _gate = new();

    public void Add(double ms)
    {
        lock (_gate) _values.Add(ms);
    }

    public void AddRange(IEnumerable<double> ms)
    {
        lock (_gate) _values.AddRange(ms);
    }

    public int Count
    {
        get { lock (_gate) return _values.Count; }
    }

    /// <summary>Nearest-rank percentile (p in 0..100).</summary>
    public double Percentile(double p)
    {
        double[] sorted;
        lock (_gate) sorted = [.. _values.Order()];
        if (sorted.Length == 0) return double.NaN;
        var rank = (int)Math.Ceiling(p / 100 * sorted.Length);
        return Round(sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)]);
    }

    public double Median => Percentile(50);

    public static double Round(double value) => Math.Round(value, 3);
}
