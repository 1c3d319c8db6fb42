namespace OnnxDeconv.DemoModels.Figures;

/// <summary>
/// One axis of ConvTranspose with s=2, K=4, p=1, I=4 (O=8): panel A the zero-insertion view (flipped kernel sliding
/// over the zero-stuffed, padded input; taps on zeros greyed), panel B the polyphase view (which tap links which input
/// to which output; even and odd outputs are two separate 2-tap correlations of the original input).
/// </summary>
internal static class PhaseFigure
{
    private const int S = 2, K = 4, P = 1, I = 4;
    private const int O = S * (I - 1) + K - 2 * P; // 8
    private const double Cw = 44, Ch = 30, X0 = 150;
    private static readonly string[] TapColors = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a"];
    private const string InputFill = "#cfe3f6", ZeroFill = "#eeeeee", Grey = "#9a9a9a";

    public static string Render()
    {
        var svg = new Svg(960, 590);
        PanelA(svg);
        PanelB(svg);
        return svg.ToString();
    }

    private static void PanelA(Svg svg)
    {
        svg.Text(20, 28, "A   Zero insertion: stuff s−1 zeros, pad d(K−1)−p on each side, slide the flipped kernel", 15, bold: true);
        svg.Text(20, 47, $"one axis, s={S}, K={K}, p={P}, I={I}: O = s(I−1) + K − 2p = {O}", 12, fill: "#555555");

        // Zero-stuffed sequence: length s(I-1)+1 = 7, implicit pad K-1-p = 2 each side, 11 cells.
        int pad = K - 1 - P;
        int len = S * (I - 1) + 1 + 2 * pad;
        double rowY = 62;
        svg.Text(X0 - 12, rowY + 20, "zero-stuffed x", 12, "end");
        for (int c = 0; c < len; c++)
        {
            int j = c - pad;
            bool isX = j >= 0 && j % S == 0 && j / S < I;
            bool isPad = j < 0 || j > S * (I - 1);
            Cell(svg, c, rowY, isX ? InputFill : ZeroFill, isX ? $"x{j / S}" : "0", isPad ? "4 3" : null, isX ? "#222222" : Grey);
        }
        Brace(svg, X0, X0 + pad * Cw, rowY + Ch + 4, $"pad {pad}");
        Brace(svg, X0 + (len - pad) * Cw, X0 + len * Cw, rowY + Ch + 4, $"pad {pad}");
        Brace(svg, X0 + (pad + 1) * Cw, X0 + (pad + 2) * Cw, rowY + Ch + 4, "s−1 zeros");

        // The flipped kernel under the windows of y2 (even) and y3 (odd).
        double[] rows = [122, 162];
        int[] outs = [2, 3];
        for (int r = 0; r < 2; r++)
        {
            int o = outs[r];
            double y = rows[r];
            svg.Text(X0 - 12, y + 20, $"kernel for y{o}", 12, "end");
            var terms = new List<string>();
            for (int t = 0; t < K; t++)
            {
                int k = K - 1 - t; // flipped: window position t holds w[K-1-t]
                int j = o + t - pad;
                bool hit = j >= 0 && j % S == 0 && j / S < I;
                if (hit)
                {
                    Cell(svg, o + t, y, TapColors[k], $"w{k}", null, "#ffffff");
                    terms.Add($"w{k}·x{j / S}");
                }
                else Cell(svg, o + t, y, "#ffffff", $"w{k}·0", "3 3", Grey);
            }
            svg.Text(X0 + len * Cw + 18, y + 20, $"y{o} = {string.Join(" + ", terms)}", 13);
        }

        // Outputs, centred under their windows.
        double outY = 214;
        svg.Text(X0 - 12, outY + 20, "y", 12, "end");
        for (int o = 0; o < O; o++)
        {
            bool shown = o is 2 or 3;
            Cell(svg, o + (K - 1) / 2.0, outY, shown ? "#fff2b3" : "#fafafa", $"y{o}", null, "#222222");
        }
        svg.Text(X0 + len * Cw + 18, outY + 20, "stride-1 Conv over the stuffed input", 12, fill: "#555555");
        int macs = O * K;
        svg.Text(20, 272, $"{O} outputs × {K} taps = {macs} multiply-adds per channel pair; only {InRange()} of them touch a real input (grey taps multiply a zero).", 12.5);
        svg.Text(20, 290, "In D dimensions that is about s^D times the useful work, on an intermediate about s^D times the size of the input.", 12.5);
    }

