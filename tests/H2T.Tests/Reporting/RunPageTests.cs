using System.Text.Json;
using H2T.Inference;
using H2T.Runs;
using H2T.Serving;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using H2T.Tests.Training;
using Microsoft.AspNetCore.Builder;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Support.UI;

namespace H2T.Tests.Reporting;

/// <summary>
/// A test that drives Debian's chromium (headless, through its chromedriver: no browser is downloaded). Without them
/// it is skipped with the reason; with H2T_REQUIRE_BROWSER=1 (CI installs both) it runs and fails instead.
/// </summary>
public sealed class RequiresChromiumFactAttribute : FactAttribute
{
    public const string Chromium = "/usr/bin/chromium", Driver = "/usr/bin/chromedriver";

    public RequiresChromiumFactAttribute()
    {
        if ((!File.Exists(Chromium) || !File.Exists(Driver)) &&
            Environment.GetEnvironmentVariable("H2T_REQUIRE_BROWSER") != "1")
            Skip = $"not run: needs Debian's chromium and chromium-driver ({Chromium}, {Driver}); sudo apt-get " +
                $"install -y chromium chromium-driver";
    }
}

/// <summary>The run page from real runs: per-image predictions in the run folder, the HTML, and the page in a real
/// browser.</summary>
public sealed class RunPageTests : IDisposable
{
    readonly TinyLongTailedSet set = new();
    readonly TempDir dir = new();

    public void Dispose()
    {
        dir.Dispose();
        set.Dispose();
    }

    /// <summary>Stage I, then a two-value sweep (rho 0 and 0.5): the runs the page shows.</summary>
    string Runs()
    {
        var s1 = Path.Combine(dir.Path, "s1");
        var (rc, output) = CliRunner.Run("stage1", "--dataset", "fashion-mnist", "--data", set.Path, "--imb-factor",
            "10", "--epochs", "1",
            "--backbone", "resnet8", "--batch-size", "32", "--out", s1, "--threads", "2");
        Assert.True(rc == 0, output);
        var sweep = Path.Combine(dir.Path, "runs", "sweep");
        (rc, output) = CliRunner.Run("sweep", "--from", Path.Combine(s1, "last.ckpt"), "--rho", "0,0.5", "--epochs",
            "1", "--batch-size", "32",
            "--val-per-class", "0", "--out", sweep);
        Assert.True(rc == 0, output);
        return sweep;
    }

    [Fact]
    public void RunsKeepTheirTestPredictionsAndThePageShowsTablesHeatMapsAndGalleries()
    {
        var sweep = Runs();
        foreach (var member in new[] { "rho0", "rho0.5" })
        {
            var run = new RunFolder(Path.Combine(sweep, member));
            var images = run.ReadTestPredictions()!;
            Assert.Equal(100, images.Labels.Length);
            Assert.Equal(100, images.Predicted.Length);
            Assert.All(images.Confidence, c => Assert.InRange(c, 0.0f, 1.0f));
            // The predictions are the ones the final evaluation counted.
            var final = run.ReadFinalEval()!;
            for (int c = 0; c < 10; c++)
                for (int p = 0; p < 10; p++)
                    Assert.Equal(final.Confusion[c][p], Enumerable.Range(0,
                        100).Count(i => images.Labels[i] == c && images.Predicted[i] == p));
            Assert.DoesNotContain("predicted", File.ReadAllText(run.FinalEvalFile), StringComparison.Ordinal);
        }
        var html = Path.Combine(dir.Path, "page.html");
        var (rc, output) = CliRunner.Run("report", Path.Combine(sweep, "rho0"), Path.Combine(sweep, "rho0.5"), "--html",
            html);
        Assert.True(rc == 0, output);
        var page = File.ReadAllText(html);
        Assert.Contains("id=\"runs-table\"", page);
        Assert.Equal(2, CountOf(page, "class=\"run-row\""));
        Assert.Equal(2, CountOf(page, "id=\"confusion\""));
        Assert.Contains("<svg class=\"per-class\"", page);
        Assert.Contains("misclassified test images", page);
        Assert.Contains("rho0.5 against rho0", page);
        Assert.Contains("id=\"fixed-count\"", page);
        Assert.Contains("id=\"broke-count\"", page);
        Assert.DoesNotContain("upload-form", page); // the file has no server to predict with
        // The galleries are the misclassified tail images, as many as the predictions say (up to the limit).
        var im = new RunFolder(Path.Combine(sweep, "rho0")).ReadTestPredictions()!;
        int missedTail = Enumerable.Range(0, 100).Count(i => im.Labels[i] >= 7 && im.Predicted[i] != im.Labels[i]);
        Assert.Contains($"Tail classes: {missedTail} misclassified test images", page);
        Assert.True(page.Contains("data:image/png;base64,", StringComparison.Ordinal) || missedTail == 0);
        // A folder that is not a run is named.
        (rc, output) = CliRunner.Run("report", Path.Combine(sweep, "rho0"), "--html", html, "--title", "x");
        Assert.True(rc == 0, output);
        (rc, output) = CliRunner.Run("serve", Path.Combine(sweep, "rho0", "last.ckpt"), "--runs", Path.Combine(dir.Path,
            "nowhere"), "--port", "0");
        Assert.Equal(2, rc);
        Assert.Contains("no such folder of runs", output);
    }

