using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using H2T.Cli;
using H2T.Inference;
using H2T.Serving;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using H2T.Tests.Inference;
using Microsoft.AspNetCore.Builder;

namespace H2T.Tests.Serving;

/// <summary><c>h2t serve</c>'s service on a real Kestrel on loopback, over the committed CIFAR-10 test JPEGs.</summary>
public sealed class ClassifierServiceTests : IDisposable
{
    readonly TempDir dir = new();
    readonly string checkpoint;
    readonly string[] images = InferenceFixtures.TestImages();

    public ClassifierServiceTests() => checkpoint = InferenceFixtures.Checkpoint(dir.Path, "resnet8", "linear",
        seed: 5);

    public void Dispose() => dir.Dispose();

    static async Task<(WebApplication App, HttpClient Http)> Start(string model, ServeOptions? serve = null)
    {
        var app = ClassifierHost.Build(model, "127.0.0.1", 0, new ClassifierOptions { Threads = 2 }, serve);
        await app.StartAsync();
        return (app, new HttpClient { BaseAddress = new Uri(app.Urls.First()) });
    }

    static ByteArrayContent Jpeg(string path)
    {
        var c = new ByteArrayContent(File.ReadAllBytes(path));
        c.Headers.ContentType = new MediaTypeHeaderValue("image/jpeg");
        return c;
    }

    static async Task<JsonElement> Json(HttpResponseMessage r) =>
        JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.Clone();

