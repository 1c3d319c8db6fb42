using ScottPlot;

namespace OnnxDeconv.Cli.Bench;

/// <summary>Grouped bar chart of speed-ups (x original) drawn with ScottPlot; .svg or .png by the file's extension.</summary>
public static class BenchChart
{
    /// <summary>Checked before a run starts, so a long run does not end in a usage error.</summary>
    public static void CheckPath(string path)
    {
        if (Path.GetExtension(path).ToLowerInvariant() is not (".svg" or ".png"))
            throw new Commands.UsageException($"--chart {path}: the file must end in .svg or .png");
    }

    /// <param name="categories">One group of bars per category (a layer, a model, or a target).</param>
    /// <param name="series">One bar per category and series (e.g. "plugin, 2 threads"); NaN = no bar.</param>
    public static void Write(string path, string title, IReadOnlyList<string> categories, IReadOnlyList<(string Name, double[] Values)> series)
    {
        CheckPath(path);
        string ext = Path.GetExtension(path).ToLowerInvariant();
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int n = series.Count;
        double width = 0.8 / Math.Max(1, n);
        var legend = new List<LegendItem>();
        for (int s = 0; s < n; s++)
        {
            var color = palette.GetColor(s);
            var bars = new List<Bar>();
            for (int c = 0; c < categories.Count; c++)
            {
                double v = series[s].Values[c];
                if (double.IsNaN(v)) continue;
                bars.Add(new Bar { Position = c - 0.4 + width * (s + 0.5), Value = v, Size = width * 0.9, FillColor = color, LineWidth = 0 });
            }
            plot.Add.Bars(bars);
            legend.Add(new LegendItem { LabelText = series[s].Name, FillColor = color });
        }
        // Bars above the line are faster than the original.
        var one = plot.Add.HorizontalLine(1.0);
        one.Color = Colors.Black;
        one.LinePattern = LinePattern.Dashed;
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, categories.Count).Select(i => (double)i).ToArray(), categories.ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = categories.Count > 4 ? 30 : 0;
        plot.Axes.Bottom.TickLabelStyle.Alignment = categories.Count > 4 ? Alignment.MiddleLeft : Alignment.UpperCenter;
        plot.Axes.Bottom.MinimumSize = categories.Count > 4 ? 140 : 40;
        plot.YLabel("speed-up over the original (x)", size: 13);
        plot.Title(title, size: 14);
        plot.Legend.ManualItems.AddRange(legend);
        plot.ShowLegend(Edge.Right); // outside the data area: never hides a bar
        double top = series.SelectMany(x => x.Values).Where(v => !double.IsNaN(v) && !double.IsInfinity(v)).DefaultIfEmpty(1).Max();
        plot.Axes.SetLimitsY(0, Math.Max(1.2, top * 1.1));
        int w = Math.Max(720, 90 * categories.Count + 360), h = 520;
        string tmp = path + ".tmp" + ext;
        if (ext == ".svg") plot.SaveSvg(tmp, w, h);
        else plot.SavePng(tmp, w, h);
        File.Move(tmp, path, overwrite: true);
    }
}
