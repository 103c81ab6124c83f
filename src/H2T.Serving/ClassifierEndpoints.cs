using System.Diagnostics;
using System.Text.Json;
using H2T.Data;
using H2T.Inference;
using H2T.Runs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Prometheus;

namespace H2T.Serving;

/// <summary>
/// A trained classifier as an HTTP service, for <c>h2t serve</c> and for users' own ASP.NET Core hosts:
/// <code>
/// builder.Services.AddImageClassifier("runs/stage2/best.ckpt");
/// var app = builder.Build();
/// app.MapImageClassifier();
/// </code>
/// Routes: POST /v1/predict (a raw image body, or multipart files; ?top_k=5; ?tta=1 / 0 / fivecrop / tencrop: LIFT's
/// test-time ensemble for this request, default the server's), GET /v1/model, /healthz, /readyz,
/// /metrics (Prometheus text) and /openapi/v1.json. Errors are JSON {"error", "status"} with the status a client can
/// act on (400, 413, 415, 503 + Retry-After, 504); an unknown route is a 404 naming the routes.
/// </summary>
public static class ClassifierEndpoints
{
    static readonly string[] ImageTypes = ["image/jpeg", "image/png", "image/webp", "image/bmp", "image/gif",
        "application/octet-stream"];

    /// <summary>
    /// Loads the model now (so a missing or damaged file fails at start, not at the first request) and registers it,
    /// its
    /// batcher, the metrics and the OpenAPI document. The container disposes the batcher (which runs what is queued)
    /// before the model.
    /// </summary>
    public static IServiceCollection AddImageClassifier(this IServiceCollection services, string modelPath,
        ClassifierOptions? model = null, ServeOptions? serve = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        serve ??= new ServeOptions();
        serve.Validate();
        var classifier = ImageClassifier.Load(modelPath, model);
        var metrics = new ServiceMetrics();
        services.AddSingleton(new ServedModel(modelPath, ModelFigures(modelPath)));
        services.AddSingleton(metrics);
        services.AddSingleton(_ => classifier);
        services.AddSingleton(sp => new PredictionBatcher(sp.GetRequiredService<ImageClassifier>(), serve, metrics));
        services.Configure<FormOptions>(o =>
        {
            o.MultipartBodyLengthLimit = serve.MaxImageBytes * serve.MaxFilesPerRequest + (1 << 20);
            o.ValueCountLimit = serve.MaxFilesPerRequest + 16;
        });
        services.AddOpenApi();
        return services;
    }

    /// <summary>What /v1/model says beside the card: the model file and, for a run's checkpoint, its test
    /// figures.</summary>
    internal sealed record ServedModel(string Path, object? Figures);

    public static IEndpointRouteBuilder MapImageClassifier(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var batcher = app.ServiceProvider.GetRequiredService<PredictionBatcher>();
        var metrics = app.ServiceProvider.GetRequiredService<ServiceMetrics>();
        var served = app.ServiceProvider.GetRequiredService<ServedModel>();
        var lifetime = app.ServiceProvider.GetService<IHostApplicationLifetime>();
        bool stopping = false;
        lifetime?.ApplicationStopping.Register(() => stopping = true);

        app.MapPost("/v1/predict", (HttpContext http, int? top_k, string? tta) => Counted(metrics, "/v1/predict",
            http, () => PredictAsync(http, batcher, top_k, tta)))
            .WithName("predict").WithSummary("Classify one image (raw body) or several (multipart/form-data files).")
            // No Accepts(...) metadata: it would make routing refuse other content types with a bare 404 before the
            // handler can answer 415 with a message.
            .Produces<PredictResponse>().Produces<ErrorResponse>(400).Produces<ErrorResponse>(
                413).Produces<ErrorResponse>(415)
            .Produces<ErrorResponse>(503).Produces<ErrorResponse>(504);
        app.MapGet("/v1/model", (Func<HttpContext, Task<IResult>>)(http => Counted(metrics, "/v1/model", http,
            () => Task.FromResult(Results.Json(Card(batcher, served))))))
            .WithName("model").WithSummary(
                "The model card: classes, preprocessing, architecture, engine, training figures.");
        app.MapGet("/healthz", (Func<HttpContext, Task<IResult>>)(http => Counted(metrics, "/healthz", http,
            () => Task.FromResult(Results.Json(new { status = "ok" })))))
            .WithName("healthz");
        app.MapGet("/readyz", (Func<HttpContext, Task<IResult>>)(http => Counted(metrics, "/readyz", http,
            () => Task.FromResult(
            stopping || batcher.Stopping ? Error(503,
                "shutting down: finishing the requests in flight") : Results.Json(new { status = "ready",
                queue = batcher.QueueDepth })))))
            .WithName("readyz");
        app.MapMetrics("/metrics", metrics.Registry);
        app.MapOpenApi();
        app.MapFallback((Func<HttpContext, Task<IResult>>)(http => Counted(metrics, "unmatched", http,
            () => Task.FromResult(
            Error(404,
                $"no route {http.Request.Method} {http.Request.Path}; the routes are POST /v1/predict, GET " +
                $"/v1/model, /healthz, /readyz, /metrics, /openapi/v1.json")))));
        return app;
    }