    static int CountOf(string s, string what)
    {
        int n = 0;
        for (int i = s.IndexOf(what, StringComparison.Ordinal); i >= 0; i = s.IndexOf(what, i + 1,
            StringComparison.Ordinal)) n++;
        return n;
    }

    /// <summary>
    /// h2t serve --runs in a real browser (Debian's chromium, headless): the table and galleries are there, the images
    /// decode, the upload form predicts through the service; a screenshot goes to artifacts/screenshots/run-page.png.
    /// </summary>
    [RequiresChromiumFact]
    public async Task ThePageWorksInARealBrowserAndPredictsThroughItsUploadForm()
    {
        var sweep = Runs();
        var app = ClassifierHost.Build(Path.Combine(sweep, "rho0.5", "last.ckpt"), "127.0.0.1", 0,
            new ClassifierOptions { Threads = 2 }, runsDir: sweep);
        await app.StartAsync();
        await using var running = app;
        var url = app.Urls.First();

        var options = new ChromeOptions { BinaryLocation = RequiresChromiumFactAttribute.Chromium };
        options.AddArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1280,2000");
        using var service =
            ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(RequiresChromiumFactAttribute.Driver)!,
            Path.GetFileName(RequiresChromiumFactAttribute.Driver));
        service.HideCommandPromptWindow = true;
        using var browser = new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
        browser.Navigate().GoToUrl($"{url}/runs");
        var wait = new WebDriverWait(browser, TimeSpan.FromSeconds(30));
        wait.Until(d => d.FindElements(By.Id("runs-table")).Count == 1);
        Assert.Equal(2, browser.FindElements(By.CssSelector("#runs-table .run-row")).Count);
        Assert.Equal(2, browser.FindElements(By.CssSelector("table.heatmap")).Count);
        var pictures = browser.FindElements(By.CssSelector(".gallery img"));
        Assert.NotEmpty(pictures);
        // Every gallery image decoded in the browser (a broken data URI has natural width 0).
        var widths = (System.Collections.ObjectModel.ReadOnlyCollection<object>)((IJavaScriptExecutor)browser)
            .ExecuteScript("return Array.from(document.querySelectorAll('.gallery img')).map(i => i.naturalWidth);")!;
        Assert.All(widths, w => Assert.True(Convert.ToInt64(w, System.Globalization.CultureInfo.InvariantCulture) > 0));

        // Predict through the page's form with a real JPEG.
        var image = Path.Combine(DataTestFiles.CifarJpgSample, "test", "cat", "0000.jpg");
        browser.FindElement(By.Id("file")).SendKeys(image);
        browser.FindElement(By.Id("predict")).Click();
        wait.Until(d => d.FindElement(By.Id("result")).Text.Length > 0);
        var result = browser.FindElement(By.Id("result")).Text;
        using var model = ImageClassifier.Load(Path.Combine(sweep, "rho0.5", "last.ckpt"));
        Assert.StartsWith(model.Predict(image).Best.Name + " ", result);
        Assert.Contains("%", result);

        var shots = Path.Combine(DataTestFiles.RepoRoot, "artifacts", "screenshots");
        Directory.CreateDirectory(shots);
        var shot = Path.Combine(shots, "run-page.png");
        browser.GetScreenshot().SaveAsFile(shot);
        Assert.True(new FileInfo(shot).Length > 10_000, "the screenshot is nearly empty");
        // The page is also in the service's metrics, and it kept serving.
        Assert.Contains("h2t_requests_total{route=\"/runs\",status=\"200\"} 1",
            await new HttpClient().GetStringAsync($"{url}/metrics"));
        _ = JsonDocument.Parse(await new HttpClient().GetStringAsync($"{url}/v1/model"));
    }
}
