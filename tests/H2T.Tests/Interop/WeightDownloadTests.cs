using System.Net;
using System.Net.Sockets;
using H2T.Interop;
using H2T.Models;
using H2T.Settings;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using H2T.Tests.Training;
using Xunit.Abstractions;

namespace H2T.Tests.Interop;

/// <summary>
/// Weights by name, downloaded from a loopback HTTP server this test starts (nothing leaves the machine): torchvision's
/// files into $TORCH_HOME/hub/checkpoints with the sha256 prefix checked, the hub's model.safetensors into the Hugging
/// Face cache layout with its sha256 checked; a 404, a wrong hash, a truncated body, a redirect and a refused
/// connection. The files served are torchvision's resnet18 as torch.save writes it and its state dict as safetensors.
/// </summary>
[Collection(ProcessEnvironment.Name)]
public sealed class WeightDownloadTests(ITestOutputHelper output)
{
    /// <summary>A loopback server: path to handler; it records the paths asked for.</summary>
    sealed class Server : IDisposable
    {
        readonly HttpListener listener = new();
        readonly Dictionary<string, Action<HttpListenerContext>> routes;
        public List<string> Requests { get; } = [];
        public string Url { get; }

        public Server(Dictionary<string, Action<HttpListenerContext>> routes)
        {
            this.routes = routes;
            int port = FreePort();
            Url = $"http://127.0.0.1:{port}";
            listener.Prefixes.Add(Url + "/");
            listener.Start();
            _ = Task.Run(Loop);
        }

        async Task Loop()
        {
            while (listener.IsListening)
            {
                HttpListenerContext c;
                try { c = await listener.GetContextAsync(); }
                catch (Exception) { return; }
                var path = c.Request.Url!.AbsolutePath;
                lock (Requests) Requests.Add($"{c.Request.HttpMethod} {path}");
                try
                {
                    if (routes.TryGetValue(path, out var handle)) handle(c);
                    else { c.Response.StatusCode = 404; c.Response.Close(); }
                }
                catch (Exception) { try { c.Response.Abort(); } catch (ObjectDisposedException) { } }
            }
        }

        public void Dispose() => listener.Close();
    }

    static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    static Action<HttpListenerContext> File200(string path) => c =>
    {
        var bytes = File.ReadAllBytes(path);
        c.Response.ContentLength64 = bytes.Length;
        if (c.Request.HttpMethod != "HEAD") c.Response.OutputStream.Write(bytes);
        c.Response.Close();
    };

    static Action<HttpListenerContext> Truncated(string path) => c =>
    {
        var bytes = File.ReadAllBytes(path);
        c.Response.ContentLength64 = bytes.Length;
        c.Response.OutputStream.Write(bytes, 0, bytes.Length / 3);
        c.Response.OutputStream.Flush();
        c.Response.Abort(); // the connection drops with two thirds unsent
    };

    static Action<HttpListenerContext> Redirect(string to, Dictionary<string, string>? headers = null) => c =>
    {
        c.Response.StatusCode = 302;
        c.Response.RedirectLocation = to;
        foreach (var (k, v) in headers ?? []) c.Response.AddHeader(k, v);
        c.Response.Close();
    };

    sealed class Env : IDisposable
    {
        readonly Dictionary<string, string?> saved = [];
        public Env(params (string Key, string? Value)[] values)
        {
            foreach (var (k, v) in values)
            {
                saved[k] = Environment.GetEnvironmentVariable(k);
                Environment.SetEnvironmentVariable(k, v);
            }
        }
        public void Dispose()
        {
            foreach (var (k, v) in saved) Environment.SetEnvironmentVariable(k, v);
        }
    }

