using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using H2T.Settings;

namespace H2T.Interop;

/// <summary>How far a download is: bytes so far and the total when the server said it.</summary>
public readonly record struct DownloadProgress(string Url, long Bytes, long? Total);

/// <summary>
/// Pretrained weights by name, downloaded once into the caches their users already have:
/// <list type="bullet">
/// <item><c>torchvision:ARCH[.VARIANT]</c> (e.g. <c>torchvision:resnet50</c>,
/// <c>torchvision:resnet50.IMAGENET1K_V1</c>):
/// torchvision's weight files, into <c>$TORCH_HOME/hub/checkpoints</c> (default <c>~/.cache/torch</c>) under their own
/// names, checked against the sha256 prefix in the name, as <c>torch.hub</c> does. A file a PyTorch user already has
/// there is used without a download.</item>
/// <item><c>hf-hub:OWNER/REPO</c> (timm's spelling, e.g. <c>hf-hub:timm/resnet50.a1_in1k</c>): the repository's
/// <c>model.safetensors</c> in the Hugging Face hub cache layout (<c>$HF_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>, else
/// <c>~/.cache/huggingface/hub</c>: <c>models--OWNER--REPO/{blobs,snapshots,refs}</c>), checked against the hub's
/// sha256 (the LFS ETag).</item>
/// </list>
/// Downloads go to a temporary file beside the target and are moved into place only when whole and verified. Servers:
/// <c>H2T_TORCHVISION_URL</c> (default https://download.pytorch.org/models) and <c>HF_ENDPOINT</c> (the hub's own
/// variable; default https://huggingface.co).
/// </summary>
public static partial class WeightDownloads
{
    /// <summary>torchvision's weight files for the backbones we build: (arch, variant) to file name; the first variant
    /// of each arch is torchvision's DEFAULT.</summary>
    static readonly List<(string Arch, string Variant, string File)> Torchvision =
    [
        ("resnet18", "IMAGENET1K_V1", "resnet18-f37072fd.pth"),
        ("resnet34", "IMAGENET1K_V1", "resnet34-b627a593.pth"),
        ("resnet50", "IMAGENET1K_V2", "resnet50-11ad3fa6.pth"),
        ("resnet50", "IMAGENET1K_V1", "resnet50-0676ba61.pth"),
        ("resnext50_32x4d", "IMAGENET1K_V2", "resnext50_32x4d-1a0047aa.pth"),
        ("resnext50_32x4d", "IMAGENET1K_V1", "resnext50_32x4d-7cdf4587.pth"),
        ("resnet152", "IMAGENET1K_V2", "resnet152-f82ba261.pth"),
        ("resnet152", "IMAGENET1K_V1", "resnet152-394f9c45.pth"),
        ("convnext_tiny", "IMAGENET1K_V1", "convnext_tiny-983f1562.pth"),
        ("convnext_small", "IMAGENET1K_V1", "convnext_small-0c510722.pth"),
        ("convnext_base", "IMAGENET1K_V1", "convnext_base-6075fbad.pth"),
        ("convnext_large", "IMAGENET1K_V1", "convnext_large-ea097f82.pth"),
        // torchvision 0.14's ViTs. The SWAG end-to-end weights were trained at 384 (B/16) and 512 px (L/16), a 24x24
        // and 32x32 patch grid: loaded into our 224-px models their position grid is resampled to 14x14.
        ("vit_b_16", "IMAGENET1K_V1", "vit_b_16-c867db91.pth"),
        ("vit_b_16", "IMAGENET1K_SWAG_E2E_V1", "vit_b_16_swag-9ac1b537.pth"),
        ("vit_b_16", "IMAGENET1K_SWAG_LINEAR_V1", "vit_b_16_lc_swag-4e70ced5.pth"),
        ("vit_b_32", "IMAGENET1K_V1", "vit_b_32-d86f8d99.pth"),
        ("vit_l_16", "IMAGENET1K_V1", "vit_l_16-852ce7e3.pth"),
        ("vit_l_16", "IMAGENET1K_SWAG_E2E_V1", "vit_l_16_swag-4f3808c9.pth"),
        ("vit_l_16", "IMAGENET1K_SWAG_LINEAR_V1", "vit_l_16_lc_swag-4d563306.pth"),
    ];

    /// <summary>Tests add a variant whose file they can serve (a real torchvision file cannot be made to have the
    /// hash its published name carries).</summary>
    internal static void AddTorchvisionVariant(string arch, string variant, string file)
    {
        lock (Torchvision) if (!Torchvision.Contains((arch, variant, file))) Torchvision.Add((arch, variant, file));
    }

