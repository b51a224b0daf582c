using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using P2PShare.Compute;
using P2PShare.Files;
using P2PShare.Peers;
using P2PShare.Tracker;

namespace P2PShare.Legacy;

/// <summary>
/// The peer port of the seed protocol. Everything goes through this peer's own grains, so a
/// seed-protocol client sees exactly what the CLI sees: the same memory, the same files, the same
/// jobs (a CPU_TASK is a job whose origin is this peer; <c>p2pshare job get</c> shows it).
/// </summary>
internal sealed class LegacyPeerHandler(
    IGrainFactory grains,
    PeerIdentity identity,
    SeedProtocolEndpoint endpoint,
    LoadReporter reporter,
    LegacyEndpoints endpoints,
    LegacyOptions options,
    ComputeOptions compute,
    ByteBudget budget) : ILegacyHandler
{
    private static readonly TimeSpan WaitSlice = CallLimits.WaitSlice;

    private IPeerGrain Self => grains.GetGrain<IPeerGrain>(identity.Name);

    public Task<LegacyReply> HandleAsync(LegacyRequest request, CancellationToken cancellationToken) => request.Type switch
    {
        "CPU_TASK" => RunTaskAsync(request, cancellationToken),
        "SET_MEM" => SetMemoryAsync(request),
        "GET_MEM" => GetMemoryAsync(request),
        "PUT_FILE" => PutFileAsync(request, cancellationToken),
        "GET_FILE" => GetFileAsync(request, cancellationToken),
        "STATUS" => Task.FromResult(Status()),
        "PING" => Task.FromResult(LegacyReply.Pong),
        _ => Task.FromResult(LegacyReply.Error($"Unknown message type: {request.Type} (this peer port answers CPU_TASK, SET_MEM, GET_MEM, PUT_FILE, GET_FILE, STATUS, PING)")),
    };

    // ---- CPU ----

    private async Task<LegacyReply> RunTaskAsync(LegacyRequest request, CancellationToken cancellationToken)
    {
        var spec = ReadTask(request);
        var taskId = request.Field("task_id") is { } id ? id.GetRawText() : null;

        JobInfo job;
        try
        {
            // The fast path: one call; a task that outlives the promotion threshold is followed by its grain.
            job = await Self.RunAsync(spec).ConfigureAwait(false);
            var handle = grains.GetJob(job.JobId);
            while (!job.IsTerminal)
            {
                cancellationToken.ThrowIfCancellationRequested();
                job = await handle.WaitAsync(WaitSlice).ConfigureAwait(false);
            }
        }
        catch (P2PShareException e)
        {
            // Refused or could not run anywhere (no peer with python, empty program, ...): a task
            // result with an error, as the original answered. Malformed fields were ERRORs above.
            return TaskResult(taskId, jobId: null, resultJson: null, error: e.Message, executedBy: null);
        }

        var executedBy = await endpoints.LegacyEndpointOfAsync(job.ExecutedBy).ConfigureAwait(false);
        return job.Status == JobStatus.Succeeded
            ? TaskResult(taskId, job.JobId, job.ResultJson ?? "null", error: null, executedBy)
            : TaskResult(taskId, job.JobId, resultJson: null, ErrorText(job), executedBy);
    }

    /// <summary><c>Kind: message</c>, as the CLI shows it (e.g. <c>TimedOut: ran longer than 2 s</c>).</summary>
    private static string ErrorText(JobInfo job)
    {
        var message = job.Error ?? job.Status.ToString();
        var kind = job.ErrorKind.ToString();
        return job.ErrorKind == TaskErrorKind.None || message.StartsWith(kind + ":", StringComparison.Ordinal) ? message : $"{kind}: {message}";
    }

    private TaskSpec ReadTask(LegacyRequest request)
    {
        var program = request.RequiredString("program");
        var function = request.OptionalString("function");
        var args = "[]";
        if (request.Field("args") is { } a)
        {
            if (a.ValueKind != JsonValueKind.Array) throw new LegacyProtocolException($"'args' of CPU_TASK must be an array, not {LegacyRequest.Describe(a.ValueKind)}");
            args = a.GetRawText();
        }

        var confidential = request.OptionalBool("confidential", false);
        _ = request.OptionalInteger("priority", int.MinValue, int.MaxValue); // accepted; the fair scheduler has no priorities
        var retries = request.OptionalInteger("max_retries", 0, ComputeOptions.MaxRetriesLimit);
        var timeout = request.OptionalNumber("timeout", 0.001, compute.MaxTimeout.TotalSeconds);
        var language = request.OptionalString("language") ?? options.DefaultLanguage;
        var canonical = TaskLanguages.Normalize(language)
            ?? throw new LegacyProtocolException($"unknown 'language' {language} (known: {string.Join(", ", TaskLanguages.All)})");

        // One submitter per client address: the scheduler shares CPU fairly between clients.
        var submitter = "legacy@" + HostOf(request.Remote);
        return new TaskSpec(program, string.IsNullOrEmpty(function) ? null : function, args, confidential,
            timeout is { } s ? TimeSpan.FromSeconds(s) : null, submitter, PinnedPeer: null,
            MaxRetries: retries is { } r ? (int)r : null, Language: canonical);
    }

    private static LegacyReply TaskResult(string? taskIdJson, string? jobId, string? resultJson, string? error, string? executedBy) =>
        new("CPU_RESULT", w =>
        {
            w.WritePropertyName("task_id");
            if (taskIdJson is not null) w.WriteRawValue(taskIdJson);
            else if (jobId is not null) w.WriteStringValue(jobId);
            else w.WriteNullValue();
            w.WritePropertyName("result");
            if (resultJson is not null) w.WriteRawValue(resultJson);
            else w.WriteNullValue();
            if (error is not null) w.WriteString("error", error);
            else w.WriteNull("error");
            if (executedBy is not null) w.WriteString("executed_by", executedBy);
            else w.WriteNull("executed_by");
            if (jobId is not null) w.WriteString("job_id", jobId);
        }, sizeHint: 256 + (resultJson?.Length ?? 0) + (error?.Length ?? 0));

    // ---- memory ----

    private async Task<LegacyReply> SetMemoryAsync(LegacyRequest request)
    {
        var key = request.RequiredString("key");
        // Stored as the JSON the client sent, so GET_MEM gives back an identical value.
        var value = request.Root.TryGetProperty("value", out var v) ? Encoding.UTF8.GetBytes(v.GetRawText()) : "null"u8.ToArray();
        await Self.SetAsync(key, value, ttl: null).ConfigureAwait(false);
        return LegacyReply.Status("OK", w =>
        {
            w.WriteString("operation", "SET_MEM");
            w.WriteString("key", key);
        });
    }

    private async Task<LegacyReply> GetMemoryAsync(LegacyRequest request)
    {
        var key = request.RequiredString("key");
        byte[]? value;
        try
        {
            value = await Self.GetAsync(key).ConfigureAwait(false);
        }
        catch (NotFoundException)
        {
            value = null;
        }

        return new LegacyReply("MEM_RESPONSE", w =>
        {
            w.WriteString("key", key);
            w.WritePropertyName("value");
            if (value is null) w.WriteNullValue();
            else MemoryValues.WriteAsJson(w, value);
            w.WriteBoolean("found", value is not null);
        }, sizeHint: 256 + (value?.Length ?? 0) * 2);
    }

    // ---- files ----

    private async Task<LegacyReply> PutFileAsync(LegacyRequest request, CancellationToken cancellationToken)
    {
        var name = request.RequiredString("filename");
        if (request.Field("data") is not { } data || data.ValueKind != JsonValueKind.String)
            throw new LegacyProtocolException("PUT_FILE needs 'data' (the file's bytes in base64, a string)");
        var file = Base64FileUpload.Of(data) ?? throw new LegacyProtocolException("'data' of PUT_FILE is not valid base64");
        if (file.Size > options.MaxFileBytes)
            throw new LegacyProtocolException($"file too large: {Bytes.Format(file.Size)}; this port takes files up to {Bytes.Format(options.MaxFileBytes)} (Legacy:MaxFileBytes)");

        var peer = Self;
        var ticket = await peer.BeginUploadAsync(name, file.Size).ConfigureAwait(false);
        // The request is counted already; its chunks in flight count too, like a GET_FILE's pieces.
        var reserved = file.Footprint(ticket.MaxChunkBytes);
        if (!await budget.TryAcquireAsync(reserved, options.StallTimeout, cancellationToken).ConfigureAwait(false))
        {
            await AbortQuietlyAsync(peer, ticket.UploadId).ConfigureAwait(false);
            return LegacyReply.Error($"the gateway is busy receiving other large messages ({Bytes.Format(budget.Used)} held); try again");
        }

        try
        {
            var sha256 = await file.SendAsync(peer, ticket).ConfigureAwait(false);
            await peer.CompleteUploadAsync(ticket.UploadId, sha256).ConfigureAwait(false);
        }
        catch
        {
            await AbortQuietlyAsync(peer, ticket.UploadId).ConfigureAwait(false);
            throw;
        }
        finally
        {
            budget.Release(reserved);
        }

        return LegacyReply.Status("OK", w =>
        {
            w.WriteString("operation", "PUT_FILE");
            w.WriteString("filename", name);
            w.WriteNumber("size", file.Size);
        });
    }

    private async Task<LegacyReply> GetFileAsync(LegacyRequest request, CancellationToken cancellationToken)
    {
        var name = request.RequiredString("filename");
        var peer = Self;
        DownloadTicket ticket;
        try
        {
            ticket = await peer.OpenDownloadAsync(name).ConfigureAwait(false);
        }
        catch (NotFoundException)
        {
            return new LegacyReply("FILE_RESPONSE", w =>
            {
                w.WriteString("filename", name);
                w.WriteBoolean("found", false);
            });
        }

        // The reply is streamed, so it holds a piece or two of the file, never all of it; those
        // count in the budget every large message shares. No room within the stall timeout: refused.
        var file = ticket.File;
        var reserved = Base64FileField.Footprint(file.Size, ticket.MaxChunkBytes);
        var acquired = file.Size <= options.MaxFileBytes
            && await budget.TryAcquireAsync(reserved, options.StallTimeout, cancellationToken).ConfigureAwait(false);
        var data = Base64FileField.Create(peer, ticket, budget, acquired ? reserved : 0);
        if (!acquired)
        {
            await data.DisposeAsync().ConfigureAwait(false);
            if (file.Size > options.MaxFileBytes)
                throw new LegacyProtocolException($"'{name}' is {Bytes.Format(file.Size)}; this port sends files up to {Bytes.Format(options.MaxFileBytes)} (Legacy:MaxFileBytes); use the p2pshare CLI");
            return LegacyReply.Error($"the gateway is busy sending other large replies ({Bytes.Format(budget.Used)} held); try again");
        }

        return new LegacyReply("FILE_RESPONSE", w =>
        {
            w.WriteString("filename", name);
            w.WriteBoolean("found", true);
            w.WriteNumber("size", file.Size);
            w.WriteString("sha256", file.Sha256);
        }, streamed: data);
    }

    private static async Task AbortQuietlyAsync(IPeerGrain peer, Guid uploadId)
    {
        try
        {
            await peer.AbortUploadAsync(uploadId).ConfigureAwait(false);
        }
        catch (P2PShareException)
        {
            // Already gone; idle sessions are reaped anyway.
        }
    }

    // ---- status ----

    private LegacyReply Status()
    {
        var report = reporter.Snapshot();
        var (ip, port) = LegacyEndpoints.Split(endpoint.Endpoint);
        return LegacyReply.Status("OK", w =>
        {
            w.WriteString("peer", identity.Name);
            w.WriteString("peer_ip", ip);
            w.WriteNumber("peer_port", port);
            w.WriteStartArray("runtimes");
            foreach (var runtime in report.Runtimes) w.WriteStringValue(runtime);
            w.WriteEndArray();
            w.WriteStartObject("scheduler");
            w.WriteString("type", "round_robin");
            w.WriteNumber("slots", report.Slots);
            w.WriteStartObject("stats");
            w.WriteNumber("queue_size", report.QueuedTasks);
            w.WriteNumber("running", report.RunningTasks);
            w.WriteNumber("current_load", Math.Round(report.CpuLoad, 4));
            w.WriteNumber("tasks_accepted", report.TasksAccepted);
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteStartObject("memory");
            w.WriteNumber("keys", report.MemoryKeys);
            w.WriteNumber("used_bytes", report.MemoryUsed);
            w.WriteNumber("quota_bytes", report.MemoryQuota);
            w.WriteEndObject();
            w.WriteStartObject("storage");
            w.WriteNumber("files", report.DiskFiles);
            w.WriteNumber("used_bytes", report.DiskUsed);
            w.WriteNumber("quota_bytes", report.DiskQuota);
            w.WriteEndObject();
        });
    }

    private static string HostOf(string remote)
    {
        var colon = remote.LastIndexOf(':');
        return colon > 0 ? remote[..colon] : remote;
    }
}

/// <summary>How memory values look on the seed protocol, where every value is JSON.</summary>
internal static class MemoryValues
{
    /// <summary>
    /// Writes a stored value as JSON: as itself when it is JSON (everything set through the seed
    /// protocol is), as a string when it is other UTF-8 text (e.g. <c>p2pshare mem set k hello</c>),
    /// and as base64 when it is binary.
    /// </summary>
    public static void WriteAsJson(Utf8JsonWriter writer, byte[] value)
    {
        if (IsJson(value))
        {
            writer.WriteRawValue(value, skipInputValidation: true);
            return;
        }

        if (Utf8.IsValid(value)) writer.WriteStringValue(Encoding.UTF8.GetString(value));
        else writer.WriteBase64StringValue(value);
    }

    private static bool IsJson(byte[] value)
    {
        if (value.Length == 0) return false;
        try
        {
            using var document = JsonDocument.Parse(value, new JsonDocumentOptions { MaxDepth = 64 });
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
