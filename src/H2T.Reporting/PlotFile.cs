using H2T.Runs;
using ScottPlot;

namespace H2T.Reporting;

/// <summary>Every report PNG is written the way checkpoints and metrics are: atomically, so a reader never sees half of
/// one.</summary>
internal static class PlotFile
{
    public static void SavePng(Plot plot, string path, int width, int height)
    {
        var bytes = plot.GetImageBytes(width, height, ImageFormat.Png);
        AtomicFile.Write(path, s => s.Write(bytes));
    }
}