    public static IReadOnlyList<string> TorchvisionNames =>
        [.. Torchvision.Select(t => $"torchvision:{t.Arch}.{t.Variant}")];

    public static bool IsDownloadName(string given) =>
        given.StartsWith("torchvision:", StringComparison.OrdinalIgnoreCase) || given.StartsWith("hf-hub:",
            StringComparison.OrdinalIgnoreCase);

    /// <summary>The local file for a download name: the cached one, or one downloaded now.</summary>
    public static string Fetch(string given, IProgress<DownloadProgress>? progress = null,
        CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(given);
        if (given.StartsWith("torchvision:", StringComparison.OrdinalIgnoreCase)) return FetchTorchvision(given,
            progress, cancel);
        if (given.StartsWith("hf-hub:", StringComparison.OrdinalIgnoreCase)) return FetchHub(given, progress, cancel);
        throw new ConfigException(
            $"pretrained {given}: not a download name (torchvision:ARCH[.VARIANT] or hf-hub:OWNER/REPO)");
    }

    /// <summary>The torchvision file a name stands for, and the architecture it fits.</summary>
    public static (string Arch, string Variant, string File) TorchvisionEntry(string given)
    {
        var spec = given["torchvision:".Length..].Trim();
        var dot = spec.IndexOf('.', StringComparison.Ordinal);
        var arch = (dot < 0 ? spec : spec[..dot]).ToLowerInvariant();
        if (arch == "resnext50") arch = "resnext50_32x4d";
        var variant = dot < 0 ? null : spec[(dot + 1)..];
        var match = Torchvision.FirstOrDefault(t => t.Arch == arch && (variant is null || string.Equals(t.Variant,
            variant, StringComparison.OrdinalIgnoreCase)));
        return match.File is not null ? match
            : throw new ConfigException(
                $"pretrained {given}: not one of torchvision's weights for our backbones: " +
                $"{string.Join(", ", TorchvisionNames)} (without a variant: torchvision's DEFAULT)");
    }

    static string FetchTorchvision(string given, IProgress<DownloadProgress>? progress, CancellationToken cancel)
    {
        var (_, _, file) = TorchvisionEntry(given);
        var dir = Path.Combine(TorchHome(), "hub", "checkpoints");
        var target = Path.Combine(dir, file);
        var prefix = HashPrefix().Match(file).Groups[1].Value;
        if (prefix.Length < 8) throw new ConfigException(
            $"pretrained {given}: {file} carries no sha256 prefix (8 or more hex digits) to check it against");
        var baseUrl = (Environment.GetEnvironmentVariable("H2T_TORCHVISION_URL") is { Length: > 0 } b ? b :
            "https://download.pytorch.org/models").TrimEnd('/');
        var url = $"{baseUrl}/{file}";
        if (File.Exists(target))
        {
            var have = Sha256(target);
            if (!have.StartsWith(prefix, StringComparison.Ordinal))
                throw new ConfigException(
                    $"pretrained {given}: the cached {target} has sha256 {have[..16]}..., not the {prefix}... its " +
                    $"name promises; delete it to download it again from {url}");
            return target;
        }
        Download(url, target, expected: h => h.StartsWith(prefix,
            StringComparison.Ordinal) ? null :
            $"sha256 {h[..16]}... does not start with {prefix}, the prefix in torchvision's file name", progress,
            cancel);
        return target;
    }

