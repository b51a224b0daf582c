using System.Diagnostics.Metrics;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;
using Orleans.Dashboard;
using P2PShare.Peers;
using P2PShare.Status;
using P2PShare.Telemetry;

namespace P2PShare.Peer.Http;

/// <summary>
/// What the peer's HTTP host serves. Everything comes from the peer itself: the page is one embedded
/// file with its script and style inline, and its content policy forbids loading anything from elsewhere.
/// </summary>
/// <remarks>
/// <list type="table">
/// <item><term><c>/</c></term><description>the status page (polls <c>/api/status</c> every second)</description></item>
/// <item><term><c>/api/status</c></term><description>the cluster as the tracker sees it, plus recent jobs (JSON)</description></item>
/// <item><term><c>/healthz</c></term><description>200 while the process runs</description></item>
/// <item><term><c>/readyz</c></term><description>200 when joined, registered, the tracker answers and workers start; else 503 with the reason</description></item>
/// <item><term><c>/metrics</c></term><description>Prometheus text format: P2PShare's and Orleans' metrics</description></item>
/// <item><term><c>/dashboard/</c></term><description>the Orleans Dashboard, when <see cref="HttpOptions.Dashboard"/> is on</description></item>
/// </list>
/// </remarks>
public static class PeerHttp
{
    /// <summary>Orleans' own meter; its instruments describe this silo's runtime.</summary>
    public const string OrleansMeterName = "Microsoft.Orleans";

    public const string DashboardPath = "/dashboard";

    private const string PageResource = "P2PShare.Peer.Http.status.html";

    // The page may use only what it carries itself (inline script and style) and talk only to its own peer.
    private const string PagePolicy =
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; " +
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static void AddServices(IServiceCollection services, HttpOptions options)
    {
        services.AddSingleton(options);
        services.AddSingleton<StatusSnapshots>();
        services.AddRoutingCore();
        services.AddOpenTelemetry().WithMetrics(metrics =>
        {
            metrics.AddMeter(P2PShareMetrics.MeterName, OrleansMeterName).AddPrometheusExporter();
            // Only this host's meters: several silos in one process (tests) each have their own meter
            // factory, and a scrape of one peer must not count another's work.
            ((IDeferredMeterProviderBuilder)metrics).Configure((provider, builder) =>
            {
                var own = provider.GetRequiredService<IMeterFactory>();
                builder.AddView(instrument =>
                    instrument.Meter.Scope is null || ReferenceEquals(instrument.Meter.Scope, own) ? null : MetricStreamConfiguration.Drop);
            });
        });
    }

    public static void Map(WebApplication app, HttpOptions options, string peerName)
    {
        var page = LoadPage();
        app.MapGet("/", (HttpContext context) => ServePage(context, page));
        app.MapGet("/index.html", (HttpContext context) => ServePage(context, page));
        var lifetime = app.Services.GetRequiredService<IHostApplicationLifetime>();
        // The server listens before the silo starts (StartAfterHttp); until then only liveness answers.
        bool Started() => lifetime.ApplicationStarted.IsCancellationRequested;
        app.MapGet("/api/status", (HttpContext context, CancellationToken cancellationToken) => Started()
            ? StatusAsync(context.RequestServices.GetRequiredService<StatusSnapshots>(), peerName, options.Dashboard, cancellationToken)
            : Task.FromResult(StatusUnavailable(peerName, options.Dashboard, Starting)));
        // Liveness must not depend on the cluster: a peer waiting for its primary is alive, just not ready.
        app.MapGet("/healthz", () => Results.Json(new { status = "alive", peer = peerName }, Json));
        app.MapGet("/readyz", async (HttpContext context, CancellationToken cancellationToken) =>
        {
            var report = Started()
                ? await context.RequestServices.GetRequiredService<PeerReadiness>().CheckAsync(cancellationToken).ConfigureAwait(false)
                : new ReadinessReport(false, peerName, "joining", false, false, null, null, false, Starting);
            return Results.Json(report, Json, statusCode: report.Ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
        });
        app.MapPrometheusScrapingEndpoint("/metrics");
        if (options.Dashboard) app.MapOrleansDashboard(DashboardPath);
    }

    private static async Task<IResult> StatusAsync(StatusSnapshots snapshots, string peerName, bool dashboard, CancellationToken cancellationToken)
    {
        try
        {
            var status = await snapshots.GetAsync(cancellationToken).ConfigureAwait(false);
            return Results.Json(new StatusResponse(peerName, dashboard, status.GeneratedUtc, status.Cluster, status.Peers, status.Jobs, status.PeersWithoutJobs), Json);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Stopping, or the tracker is unreachable: say so; the page keeps its last view.
            return StatusUnavailable(peerName, dashboard, FirstLine(ex.Message));
        }
    }

    private const string Starting = "the peer is starting: its silo has not joined the cluster yet";

    private static IResult StatusUnavailable(string peerName, bool dashboard, string reason) =>
        Results.Json(new StatusError(peerName, dashboard, DateTime.UtcNow, $"the cluster status is unavailable: {reason}"),
            Json, statusCode: StatusCodes.Status503ServiceUnavailable);

    private static IResult ServePage(HttpContext context, byte[] page)
    {
        context.Response.Headers.ContentSecurityPolicy = PagePolicy;
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers.XContentTypeOptions = "nosniff";
        return Results.Bytes(page, "text/html; charset=utf-8");
    }

    private static byte[] LoadPage()
    {
        using var stream = typeof(PeerHttp).Assembly.GetManifestResourceStream(PageResource)
            ?? throw new InvalidOperationException($"embedded resource {PageResource} is missing");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    private static string FirstLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? text;
}

/// <summary><c>GET /api/status</c>: a <see cref="ClusterStatus"/> plus which peer answered and whether it serves the dashboard.</summary>
public sealed record StatusResponse(
    string ServedBy,
    bool Dashboard,
    DateTime GeneratedUtc,
    ClusterSummary Cluster,
    IReadOnlyList<PeerView> Peers,
    IReadOnlyList<JobRow> Jobs,
    IReadOnlyList<string> PeersWithoutJobs);

/// <summary><c>GET /api/status</c> when the cluster cannot be read (503).</summary>
public sealed record StatusError(string ServedBy, bool Dashboard, DateTime GeneratedUtc, string Error);