    [Fact]
    public async Task PredictsAsTheLibraryDoesFromARawBodyAndFromMultipartFiles()
    {
        var (app, http) = await Start(checkpoint);
        await using var running = app;
        using var library = ImageClassifier.Load(checkpoint);
        var r = await http.PostAsync("/v1/predict?top_k=3", Jpeg(images[0]));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var top = (await Json(r)).GetProperty("predictions")[0].GetProperty("top");
        Assert.Equal(3, top.GetArrayLength());
        var expected = library.Predict(images[0], 3);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(expected.Top[i].Index, top[i].GetProperty("index").GetInt32());
            Assert.Equal(expected.Top[i].Name, top[i].GetProperty("name").GetString());
            Assert.Equal(expected.Top[i].Probability, top[i].GetProperty("probability").GetDouble(), 1e-5);
        }
        using var form = new MultipartFormDataContent();
        foreach (var p in images[10..13]) form.Add(Jpeg(p), "images", Path.GetFileName(p));
        r = await http.PostAsync("/v1/predict", form);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var rows = (await Json(r)).GetProperty("predictions");
        Assert.Equal(3, rows.GetArrayLength());
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(Path.GetFileName(images[10 + i]), rows[i].GetProperty("file").GetString());
            Assert.Equal(library.Predict(images[10 + i]).Best.Index,
                rows[i].GetProperty("top")[0].GetProperty("index").GetInt32());
        }
        // The card, health, readiness, metrics and the OpenAPI document.
        var card = await Json(await http.GetAsync("/v1/model"));
        Assert.Equal("resnet8", card.GetProperty("architecture").GetString());
        Assert.Equal(10, card.GetProperty("classes").GetArrayLength());
        Assert.Equal(32, card.GetProperty("preprocessing").GetProperty("height").GetInt32());
        Assert.Equal("stage2", card.GetProperty("training").GetProperty("stage").GetString());
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/readyz")).StatusCode);
        var metrics = await http.GetStringAsync("/metrics");
        Assert.Contains("h2t_requests_total{route=\"/v1/predict\",status=\"200\"} 2", metrics);
        Assert.Contains("h2t_batch_size_sum 4", metrics);
        Assert.Contains("h2t_resident_memory_bytes", metrics);
        Assert.Contains("h2t_queue_depth 0", metrics);
        var openapi = await Json(await http.GetAsync("/openapi/v1.json"));
        Assert.True(openapi.GetProperty("paths").TryGetProperty("/v1/predict", out var _));
    }

    [Fact]
    public async Task BadRequestsGetAStatusAndAMessageAndTheServiceKeepsServing()
    {
        var small = new ServeOptions { MaxImageBytes = 1000, MaxFilesPerRequest = 2 };
        var (app, http) = await Start(checkpoint, small);
        await using var running = app;
        var big = images.First(p => new FileInfo(p).Length > 1000);
        var tiny = images.First(p => new FileInfo(p).Length <= 1000);
        ByteArrayContent Raw(byte[] b, string? type)
        {
            var c = new ByteArrayContent(b);
            if (type is not null) c.Headers.ContentType = new MediaTypeHeaderValue(type);
            return c;
        }
        MultipartFormDataContent Files(int n)
        {
            var f = new MultipartFormDataContent();
            for (int i = 0; i < n; i++) f.Add(Jpeg(tiny), "images", $"t{i}.jpg");
            return f;
        }
        var cases = new (string What, Func<Task<HttpResponseMessage>> Send, HttpStatusCode Status, string Says)[]
        {
            ("empty body", () => http.PostAsync("/v1/predict", Raw([], "image/jpeg")), HttpStatusCode.BadRequest,
                "empty body"),
            ("not an image", () => http.PostAsync("/v1/predict", Raw("this is not a jpeg"u8.ToArray(), "image/jpeg")),
                HttpStatusCode.BadRequest, "not a decodable image"),
            ("a truncated JPEG", () => http.PostAsync("/v1/predict", Raw(File.ReadAllBytes(tiny)[..200], "image/jpeg")),
                HttpStatusCode.BadRequest, "request body"),
            ("text/plain", () => http.PostAsync("/v1/predict", Raw("hello"u8.ToArray(), "text/plain")),
                HttpStatusCode.UnsupportedMediaType, "content type 'text/plain'"),
            ("no content type", () => http.PostAsync("/v1/predict", Raw(File.ReadAllBytes(tiny), null)),
                HttpStatusCode.UnsupportedMediaType, "(none)"),
            ("over the size limit", () => http.PostAsync("/v1/predict", Jpeg(big)),
                HttpStatusCode.RequestEntityTooLarge, "at most 1000"),
            ("multipart without files", () => http.PostAsync("/v1/predict",
                new MultipartFormDataContent { { new StringContent("x"), "note" } }), HttpStatusCode.BadRequest,
                "no files"),
            ("too many files", () => http.PostAsync("/v1/predict", Files(3)), HttpStatusCode.RequestEntityTooLarge,
                "at most 2"),
            ("top_k 0", () => http.PostAsync("/v1/predict?top_k=0", Jpeg(tiny)), HttpStatusCode.BadRequest,
                "top_k must be >= 1"),
            ("unknown route", () => http.GetAsync("/v2/predict"), HttpStatusCode.NotFound, "no route GET /v2/predict"),
        };
        foreach (var (what, send, status, says) in cases)
        {
            var r = await send();
            var body = await r.Content.ReadAsStringAsync();
            Assert.True(r.StatusCode == status, $"{what}: {(int)r.StatusCode} {body}");
            Assert.Contains(says, body);
            Assert.Equal((int)status, JsonDocument.Parse(body).RootElement.GetProperty("status").GetInt32());
        }
        // Still serving.
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync("/v1/predict", Jpeg(tiny))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync("/v1/predict", Files(2))).StatusCode);
        Assert.Contains("h2t_requests_total{route=\"/v1/predict\",status=\"415\"} 2",
            await http.GetStringAsync("/metrics"));
    }

    [Fact]
    public async Task ConcurrentRequestsShareForwardPassesAndAFullQueueSays503()
    {
        var (app, http) = await Start(checkpoint, new ServeOptions { MaxBatch = 16,
            BatchWindow = TimeSpan.FromMilliseconds(100) });
        await using (app)
        {
            var answers = await Task.WhenAll(images[..32].Select(p => http.PostAsync("/v1/predict", Jpeg(p))));
            Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.StatusCode));
            var metrics = await http.GetStringAsync("/metrics");
            int passes = int.Parse(Line(metrics, "h2t_batch_size_count"),
                System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal("32", Line(metrics, "h2t_batch_size_sum"));
            Assert.True(passes < 32, $"32 concurrent requests took {passes} forward passes: no batching");
        }
        // A queue of 4 images, and a window long enough that the first batch is still forming when the rest arrive.
        var (full, client) = await Start(checkpoint, new ServeOptions { MaxBatch = 64, QueueLimit = 4,
            BatchWindow = TimeSpan.FromMilliseconds(1500) });
        await using (full)
        {
            var answers = await Task.WhenAll(images[..8].Select(p => client.PostAsync("/v1/predict", Jpeg(p))));
            Assert.Equal(4, answers.Count(a => a.StatusCode == HttpStatusCode.OK));
            var refused = answers.Where(a => a.StatusCode == HttpStatusCode.ServiceUnavailable).ToList();
            Assert.Equal(4, refused.Count);
            Assert.All(refused, a => Assert.Equal("1",
                a.Headers.RetryAfter?.Delta?.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Assert.Contains("queue is full", await refused[0].Content.ReadAsStringAsync());
        }
        // A request that waits longer than its timeout gets 504.
        var (slow, c3) = await Start(checkpoint, new ServeOptions { BatchWindow = TimeSpan.FromMilliseconds(800),
            RequestTimeout = TimeSpan.FromMilliseconds(100) });
        await using (slow)
        {
            var r = await c3.PostAsync("/v1/predict", Jpeg(images[0]));
            Assert.Equal(HttpStatusCode.GatewayTimeout, r.StatusCode);
            Assert.Contains("not answered within 100 ms", await r.Content.ReadAsStringAsync());
        }
    }

    static string Line(string metrics, string name) =>
        metrics.Split('\n').First(l => l.StartsWith(name + " ", StringComparison.Ordinal))[(name.Length + 1)..].Trim();

    [Fact]
    public void AMissingOrDamagedModelExitsTwoWithOneLine()
    {
        var damaged = Path.Combine(dir.Path, "damaged.ckpt");
        File.WriteAllBytes(damaged, File.ReadAllBytes(checkpoint)[..4000]);
        foreach (var (model, says) in new[] { (Path.Combine(dir.Path, "none.ckpt"), "model not found"), (damaged,
            "truncated") })
        {
            var (rc, output) = CliRunner.Run("serve", model, "--port", "0");
            Assert.True(rc == CliApp.UsageError, output);
            Assert.Contains(says, output);
            Assert.Single(output.Trim().Split('\n'), l => l.StartsWith("error:", StringComparison.Ordinal));
        }
    }

    /// <summary>The real command in its own process: SIGTERM while requests are in flight; they are answered, then it
    /// exits 0.</summary>
    [Fact]
    public async Task SigtermFinishesTheRequestsInFlightThenExits()
    {
        var cli = Path.Combine(Path.GetDirectoryName(typeof(CliApp).Assembly.Location)!, "h2t.dll");
        int port = FreePort();
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true,
            UseShellExecute = false };
        foreach (var a in new[] { cli, "serve", checkpoint, "--port",
            port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--batch-window-ms", "1500", "--threads",
            "2" })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        var ready = Stopwatch.StartNew();
        while (true)
        {
            try { if ((await http.GetAsync("/readyz")).IsSuccessStatusCode) break; }
            catch (HttpRequestException) when (ready.Elapsed < TimeSpan.FromSeconds(60) &&
                !p.HasExited) { await Task.Delay(200); }
        }
        // Three requests join a batch that waits 1.5 s to form; SIGTERM arrives while they wait.
        var inFlight = images[..3].Select(i => http.PostAsync("/v1/predict", Jpeg(i))).ToArray();
        await Task.Delay(300);
        Assert.Equal(0, Kill(p.Id, 15)); // SIGTERM, as Slurm, Kubernetes and systemd send it
        var answers = await Task.WhenAll(inFlight);
        Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.StatusCode));
        Assert.True(p.WaitForExit(30000), "h2t serve did not exit after SIGTERM");
        Assert.Equal(0, p.ExitCode);
        Assert.Contains("stopped: requests in flight finished", await stdout + await stderr);
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    static extern int Kill(int pid, int signal);

    static int FreePort()
    {
        using var l = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