    static string FetchHub(string given, IProgress<DownloadProgress>? progress, CancellationToken cancel)
    {
        var repo = given["hf-hub:".Length..].Trim().Trim('/');
        if (repo.Split('/') is not [{ Length: > 0 }, { Length: > 0 }])
            throw new ConfigException(
                $"pretrained {given}: expected hf-hub:OWNER/REPO, e.g. hf-hub:timm/resnet50.a1_in1k");
        const string file = "model.safetensors";
        var folder = Path.Combine(HubCache(), "models--" + repo.Replace("/", "--", StringComparison.Ordinal));
        var refFile = Path.Combine(folder, "refs", "main");
        // A snapshot link whose blob was deleted is not a cached file (File.Exists follows the link).
        if (File.Exists(refFile) && File.ReadAllText(refFile).Trim() is { Length: > 0 } commit
            && Path.Combine(folder, "snapshots", commit, file) is var cached && Present(cached))
            return cached;

        var endpoint = (Environment.GetEnvironmentVariable("HF_ENDPOINT") is { Length: > 0 } e ? e :
            "https://huggingface.co").TrimEnd('/');
        var url = $"{endpoint}/{repo}/resolve/main/{file}";
        // The hub answers the resolve URL with the commit and the file's sha256 (for LFS files) in its headers, then
        // redirects to the storage; read them without following the redirect, as huggingface_hub does.
        string? repoCommit, sha;
        using (var client = Client(followRedirects: false))
        {
            using var head = Send(client, new HttpRequestMessage(HttpMethod.Head, url), url, Path.Combine(folder,
                "snapshots", "<commit>", file), cancel);
            repoCommit = Header(head, "X-Repo-Commit");
            sha = (Header(head, "X-Linked-Etag") ?? head.Headers.ETag?.Tag)?.Trim('"').Replace("W/", "",
                StringComparison.Ordinal).Trim('"');
            if ((int)head.StatusCode is not (200 or 301 or 302 or 303 or 307 or 308))
                throw new ConfigException(
                    $"pretrained {given}: {url} answered HTTP {(int)head.StatusCode} {head.ReasonPhrase}");
        }
        if (repoCommit is not { Length: > 0 })
            throw new ConfigException(
                $"pretrained {given}: {url} did not say which commit it serves (no X-Repo-Commit header): not the " +
                $"Hugging Face hub's answer");
        bool shaKnown = sha is { Length: 64 } && sha.All(Uri.IsHexDigit);
        var blob = Path.Combine(folder, "blobs", sha ?? "");
        var snapshot = Path.Combine(folder, "snapshots", repoCommit, file);
        if (!shaKnown)
            throw new ConfigException(
                $"pretrained {given}: {url} gave no sha256 for the file (no LFS ETag), so it cannot be verified; " +
                $"download it by hand into {Path.Combine(folder, "snapshots", repoCommit, file)} and write " +
                $"{repoCommit} into {refFile}");
        // The file of the commit just named, not of whatever main is by the time the body is asked for.
        url = $"{endpoint}/{repo}/resolve/{repoCommit}/{file}";
        if (!File.Exists(blob))
            Download(url, blob, expected: h => string.Equals(h, sha,
                StringComparison.OrdinalIgnoreCase) ? null : $"sha256 {h} is not the hub's {sha}", progress, cancel,
                snapshot);
        Directory.CreateDirectory(Path.GetDirectoryName(snapshot)!);
        if (!Present(snapshot)) // also a link left broken by a deleted blob: made again
        {
            var temp = snapshot + $".{Environment.ProcessId}.tmp";
            if (File.Exists(temp) || new FileInfo(temp).LinkTarget is not null) File.Delete(temp);
            try { File.CreateSymbolicLink(temp, Path.GetRelativePath(Path.GetDirectoryName(snapshot)!, blob)); }
            // no symlinks (Windows without the right): a copy, as huggingface_hub does
            catch (Exception failed) when (failed is IOException or UnauthorizedAccessException) { File.Copy(blob,
                temp); }
            File.Move(temp, snapshot, overwrite: true);
        }
        Directory.CreateDirectory(Path.GetDirectoryName(refFile)!);
        AtomicWrite(refFile, repoCommit);
        return snapshot;
    }

    static string? Header(HttpResponseMessage r, string name) =>
        r.Headers.TryGetValues(name, out var v) ? v.FirstOrDefault() : r.Content.Headers.TryGetValues(name,
            out var c) ? c.FirstOrDefault() : null;

    static HttpClient Client(bool followRedirects) =>
        new(new SocketsHttpHandler { AllowAutoRedirect = followRedirects, MaxAutomaticRedirections = 5,
            ConnectTimeout = TimeSpan.FromSeconds(15) })
        { Timeout = Timeout.InfiniteTimeSpan };

    /// <summary>Sends, turning "no network" into one message: the URL, and where the file must be placed by
    /// hand.</summary>
    static HttpResponseMessage Send(HttpClient client, HttpRequestMessage request, string url, string placeAt,
        CancellationToken cancel)
    {
        try
        {
            return client.Send(request, HttpCompletionOption.ResponseHeadersRead, cancel);
        }
        catch (HttpRequestException e) when (e.InnerException is SocketException or IOException ||
            e.HttpRequestError is HttpRequestError.NameResolutionError or HttpRequestError.ConnectionError)
        {
            throw Offline(url, placeAt, e.InnerException?.Message ?? e.Message);
        }
        catch (TaskCanceledException e) when (!cancel.IsCancellationRequested)
        {
            throw Offline(url, placeAt, "timed out: " + e.Message);
        }
    }

    static ConfigException Offline(string url, string placeAt, string why) =>
        new($"pretrained: could not download {url} ({why}). On a machine without network access, fetch that file " +
            $"elsewhere and place it at {placeAt}");