    private static void PanelB(Svg svg)
    {
        double top = 322;
        svg.Text(20, top, "B   Polyphase: output o = s·q + r only uses taps k ≡ r + p (mod s), reading the original x", 15, bold: true);

        double inY = top + 22, outY = top + 140;
        svg.Text(X0 - 12, inY + 20, "x", 12, "end");
        for (int i = 0; i < I; i++) Cell(svg, 2 * i + 0.5 + 1, inY, InputFill, $"x{i}", null, "#222222");
        svg.Text(X0 - 12, outY + 20, "y", 12, "end");
        for (int o = 0; o < O; o++)
            Cell(svg, o + 1, outY, o % S == 0 ? "#e3f1e0" : "#f6e6d8", $"y{o}", null, "#222222");

        // One line per (i, k) pair that lands inside the output: o = i*s + k - p.
        for (int i = 0; i < I; i++)
        for (int k = 0; k < K; k++)
        {
            int o = i * S + k - P;
            if (o < 0 || o >= O) continue;
            double x1 = X0 + (2 * i + 0.5 + 1.5) * Cw, x2 = X0 + (o + 1.5) * Cw;
            svg.LineSeg(x1, inY + Ch, x2, outY, TapColors[k], 2.2);
        }

        // Legend.
        double lx = X0 + 11 * Cw + 18;
        svg.Text(lx, inY + 4, "tap colours", 12, fill: "#555555");
        for (int k = 0; k < K; k++)
        {
            svg.LineSeg(lx, inY + 22 + 18 * k, lx + 30, inY + 22 + 18 * k, TapColors[k], 3);
            svg.Text(lx + 38, inY + 26 + 18 * k, $"w{k}", 12);
        }
        svg.Rect(lx, outY + 6, 14, 14, "#e3f1e0", "#777777");
        svg.Text(lx + 20, outY + 18, "phase r = 0 (even o)", 12);
        svg.Rect(lx, outY + 26, 14, 14, "#f6e6d8", "#777777");
        svg.Text(lx + 20, outY + 38, "phase r = 1 (odd o)", 12);

        double fy = outY + 62;
        svg.Text(20, fy, "phase 0 (even o):", 13, bold: true);
        svg.Text(160, fy, "y[2q] = w1·x[q] + w3·x[q−1]", 13);
        svg.Text(470, fy, "a 2-tap stride-1 correlation of x with taps (w3, w1)", 13, fill: "#555555");
        svg.Text(20, fy + 20, "phase 1 (odd o):", 13, bold: true);
        svg.Text(160, fy + 20, "y[2q+1] = w0·x[q+1] + w2·x[q]", 13);
        svg.Text(470, fy + 20, "a 2-tap stride-1 correlation of x with taps (w2, w0)", 13, fill: "#555555");
        svg.Text(20, fy + 44, $"{InRange()} multiply-adds, no zeros, no column buffer, every output written once; s^D phases in D dimensions.", 12.5);
    }

    private static int InRange()
    {
        int n = 0;
        for (int i = 0; i < I; i++)
        for (int k = 0; k < K; k++)
            if (i * S + k - P is >= 0 and < O) n++;
        return n;
    }

    private static void Cell(Svg svg, double col, double y, string fill, string label, string? dash, string textFill)
    {
        double x = X0 + col * Cw;
        svg.Rect(x + 1, y, Cw - 2, Ch, fill, "#666666", 1, dash, 3);
        svg.Text(x + Cw / 2, y + 20, label, label.Length > 3 ? 11 : 13, "middle", textFill);
    }

    private static void Brace(Svg svg, double x1, double x2, double y, string label)
    {
        svg.LineSeg(x1 + 3, y, x2 - 3, y, "#888888", 1);
        svg.LineSeg(x1 + 3, y - 4, x1 + 3, y, "#888888", 1);
        svg.LineSeg(x2 - 3, y - 4, x2 - 3, y, "#888888", 1);
        svg.Text((x1 + x2) / 2, y + 13, label, 10.5, "middle", "#666666");
    }
}