    [RequiresPyTorchFact]
    public void TorchvisionWeightsDownloadIntoTorchHomeVerifiedAndTheBadCasesSaySo()
    {
        var fixtures = PyTorchFixtures.TorchvisionFolder();
        var pth = Path.Combine(fixtures, "resnet18.pth");
        var prefix = WeightDownloads.Sha256(pth)[..8];
        var good = $"resnet18-{prefix}.pth";
        WeightDownloads.AddTorchvisionVariant("resnet18", "LOOPBACK", good);
        WeightDownloads.AddTorchvisionVariant("resnet18", "LOOPBACKMISSING", "resnet18-0123abcd.pth");
        WeightDownloads.AddTorchvisionVariant("resnet18", "LOOPBACKCUT",
            $"resnet18-{WeightDownloads.Sha256(Path.Combine(fixtures, "resnet34.pth"))[..8]}.pth");
        using var home = new TempDir();
        using var server = new Server(new()
        {
            [$"/models/{good}"] = File200(pth),
            // torchvision's real name: our file does not have that hash
            ["/models/resnet18-f37072fd.pth"] = File200(pth),
            [$"/models/{WeightDownloads.TorchvisionEntry("torchvision:resnet18.LOOPBACKCUT").File}"] =
                Truncated(Path.Combine(fixtures, "resnet34.pth")),
            [$"/moved/{good}"] = Redirect($"/models/{good}"),
        });
        var checkpoints = Path.Combine(home.Path, "hub", "checkpoints");
        using var env = new Env(("TORCH_HOME", home.Path), ("H2T_TORCHVISION_URL", server.Url + "/moved"));

        // Through a redirect; progress reported; the file lands under torchvision's name, whole.
        var reports = new List<DownloadProgress>();
        var source = PretrainedBackbone.Resolve("torchvision:resnet18.LOOPBACK", new SyncProgress(reports.Add));
        Assert.Equal(Path.Combine(checkpoints, good), source.Path);
        Assert.Equal(File.ReadAllBytes(pth), File.ReadAllBytes(source.Path));
        Assert.Equal("resnet18", source.Architecture);
        Assert.True(reports.Count >= 2 && reports[^1].Bytes == new FileInfo(pth).Length, string.Join("; ", reports));
        output.WriteLine(PretrainedBackbone.Describe(reports[^1]));
        Assert.Contains("100%", PretrainedBackbone.Describe(reports[^1]));
        Assert.Contains($"GET /moved/{good}", server.Requests);
        using (var backbone = ModelFactory.CreateBackbone("resnet18", 3))
        {
            var lines = PretrainedBackbone.Load(source, backbone, 10);
            Assert.Contains(lines, l => l.StartsWith("pretrained backbone: 120 tensor(s) loaded",
                StringComparison.Ordinal));
            using var other = ModelFactory.CreateBackbone("resnet50", 3);
            Assert.Contains("pass --backbone resnet18",
                Assert.Throws<ConfigException>(() => PretrainedBackbone.Load(source, other, 10)).Message);
        }

        // Cached: used again with no request (a PyTorch user's file is used the same way).
        int before = server.Requests.Count;
        Assert.Equal(source.Path, PretrainedBackbone.Resolve("torchvision:resnet18.LOOPBACK").Path);
        Assert.Equal(before, server.Requests.Count);

        Environment.SetEnvironmentVariable("H2T_TORCHVISION_URL", server.Url + "/models");
        // A file whose sha256 does not start with the prefix in its name is refused and not kept.
        var wrong = Assert.Throws<ConfigException>(() => PretrainedBackbone.Resolve("torchvision:resnet18")).Message;
        output.WriteLine(wrong);
        Assert.Contains("does not start with f37072fd", wrong);
        Assert.False(File.Exists(Path.Combine(checkpoints, "resnet18-f37072fd.pth")));

        var missing = Assert.Throws<ConfigException>(() =>
            PretrainedBackbone.Resolve("torchvision:resnet18.LOOPBACKMISSING")).Message;
        output.WriteLine(missing);
        Assert.Contains("HTTP 404", missing);

        var cut = Assert.Throws<ConfigException>(() =>
            PretrainedBackbone.Resolve("torchvision:resnet18.LOOPBACKCUT")).Message;
        output.WriteLine(cut);
        Assert.Contains("nothing was written", cut);
        Assert.Equal([good], Directory.GetFiles(checkpoints).Select(Path.GetFileName));

        // No server at all: one message with the URL and the place for the file.
        Environment.SetEnvironmentVariable("H2T_TORCHVISION_URL", $"http://127.0.0.1:{FreePort()}/models");
        var offline = Assert.Throws<ConfigException>(() => PretrainedBackbone.Resolve("torchvision:resnet34")).Message;
        output.WriteLine(offline);
        Assert.Contains("could not download http://127.0.0.1:", offline);
        Assert.Contains($"place it at {Path.Combine(checkpoints, "resnet34-b627a593.pth")}", offline);

        var unknown = Assert.Throws<ConfigException>(() => PretrainedBackbone.Resolve("torchvision:resnet9")).Message;
        Assert.Contains("torchvision:resnet50.IMAGENET1K_V2", unknown);
    }