    /// <summary>Downloads <paramref name="url"/> to <paramref name="target"/> through a temporary file beside it;
    /// <paramref name="expected"/> says what is wrong with the sha256 (hex), or null when it is right.</summary>
    static void Download(string url, string target, Func<string, string?> expected,
        IProgress<DownloadProgress>? progress, CancellationToken cancel, string? placeAt = null)
    {
        placeAt ??= target;
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        var temp = target + $".{Environment.ProcessId}.partial";
        try
        {
            using var client = Client(followRedirects: true);
            using var response = Send(client, new HttpRequestMessage(HttpMethod.Get, url), url, placeAt, cancel);
            if (!response.IsSuccessStatusCode)
                throw new ConfigException(
                    $"pretrained: {url} answered HTTP {(int)response.StatusCode} {response.ReasonPhrase}; nothing " +
                    $"was written" +
                    (response.StatusCode == HttpStatusCode.NotFound ? " (is the name right?)" : ""));
            long? total = response.Content.Headers.ContentLength;
            long bytes = 0;
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            using (var body = response.Content.ReadAsStream(cancel))
            using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                var buffer = new byte[1 << 20];
                long nextReport = 0;
                progress?.Report(new DownloadProgress(url, 0, total));
                try
                {
                    int n;
                    // A stalled body (no byte for 60 s) ends the download instead of hanging it.
                    while ((n = ReadWithin(body, buffer, TimeSpan.FromSeconds(60), cancel)) > 0)
                    {
                        cancel.ThrowIfCancellationRequested();
                        file.Write(buffer, 0, n);
                        sha.AppendData(buffer, 0, n);
                        bytes += n;
                        if (bytes >= nextReport)
                        {
                            progress?.Report(new DownloadProgress(url, bytes, total));
                            nextReport = bytes + Math.Max(1 << 20, (total ?? 0) / 20);
                        }
                    }
                }
                catch (Exception e) when (e is IOException or HttpRequestException)
                {
                    throw new ConfigException(
                        $"pretrained: the download of {url} broke off after {bytes} of " +
                        $"{(total is { } t ? t.ToString(CultureInfo.InvariantCulture) : "?")} bytes ({e.Message}); " +
                        $"nothing was written, run again to retry");
                }
                file.Flush(flushToDisk: true);
            }
            if (total is { } whole && bytes != whole)
                throw new ConfigException(
                    $"pretrained: the download of {url} ended after {bytes} of {whole} bytes (truncated); nothing " +
                    $"was written, run again to retry");
            progress?.Report(new DownloadProgress(url, bytes, total ?? bytes));
            var hash = Convert.ToHexStringLower(sha.GetHashAndReset());
            if (expected(hash) is { } wrong)
                throw new ConfigException(
                    $"pretrained: {url}: {wrong}; the file is corrupt or not the one asked for, and was not kept");
            File.Move(temp, target, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>A file, or a symlink whose target is there.</summary>
    static bool Present(string path)
    {
        var info = new FileInfo(path);
        return info.LinkTarget is null ? info.Exists :
            info.ResolveLinkTarget(returnFinalTarget: true) is { Exists: true };
    }

    static int ReadWithin(Stream body, byte[] buffer, TimeSpan idle, CancellationToken cancel)
    {
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timer.CancelAfter(idle);
        try
        {
            return body.ReadAsync(buffer, timer.Token).AsTask().GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            throw new IOException($"no data for {idle.TotalSeconds:0} s");
        }
    }

    // Interop sits above Training's AtomicFile in the layers, hence this small copy of its text write.
    static void AtomicWrite(string path, string text)
    {
        var temp = path + $".{Environment.ProcessId}.tmp";
        File.WriteAllText(temp, text);
        File.Move(temp, path, overwrite: true);
    }

    public static string Sha256(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }

    static string Home => Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);

    static string XdgCache => Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x :
        Path.Combine(Home, ".cache");

    /// <summary>torch.hub's root: $TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch.</summary>
    public static string TorchHome() => Environment.GetEnvironmentVariable("TORCH_HOME") is { Length: > 0 } t ? t :
        Path.Combine(XdgCache, "torch");

    /// <summary>huggingface_hub's cache: $HF_HUB_CACHE, else $HF_HOME/hub, else
    /// $XDG_CACHE_HOME/huggingface/hub.</summary>
    public static string HubCache() =>
        Environment.GetEnvironmentVariable("HF_HUB_CACHE") is { Length: > 0 } c ? c
        : Environment.GetEnvironmentVariable("HF_HOME") is { Length: > 0 } h ? Path.Combine(h, "hub")
        : Path.Combine(XdgCache, "huggingface", "hub");

    // torch.hub's check: the part of the file name after the last '-' and before the extension is a sha256 prefix.
    [GeneratedRegex(@"-([a-f0-9]+)\.")]
    private static partial Regex HashPrefix();
}
