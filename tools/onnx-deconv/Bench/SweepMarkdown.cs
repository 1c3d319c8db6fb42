using System.Globalization;
using System.Text;

namespace OnnxDeconv.Cli.Bench;

/// <summary>
/// The generated block of docs/sweep.md (`bench --suite sweep --out`): every sweep layer at each thread count with
/// its speed-up over ONNX Runtime per column, GFLOP/s and % of the measured FMA peak, then the judgement issue 13 asks
/// for: geometric mean, the worst layer, the layers below 0.9x, and % peak over the wide layers.
/// </summary>
public static class SweepMarkdown
{
    private static readonly string[] Columns = ["plugin-so", "plugin", "portable", "kernel", "zero-insert"];
    private const double Floor = 0.9;

    /// <summary>Wide in issue 13's sense: Cout/group >= 32 and Cin/group * taps >= 128 (where 85% of peak is asked).</summary>
    public static bool IsWide(Layer l)
    {
        if (l.Kind != LayerKind.ConvTranspose) return false;
        var g = l.Geometry;
        long taps = g.Axes.Aggregate(1L, (p, a) => p * a.Kernel);
        return g.OutChannelsPerGroup >= 32 && g.InChannels / g.Group * taps >= 128;
    }

    public static string Render(BenchReport r, int[] threads)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(BenchMarkdown.BeginMarker);
        sb.AppendLine($"Produced by `{r.Command}` on {r.Date}.");
        sb.AppendLine();
        sb.AppendLine($"Machine: {r.Machine}. In-process kernel ISA variant: {r.Isa}. Published plugin: {r.PluginSo ?? "not timed"}. Measured FP32 FMA peak: " +
            string.Join(", ", r.PeakGflops.Select(p => string.Create(inv, $"{p.Value:F1} GFLOP/s at {p.Key} thread(s)"))) +
            $". Load average at the start: {r.LoadAverageAtStart}; at the end: {r.LoadAverageAtEnd}.");
        var shown = Columns.Where(c => r.Layers.Any(l => l.Has(c))).ToList();
        var lookup = SweepSuite.Layers.ToDictionary(l => l.ShortName);
        foreach (int t in threads)
        {
            var rows = r.Layers.Where(l => l.Threads == t).ToList();
            if (rows.Count == 0) continue;
            double peak = r.PeakGflops.GetValueOrDefault(t, double.NaN);
            string judged = shown.FirstOrDefault() ?? "ort";
            sb.AppendLine();
            sb.AppendLine($"### {t} thread(s)");
            sb.AppendLine();
            var head = new List<string> { "Layer", "MMACs", "ORT ms" };
            head.AddRange(shown.Select(c => $"{c} x ORT"));
            head.AddRange([$"{judged} GFLOP/s (% peak)", "wide", $">= {Floor:F1}x"]);
            sb.AppendLine("| " + string.Join(" | ", head) + " |");
            sb.AppendLine("|---|" + string.Concat(Enumerable.Repeat("---:|", head.Count - 3)) + "---|---|");
            foreach (var l in rows)
            {
                var cells = new List<string> { l.Name, string.Create(inv, $"{l.Macs / 1e6:F1}"), string.Create(inv, $"{l.Ms("ort"):F3}") };
                cells.AddRange(shown.Select(c => l.Has(c) ? string.Create(inv, $"{l.Speedup(c):F2}x") : "-"));
                cells.Add(l.Has(judged) ? string.Create(inv, $"{l.Gflops(judged):F1} ({100 * l.Gflops(judged) / peak:F0}%)") : "-");
                cells.Add(lookup.TryGetValue(l.ShortName, out var layer) && IsWide(layer) ? "yes" : "");
                cells.Add(!l.Has(judged) ? "-" : l.Speedup(judged) >= Floor ? "yes" : "**no**");
                sb.AppendLine("| " + string.Join(" | ", cells) + " |");
            }
            sb.AppendLine();
            foreach (var c in shown)
            {
                var with = rows.Where(l => l.Has(c)).ToList();
                if (with.Count == 0) continue;
                double geo = Math.Exp(with.Average(l => Math.Log(l.Speedup(c))));
                var worst = with.MinBy(l => l.Speedup(c))!;
                var below = with.Where(l => l.Speedup(c) < Floor).Select(l => l.ShortName).ToList();
                sb.AppendLine(string.Create(inv, $"- **{c}** vs ORT over {with.Count} layers: geometric mean **{geo:F2}x**; worst {worst.ShortName} {worst.Speedup(c):F2}x; ") +
                    (below.Count == 0 ? $"none below {Floor:F1}x." : $"{below.Count} below {Floor:F1}x ({string.Join(", ", below)})."));
            }
            var wide = rows.Where(l => l.Has(judged) && lookup.TryGetValue(l.ShortName, out var x) && IsWide(x)).Select(l => 100 * l.Gflops(judged) / peak).Order().ToList();
            if (wide.Count > 0)
                sb.AppendLine(string.Create(inv, $"- {judged} % of FMA peak on the {wide.Count} wide layers: min {wide[0]:F0}%, median {wide[wide.Count / 2]:F0}%, max {wide[^1]:F0}% (issue 13 asks >= 85% on every one)."));
        }
        sb.AppendLine(BenchMarkdown.EndMarker);
        return sb.ToString();
    }
}