    /// <summary>GET /runs: the page of the runs under <paramref name="runsDir"/> (<see cref="Reporting.RunPage"/>),
    /// made at each
    /// request (runs may finish while the service runs), with a form that predicts through this service.</summary>
    public static IEndpointRouteBuilder MapRunPage(this IEndpointRouteBuilder app, string runsDir)
    {
        ArgumentNullException.ThrowIfNull(app);
        var metrics = app.ServiceProvider.GetRequiredService<ServiceMetrics>();
        var runs = Reporting.RunPage.Find(runsDir); // a missing folder fails at start
        app.MapGet("/runs", (Func<HttpContext, Task<IResult>>)(http => Counted(metrics, "/runs", http,
            () => Task.Run(() =>
        {
            var found = Reporting.RunPage.Find(runsDir);
            return found.Count == 0
                ? Error(404, $"no run folders (with metrics.json) under {runsDir}")
                : Results.Content(Reporting.RunPage.Build(found, $"Runs in {runsDir}", uploadForm: true),
                    "text/html; charset=utf-8");
        })))).WithName("runs").WithSummary(
            "The runs as a page: tables, per-class accuracy, confusion heat maps, galleries; an upload form.");
        return app;
    }

    /// <summary>The response of POST /v1/predict.</summary>
    public sealed record PredictResponse(string Model, string Engine, IReadOnlyList<ImagePrediction> Predictions)
    {
        /// <summary>Views per image whose logits were averaged: 1 without a test-time ensemble, else 5 or 10.</summary>
        public int Views { get; init; } = 1;
        /// <summary>The test-time ensemble's mode (fivecrop / tencrop), null when off.</summary>
        public string? Tta { get; init; }
    }
    public sealed record ImagePrediction(string? File, IReadOnlyList<ClassScore> Top);
    public sealed record ErrorResponse(string Error, int Status);

    static IResult Error(int status, string message) => Results.Json(new ErrorResponse(message, status),
        statusCode: status);

