using System.ComponentModel;
using H2T.Inference;
using H2T.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class ServeSettings : InferenceSettings
{
    [CommandArgument(0, "<MODEL>")] [Description("an H2T.NET checkpoint (.ckpt) or an exported ONNX model (.onnx)")]
    public string Model { get; init; } = "";
    [CommandOption("--port <PORT>")] [Description("TCP port (default 8080; 0: a free one, printed)")]
    public int Port { get; init; } = 8080;
    [CommandOption("--host <ADDRESS>")] [Description(
        "address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")]
    public string Host { get; init; } = "127.0.0.1";
    [CommandOption("--runs <DIR>")] [Description(
        "also serve the page of the runs in DIR at /runs (tables, heat maps, galleries of missed tail images, an " +
        "upload form)")]
    public string? Runs { get; init; }
    [CommandOption("--max-batch <N>")] [Description("images per forward pass at most (default 32)")]
    public int MaxBatch { get; init; } = new ServeOptions().MaxBatch;
    [CommandOption("--batch-window-ms <MS>")] [Description(
        "how long a request waits for others to join its batch (default 5; 0: no batching)")]
    public double BatchWindowMs { get; init; } = new ServeOptions().BatchWindow.TotalMilliseconds;
    [CommandOption("--queue <N>")] [Description("images waiting at most; beyond it 503 with Retry-After (default 256)")]
    public int Queue { get; init; } = new ServeOptions().QueueLimit;
    [CommandOption("--timeout-ms <MS>")] [Description("a request not answered by then gets 504 (default 30000)")]
    public double TimeoutMs { get; init; } = new ServeOptions().RequestTimeout.TotalMilliseconds;
    [CommandOption("--max-image-mb <MB>")] [Description("one image's size at most; beyond it 413 (default 16)")]
    public double MaxImageMb { get; init; } = new ServeOptions().MaxImageBytes / 1048576.0;

    public override ValidationResult Validate() =>
        Port is < 0 or > 65535 ? ValidationResult.Error($"--port {Port}: expected 0-65535")
        : MaxBatch < 1 ? ValidationResult.Error($"--max-batch {MaxBatch}: expected >= 1")
        : BatchWindowMs < 0 ? ValidationResult.Error($"--batch-window-ms {BatchWindowMs}: expected >= 0")
        : Queue < 1 ? ValidationResult.Error($"--queue {Queue}: expected >= 1")
        : TimeoutMs <= 0 ? ValidationResult.Error($"--timeout-ms {TimeoutMs}: expected > 0")
        : MaxImageMb <= 0 ? ValidationResult.Error($"--max-image-mb {MaxImageMb}: expected > 0")
        : base.Validate();
}

/// <summary>Serves a model over HTTP until SIGTERM or Ctrl-C (then finishes the requests in flight).</summary>
public sealed class ServeCommand(IAnsiConsole console) : Command<ServeSettings>
{
    public override int Execute(CommandContext context, ServeSettings settings, CancellationToken cancellationToken)
    {
        var serve = new ServeOptions
        {
            MaxBatch = settings.MaxBatch, BatchWindow = TimeSpan.FromMilliseconds(settings.BatchWindowMs),
                QueueLimit = settings.Queue,
            RequestTimeout = TimeSpan.FromMilliseconds(settings.TimeoutMs),
                MaxImageBytes = (long)(settings.MaxImageMb * 1048576),
        };
        var model = new ClassifierOptions { Threads = settings.Threads, Precision = settings.PrecisionAsked,
            Engine = settings.EngineAsked, TestTime = settings.TestTimeAsked };
        var app = CommandSupport.Train(() => ClassifierHost.Build(settings.Model, settings.Host, settings.Port, model,
            serve, runsDir: settings.Runs));
        app.Start();
        var card = app.Services.GetService(typeof(ImageClassifier)) as ImageClassifier;
        console.MarkupLineParts(
            $"serving [bold]{card?.Card.ToString() ?? settings.Model}[/] on {card?.Engine} at ",
            $"{string.Join(", ", app.Urls)}");
        if (card?.Card.Preprocessing.Shape is { } shape)
        {
            var tta = card.TestTime?.Describe(shape.Height, shape.Width) ?? "test-time ensemble: off (1 view)";
            console.MarkupLineInterpolated($"  {tta} by default; per request: ?tta=1 / ?tta=0 / ?tta=tencrop");
        }
        console.MarkupLineParts(
            $"  POST {app.Urls.First()}/v1/predict   (curl --data-binary @cat.jpg -H 'Content-Type: image/jpeg' ...)");
        if (settings.Runs is not null) console.MarkupLineInterpolated($"  runs page: {app.Urls.First()}/runs");
        app.WaitForShutdown();
        // the batcher runs what is queued, then the model is freed
        app.DisposeAsync().AsTask().GetAwaiter().GetResult();
        console.MarkupLine("stopped: requests in flight finished");
        return 0;
    }
}
