using System.ComponentModel.DataAnnotations;
using P2PShare.Configuration;

namespace P2PShare.Tracker;

/// <summary>How peers report to the tracker. Section <c>Tracker</c>.</summary>
public sealed class TrackerOptions : IValidatableObject
{
    public const string Section = "Tracker";
    public const int DefaultMissedReportsLimit = 3;
    public static readonly TimeSpan DefaultReportInterval = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan DefaultMinReportGap = TimeSpan.FromMilliseconds(200);

    /// <summary>Heartbeat period of load reports.</summary>
    [TimeSpanAtLeast("00:00:00.100", ErrorMessage = "Tracker:ReportInterval must be at least 100 ms")]
    public TimeSpan ReportInterval { get; set; } = DefaultReportInterval;

    /// <summary>Shortest gap between two on-change reports, so a burst of writes is one report.</summary>
    public TimeSpan MinReportGap { get; set; } = DefaultMinReportGap;

    /// <summary>A peer silent for this many of its report intervals is dropped from routing.</summary>
    [Range(1, int.MaxValue, ErrorMessage = "Tracker:MissedReportsLimit must be at least 1")]
    public int MissedReportsLimit { get; set; } = DefaultMissedReportsLimit;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (MinReportGap < TimeSpan.Zero || MinReportGap > ReportInterval)
            yield return new ValidationResult("Tracker:MinReportGap must be between 0 and Tracker:ReportInterval");
    }
}
