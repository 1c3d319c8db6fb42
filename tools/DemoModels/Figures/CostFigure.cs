using System.Globalization;
using OnnxDeconv.Geometry;

namespace OnnxDeconv.DemoModels.Figures;

/// <summary>Bar chart of <see cref="CostModel.ConvTranspose"/> for one layer: multiply-adds (useful vs wasted) and extra memory.</summary>
internal static class CostFigure
{
    private const double LabelW = 300, MacX = 310, MacW = 220, MemX = 650, MemW = 200, Top = 78, RowH = 44, BarH = 22;

    public static string Render(ConvTransposeGeometry g, string layerName)
    {
        var costs = CostModel.ConvTranspose(g);
        long useful = CostModel.InRangeMacs(g);
        double height = Top + costs.Count * RowH + 70;
        var svg = new Svg(960, height);
        svg.Text(20, 26, $"Cost of one {layerName} per image, float32", 15, bold: true);
        svg.Text(20, 46, $"useful multiply-adds Cin*Cout*K^2*I^2 = {g.UsefulMacs:N0}, of which {useful:N0} land inside the output (p=1 crops the rest)", 12, fill: "#555555");
        svg.Text(MacX, Top - 10, "multiply-adds (millions)", 12.5, bold: true);
        svg.Text(MemX, Top - 10, "extra bytes written (KiB)", 12.5, bold: true);

        double macMax = costs.Max(c => c.Macs);
        double memMax = costs.Max(c => c.IntermediateBytes + c.ScratchWrittenBytes);
        for (int r = 0; r < costs.Count; r++)
        {
            var c = costs[r];
            double y = Top + r * RowH;
            svg.Text(LabelW - 8 + 5, y + 16, c.Method, 12.5, "end");

            double wUseful = MacW * Math.Min(c.Macs, useful) / macMax;
            double wAll = MacW * c.Macs / macMax;
            svg.Rect(MacX, y, wUseful, BarH, "#4c72b0", null);
            if (wAll > wUseful) svg.Rect(MacX + wUseful, y, wAll - wUseful, BarH, "#c7d3ea", "#4c72b0", 0.8);
            svg.Text(MacX + wAll + 6, y + 16, string.Create(CultureInfo.InvariantCulture, $"{c.Macs / 1e6:0.0} M ({(double)c.Macs / g.UsefulMacs:0.00}x)"), 11.5);

            double wInter = MemW * c.IntermediateBytes / memMax;
            double wWork = MemW * c.ScratchWrittenBytes / memMax;
            if (wInter > 0) svg.Rect(MemX, y, wInter, BarH, "#55a868", null);
            if (wWork > 0) svg.Rect(MemX + wInter, y, wWork, BarH, "#dd8452", null);
            long total = c.IntermediateBytes + c.ScratchWrittenBytes;
            svg.Text(MemX + wInter + wWork + 6, y + 16, total == 0 ? "none" : string.Create(CultureInfo.InvariantCulture, $"{total / 1024.0:0} KiB"), 11.5);
        }

        double ly = Top + costs.Count * RowH + 18;
        Legend(svg, MacX, ly, "#4c72b0", null, "lands in the output");
        Legend(svg, MacX + 140, ly, "#c7d3ea", "#4c72b0", "wasted (zeros, crop)");
        Legend(svg, MemX, ly, "#55a868", null, "intermediates");
        Legend(svg, MemX + 110, ly, "#dd8452", null, "kernel scratch");
        svg.Text(20, ly + 34, "Scratch as in ONNX Runtime's CPU kernels (NCHW Conv: im2col via MLAS; ConvTranspose: full column buffer, then col2im); one thread.", 11.5, fill: "#555555");
        return svg.ToString();
    }

    private static void Legend(Svg svg, double x, double y, string fill, string? stroke, string label)
    {
        svg.Rect(x, y - 10, 14, 12, fill, stroke, 0.8);
        svg.Text(x + 19, y, label, 11.5);
    }
}
