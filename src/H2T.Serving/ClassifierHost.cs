using H2T.Inference;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace H2T.Serving;

/// <summary>
/// <c>h2t serve</c>'s host: Kestrel on one address, the classifier's routes, console logging of warnings only. On
/// SIGTERM / Ctrl-C the host stops taking connections, finishes the requests in flight (the batcher keeps running
/// until the server has drained), then disposes the batcher and the model.
/// </summary>
public static class ClassifierHost
{
    /// <param name="port">0 picks a free port (<see cref="WebApplication.Urls"/> says which once started).</param>
    /// <param name="runsDir">Also serve the page of the runs in this folder at /runs.</param>
    public static WebApplication Build(string modelPath, string host, int port, ClassifierOptions? model = null,
        ServeOptions? serve = null,
        TimeSpan? shutdownTimeout = null, string? runsDir = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        // the routes check sizes themselves (413 with a message)
        builder.WebHost.UseKestrel(k => k.Limits.MaxRequestBodySize = null);
        builder.WebHost.UseUrls($"http://{(host.Contains(':', StringComparison.Ordinal) ? $"[{host}]" : host)}:{port}");
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = shutdownTimeout ?? TimeSpan.FromSeconds(30));
        builder.Services.AddImageClassifier(modelPath, model, serve);
        var app = builder.Build();
        if (runsDir is not null) app.MapRunPage(runsDir);
        app.MapImageClassifier();
        return app;
    }
}