    [RequiresPyTorchFact]
    public void HubSafetensorsDownloadIntoTheHuggingFaceCacheLayoutVerified()
    {
        var fixtures = PyTorchFixtures.TorchvisionFolder();
        var st = Path.Combine(fixtures, "resnet18.safetensors");
        var sha = WeightDownloads.Sha256(st);
        const string commit = "0123456789abcdef0123456789abcdef01234567";
        using var home = new TempDir();
        using var server = new Server(new()
        {
            // As the hub does: the resolve URL carries the commit and the LFS sha256, and redirects to storage.
            ["/timm/resnet18.tv_in1k/resolve/main/model.safetensors"] = Redirect($"/cdn/{sha}",
                new() { ["X-Repo-Commit"] = commit, ["X-Linked-Etag"] = $"\"{sha}\"", ["ETag"] = "\"abc\"" }),
            [$"/cdn/{sha}"] = File200(st),
            [$"/timm/resnet18.tv_in1k/resolve/{commit}/model.safetensors"] = Redirect($"/cdn/{sha}",
                new() { ["X-Repo-Commit"] = commit, ["X-Linked-Etag"] = $"\"{sha}\"" }),
            [$"/timm/broken/resolve/{commit}/model.safetensors"] = Redirect($"/cdn/{sha}"),
            ["/timm/broken/resolve/main/model.safetensors"] = Redirect($"/cdn/{sha}",
                new() { ["X-Repo-Commit"] = commit, ["X-Linked-Etag"] = $"\"{new string('0', 64)}\"" }),
        });
        using var env = new Env(("HF_HOME", home.Path), ("HF_HUB_CACHE", null), ("HF_ENDPOINT", server.Url));
        var source = PretrainedBackbone.Resolve("hf-hub:timm/resnet18.tv_in1k");
        var folder = Path.Combine(home.Path, "hub", "models--timm--resnet18.tv_in1k");
        Assert.Equal(Path.Combine(folder, "snapshots", commit, "model.safetensors"), source.Path);
        Assert.Equal(commit, File.ReadAllText(Path.Combine(folder, "refs", "main")));
        Assert.True(File.Exists(Path.Combine(folder, "blobs", sha)));
        Assert.NotNull(new FileInfo(source.Path).LinkTarget); // a symlink into blobs/, as huggingface_hub makes
        Assert.Equal("safetensors", source.Kind);

        using (var backbone = ModelFactory.CreateBackbone("resnet18", 3))
        {
            var lines = PretrainedBackbone.Load(source, backbone, 10);
            foreach (var l in lines) output.WriteLine(l);
            Assert.Contains(lines, l => l.Contains("format pt", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.Contains("its fc is [1000, 512]", StringComparison.Ordinal));
            // The same numbers as torchvision's torch.save of that network.
            using var weights = PyTorchWeights.Read(Path.Combine(fixtures, "resnet18.pth"));
            var mine = backbone.state_dict();
            foreach (var (k, t) in weights.Backbone)
                Assert.True(mine[k].equal(t).all().item<bool>(), k);
        }

        int before = server.Requests.Count;
        Assert.Equal(source.Path, PretrainedBackbone.Resolve("hf-hub:timm/resnet18.tv_in1k").Path);
        Assert.Equal(before, server.Requests.Count);

        // A deleted blob leaves the snapshot link broken: fetched again, not returned.
        File.Delete(Path.Combine(folder, "blobs", sha));
        Assert.Equal(source.Path, PretrainedBackbone.Resolve("hf-hub:timm/resnet18.tv_in1k").Path);
        Assert.Equal(File.ReadAllBytes(st), File.ReadAllBytes(source.Path));
        Assert.Contains($"GET /timm/resnet18.tv_in1k/resolve/{commit}/model.safetensors", server.Requests);

        var wrong = Assert.Throws<ConfigException>(() => PretrainedBackbone.Resolve("hf-hub:timm/broken")).Message;
        output.WriteLine(wrong);
        Assert.Contains("is not the hub's 0000", wrong);
        Assert.False(Directory.Exists(Path.Combine(home.Path, "hub", "models--timm--broken", "snapshots")));

        // A truncated or non-safetensors file is named.
        using var dir = new TempDir();
        var bytes = File.ReadAllBytes(st);
        var cut = dir.Write("cut.safetensors", bytes[..(bytes.Length / 2)]);
        using var b = ModelFactory.CreateBackbone("resnet18", 3);
        var message = Assert.Throws<H2T.Data.DataFormatException>(() => PretrainedBackbone.Load(cut, b, 10)).Message;
        output.WriteLine(message);
        Assert.Contains("cut.safetensors: tensor '", message);
        Assert.Contains("truncated", message);
    }

    [RequiresPyTorchFact]
    public void Stage1DownloadsByNameFromTheCommandLine()
    {
        var fixtures = PyTorchFixtures.TorchvisionFolder();
        var pth = Path.Combine(fixtures, "resnet18.pth");
        var good = $"resnet18-{WeightDownloads.Sha256(pth)[..8]}.pth";
        WeightDownloads.AddTorchvisionVariant("resnet18", "LOOPBACK", good);
        using var home = new TempDir();
        using var server = new Server(new() { [$"/models/{good}"] = File200(pth) });
        using var env = new Env(("TORCH_HOME", home.Path), ("H2T_TORCHVISION_URL", server.Url + "/models"));
        using var data = new TempDir();
        DataTestFiles.ExtractCifarJpgSample(data.Path, perClass: 4);
        using var runs = new TempDir();
        var run = Path.Combine(runs.Path, "tv");
        var (rc, text) = CliRunner.Run("stage1", "--dataset", "cifar10-jpg", "--data", data.Path, "--imb-factor", "2",
            "--backbone", "resnet18",
            "--pretrained", "torchvision:resnet18.LOOPBACK", "--trainable", "layer4", "--epochs", "1", "--batch-size",
                "8", "--mixup", "0",
            "--out", run, "--threads", "2");
        Assert.True(rc == 0, text);
        Assert.Contains("download [####################] 100%", text);
        var log = File.ReadAllText(Path.Combine(run, "log.txt"));
        Assert.Contains("pretrained backbone: 120 tensor(s) loaded", log);
        // torchvision's normalisation, recorded for the later stages
        Assert.Contains("mean [0.485, 0.456, 0.406]", log);
    }
}

/// <summary>IProgress that reports on the caller's thread (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class SyncProgress(Action<DownloadProgress> report) : IProgress<DownloadProgress>
{
    public void Report(DownloadProgress value) => report(value);
}

/// <summary>Tests that set process-wide environment variables run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessEnvironment
{
    public const string Name = "process environment";
}
