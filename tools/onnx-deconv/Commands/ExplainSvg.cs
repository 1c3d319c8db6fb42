using OnnxDeconv.Explain;
using OnnxDeconv.Geometry;
using ScottPlot;

namespace OnnxDeconv.Cli.Commands;

/// <summary>
/// <c>explain ... --svg FILE</c>: one axis drawn with ScottPlot: the input, the zero-inserted and padded view zero
/// insertion convolves, and the output coloured by polyphase phase with each phase's formula (taps and input offsets).
/// Drawn for the short input the ASCII picture uses, so every cell is readable.
/// </summary>
internal static class ExplainSvg
{
    private const int MaxCells = 64;

    public static void Write(string path, AxisExplanation ax)
    {
        if (!string.Equals(Path.GetExtension(path), ".svg", StringComparison.OrdinalIgnoreCase))
            throw new UsageException($"--svg {path}: the file must end in .svg");
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is null || !Directory.Exists(dir)) throw new UsageException($"--svg {path}: the folder {dir} does not exist");

        var a = ax.Geometry with { Input = ax.PictureInput, Output = ax.Geometry.Output - ax.Geometry.Stride * (ax.Geometry.Input - ax.PictureInput) };
        var phases = ComputeViews.Axis(a);
        long grown = phases.GrownLength;
        if (grown > MaxCells || a.Output > MaxCells || grown <= 0)
            throw new UsageException($"--svg: the zero-insertion view of axis {ax.Axis} is {grown} cells long even for I={a.Input}: too long to draw");

        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        // Rows, top to bottom: input (at its positions i*s in the grown view), zero-inserted view, output by phase.
        long shift = a.ImplicitPadBegin; // grown-view cell of x0
        Label(plot, -1, 2.5, "input x");
        for (long i = 0; i < a.Input; i++) Cell(plot, shift + i * a.Stride, 2, $"x{i}", Colors.SteelBlue.Lighten(0.5));
        Label(plot, -1, 1.5, "zero-inserted");
        for (long c = 0; c < grown; c++)
        {
            long j = c - shift;
            bool data = j >= 0 && j < a.ZeroInsertedLength && j % a.Stride == 0;
            bool inserted = j >= 0 && j < a.ZeroInsertedLength && !data;
            Cell(plot, c, 1, data ? $"x{j / a.Stride}" : "0", data ? Colors.SteelBlue.Lighten(0.5) : inserted ? Colors.White : Colors.LightGray);
        }
        Label(plot, -1, 0.5, "output y");
        // Output o is the stride-1 window over cells o .. o + d*(k-1) of the view: drawn under its middle.
        double centre = a.Dilation * (a.Kernel - 1) / 2.0;
        for (long o = 0; o < a.Output; o++) Cell(plot, o + centre, 0, $"y{o}", palette.GetColor((int)(o % a.Stride % 10)).Lighten(0.4));
        double y = -0.6;
        foreach (var p in phases.Phases)
        {
            string formula = p.TapCount == 0 ? "no taps: bias only" : ExplainText.PhaseFormula(p);
            var text = plot.Add.Text($"phase {p.Residue} ({p.Outputs} outputs): y[{ExplainText.Index(a.Stride, p.Residue)}] = {formula}", 0, y);
            text.LabelFontSize = 13;
            text.LabelFontColor = palette.GetColor((int)(p.Residue % 10));
            text.LabelAlignment = Alignment.UpperLeft;
            y -= 0.5;
        }
        var title = plot.Add.Text($"axis {ax.Axis}: I={a.Input} k={a.Kernel} s={a.Stride} pads={a.PadBegin}|{a.PadEnd} d={a.Dilation} -> O={a.Output}\n" +
                                  "Zero insertion convolves the grown row (white: inserted zeros, grey: border); polyphase reads x as it is.", -4, 3.9);
        title.LabelFontSize = 14;
        title.LabelAlignment = Alignment.UpperLeft;
        plot.Axes.Frameless();
        plot.HideGrid();
        plot.Axes.SetLimits(-4, Math.Max(grown, a.Output) + 1, y - 0.2, 4.0);
        int width = (int)Math.Max(960, 44 * (Math.Max(grown, a.Output) + 5)), height = 300 + 32 * phases.Phases.Count;
        string tmp = path + ".tmp.svg";
        plot.SaveSvg(tmp, width, height);
        File.Move(tmp, path, overwrite: true);
    }

    private static void Cell(Plot plot, double x, double y, string label, Color fill)
    {
        var r = plot.Add.Rectangle(x, x + 0.9, y, y + 0.9);
        r.FillColor = fill;
        r.LineColor = Colors.Gray;
        var t = plot.Add.Text(label, x + 0.45, y + 0.45);
        t.LabelFontSize = 12;
        t.LabelAlignment = Alignment.MiddleCenter;
    }

    private static void Label(Plot plot, double x, double y, string text)
    {
        var t = plot.Add.Text(text, x, y);
        t.LabelFontSize = 13;
        t.LabelAlignment = Alignment.MiddleRight;
    }
}