    static async Task<IResult> Counted(ServiceMetrics metrics, string route, HttpContext http,
        Func<Task<IResult>> handle)
    {
        var clock = Stopwatch.StartNew();
        var result = await handle().ConfigureAwait(false);
        int status = result is IStatusCodeHttpResult { StatusCode: { } s } ? s : 200;
        metrics.Requests.WithLabels(route, status.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();
        if (route == "/v1/predict") metrics.Latency.Observe(clock.Elapsed.TotalSeconds);
        if (status == 503) http.Response.Headers.RetryAfter = "1";
        return result;
    }

    static async Task<IResult> PredictAsync(HttpContext http, PredictionBatcher batcher, int? topK, string? tta)
    {
        var options = batcher.Options;
        var model = batcher.Model;
        int k = topK ?? 5;
        if (k < 1) return Error(400, $"top_k must be >= 1, got {k}");
        var testTime = model.TestTime;
        if (tta is not null && !TestTimeEnsemble.TryParse(tta, out testTime,
            model.TestTime?.Expand ?? TestTimeEnsemble.DefaultExpand))
            return Error(400, $"tta '{tta}': expected {TestTimeEnsemble.Expected}");
        var request = http.Request;
        var files = new List<(string? Name, byte[] Bytes)>();
        if (request.HasFormContentType)
        {
            IFormCollection form;
            try { form = await request.ReadFormAsync(http.RequestAborted).ConfigureAwait(false); }
            catch (InvalidDataException e) { return Error(413, $"multipart body: {e.Message}"); }
            if (form.Files.Count == 0) return Error(400,
                "multipart request with no files: send the images as file parts");
            if (form.Files.Count > options.MaxFilesPerRequest) return Error(413,
                $"{form.Files.Count} files in one request; at most {options.MaxFilesPerRequest}");
            foreach (var f in form.Files)
            {
                if (f.Length > options.MaxImageBytes) return Error(413,
                    $"{f.FileName}: {f.Length} bytes; at most {options.MaxImageBytes} per image");
                if (f.Length == 0) return Error(400, $"{f.FileName}: empty file");
                using var s = f.OpenReadStream();
                var bytes = new byte[f.Length];
                await s.ReadExactlyAsync(bytes, http.RequestAborted).ConfigureAwait(false);
                files.Add((f.FileName, bytes));
            }
        }
        else
        {
            var type = request.ContentType?.Split(';')[0].Trim().ToLowerInvariant();
            if (type is null || !ImageTypes.Contains(type))
                return Error(415,
                    $"content type '{request.ContentType ?? "(none)"}': expected an image body (image/jpeg, " +
                    $"image/png, ...) or multipart/form-data");
            if (request.ContentLength > options.MaxImageBytes) return Error(413,
                $"body of {request.ContentLength} bytes; at most {options.MaxImageBytes} per image");
            using var body = new MemoryStream();
            var buffer = new byte[81920];
            int n;
            while ((n = await request.Body.ReadAsync(buffer, http.RequestAborted).ConfigureAwait(false)) > 0)
            {
                body.Write(buffer, 0, n);
                if (body.Length > options.MaxImageBytes) return Error(413,
                    $"body over {options.MaxImageBytes} bytes, the limit per image");
            }
            if (body.Length == 0) return Error(400, "empty body: send the image's bytes");
            files.Add((null, body.ToArray()));
        }
        var plan = model.Card.Preprocessing.Plan;
        var images = new byte[files.Count][];
        for (int i = 0; i < files.Count; i++)
        {
            images[i] = new byte[plan.Output.Size];
            try
            {
                using var s = new MemoryStream(files[i].Bytes, writable: false);
                ImageDecoder.Decode(s, plan, images[i], files[i].Name ?? "request body");
            }
            catch (DataFormatException e) { return Error(400, e.Message); }
        }
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
        timeout.CancelAfter(options.RequestTimeout);
        try
        {
            var predictions = await batcher.SubmitAsync(images, k, testTime,
                timeout.Token).WaitAsync(timeout.Token).ConfigureAwait(false);
            return Results.Json(new PredictResponse(model.Card.Architecture, model.Engine,
                [.. predictions.Select((p, i) => new ImagePrediction(files[i].Name, p.Top))])
            {
                Views = testTime?.ViewCount ?? 1,
                Tta = testTime is null ? null : TestTimeEnsemble.Modes.Names[(int)testTime.Mode],
            });
        }
        catch (QueueFullException e) { return Error(503, e.Message); }
        catch (ServiceStoppingException e) { return Error(503, e.Message); }
        catch (OperationCanceledException) when (!http.RequestAborted.IsCancellationRequested)
        {
            return Error(504,
                $"not answered within {options.RequestTimeout.TotalMilliseconds:F0} ms (the queue held " +
                $"{batcher.QueueDepth} images)");
        }
    }

    static object Card(PredictionBatcher batcher, ServedModel served)
    {
        var card = batcher.Model.Card;
        var o = batcher.Options;
        return new
        {
            file = served.Path, architecture = card.Architecture, classifier = card.Classifier, dataset = card.Dataset,
                stage = card.Stage,
            precision = card.Precision, engine = batcher.Model.Engine, classes = card.ClassNames,
                preprocessing = card.Preprocessing,
            tta = batcher.Model.TestTime is { } t
                ? new { mode = TestTimeEnsemble.Modes.Names[(int)t.Mode], views = t.ViewCount, expand = t.Expand }
                : null,
            input = ModelCard.InputDescription, training = served.Figures,
            batching = new { max_batch = o.MaxBatch, window_ms = o.BatchWindow.TotalMilliseconds,
                queue_limit = o.QueueLimit, timeout_ms = o.RequestTimeout.TotalMilliseconds,
                max_image_bytes = o.MaxImageBytes },
        };
    }

    /// <summary>A checkpoint's own record (stage, epochs, best top-1) and, when it sits in a run folder, that run's
    /// final
    /// test figures (final-eval.json): Head / Medium / Tail / All.</summary>
    static object? ModelFigures(string path)
    {
        if (!Checkpoint.HasMagic(path)) return null;
        var meta = Checkpoint.ReadMeta(path);
        var finalEval = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!,
            "final-eval.json");
        JsonElement? final = null;
        if (File.Exists(finalEval))
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(finalEval));
            var r = doc.RootElement;
            double Get(string name) => r.TryGetProperty(name,
                out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN;
            final = JsonSerializer.SerializeToElement(new { top1 = Get("top1"), head = Get("head"),
                medium = Get("medium"), tail = Get("tail"), ece = Get("ece") });
        }
        return new { stage = meta.Stage, epoch = meta.Epoch + 1, total_epochs = meta.TotalEpochs,
            best_top1 = meta.BestTop1, class_counts = meta.ClassCounts, final_test = final };
    }
}
