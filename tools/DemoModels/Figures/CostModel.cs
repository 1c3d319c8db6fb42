using System.Globalization;
using System.Text;
using OnnxDeconv.Geometry;

namespace OnnxDeconv.DemoModels.Figures;

/// <summary>What one way of computing a ConvTranspose costs for one image: work and extra memory.</summary>
/// <param name="Macs">Multiply-adds the method performs.</param>
/// <param name="IntermediateBytes">Tensors the method materializes between nodes besides X, W and Y (zero-stuffed input, pre-DepthToSpace output).</param>
/// <param name="ScratchBytes">Scratch the kernels allocate (im2col / column buffers).</param>
/// <param name="ScratchWrittenBytes">Bytes the kernels write into that scratch (im2col expansion, column buffer), each read back once.</param>
/// <param name="Note">How the numbers come about, for the table.</param>
public sealed record MethodCost(string Method, long Macs, long IntermediateBytes, long ScratchBytes, long ScratchWrittenBytes, string Note);

/// <summary>
/// Closed-form costs of the ways to compute a ConvTranspose (docs/how-it-works.md, DESIGN.md section 1), from the
/// resolved geometry. Float32 throughout, one thread. Scratch follows ONNX Runtime's CPU kernels, one group at a time:
/// ConvTranspose allocates the whole column buffer; the NCHW Conv (MLAS) expands im2col fully when Cout/group exceeds
/// the output pixel count, otherwise in 128x128-float segments (64 KiB per thread) that stay in cache.
/// </summary>
public static class CostModel
{
    private const long F = sizeof(float);
    private const long MlasSegmentFloats = 128 * 128; // MLAS_SGEMM_STRIDEN * MLAS_SGEMM_STRIDEK

    /// <summary>Scratch bytes MLAS's NCHW Conv allocates on one thread (MlasConvPrepare: full or segmented im2col).</summary>
    public static long MlasConvScratchBytes(long filterCount, long outputPixels, long kDepth) =>
        (filterCount > outputPixels ? outputPixels * kDepth : MlasSegmentFloats) * F;

    public static IReadOnlyList<MethodCost> ConvTranspose(ConvTransposeGeometry g)
    {
        long cig = g.InChannelsPerGroup, cog = g.OutChannelsPerGroup, cout = g.OutChannels, cin = g.InChannels;
        long kProd = Prod(g.Axes, a => a.Kernel);
        long iProd = Prod(g.Axes, a => a.Input);
        long oProd = Prod(g.Axes, a => a.Output);
        long sProd = Prod(g.Axes, a => a.Stride);
        var list = new List<MethodCost>();

        // Zero insertion: stuff s-1 zeros, let the Conv pad d(K-1)-p (a negative pad would need a Slice; not modelled).
        long zProd = Prod(g.Axes, a => a.ZeroInsertedLength);
        list.Add(new MethodCost("Zero insertion + Conv", cout * cig * kProd * oProd, cin * zProd * F,
            MlasConvScratchBytes(cog, oProd, cig * kProd), cig * kProd * oProd * F,
            $"every output runs all K^D taps; zero-stuffed input is {Ratio(zProd, iProd)}x the input; im2col expands Cin*K^D*O^D floats"));

        list.Add(new MethodCost("GEMM + col2im", g.UsefulMacs, 0, cog * kProd * iProd * F, cog * kProd * iProd * F * g.Group,
            $"every (i, k) pair, also those the pads crop; column buffer Cout*K^D*I^D, then {cog * kProd * iProd * g.Group:N0} scalar scatter-adds (col2im)"));

        if (g.Axes.All(a => a.Dilation == 1 && a.Kernel % a.Stride == 0))
        {
            // Each phase is a T-tap correlation (T = K/s) over the input padded by T-1: one Conv with Cout*s^D channels.
            long tProd = Prod(g.Axes, a => a.Kernel / a.Stride);
            long pProd = Prod(g.Axes, a => a.Input + a.Kernel / a.Stride - 1);
            list.Add(new MethodCost("Polyphase as Conv + DepthToSpace + Slice", cout * sProd * cig * tProd * pProd,
                2 * cout * sProd * pProd * F, MlasConvScratchBytes(cog * sProd, pProd, cig * tProd), cig * tProd * pProd * F * g.Group,
                "one Conv with Cout*s^D channels and (K/s)^D taps computes the uncropped output; Conv and DepthToSpace outputs; im2col"));
        }

        long inRange = InRangeMacs(g);
        list.Add(new MethodCost("Polyphase gather (direct)", inRange, 0, 0, 0,
            "each output phase reads only its own taps from the original input, skips the pairs the pads crop; each output written once"));
        long writers = Prod(g.Axes, a => (a.Kernel * a.Dilation + a.Stride - 1) / a.Stride);
        list.Add(new MethodCost("Direct scatter", inRange, 0, 0, 0,
            $"each input pixel adds its K^D products into the output (cropped ones skipped); up to {writers} writers per output"));
        return list;
    }

    /// <summary>Multiply-adds whose (i, k) pair lands inside the cropped output: the least any exact method does.</summary>
    public static long InRangeMacs(ConvTransposeGeometry g)
    {
        long pairs = 1;
        foreach (var a in g.Axes)
        {
            long n = 0;
            for (long i = 0; i < a.Input; i++)
            for (long k = 0; k < a.Kernel; k++)
            {
                long o = i * a.Stride + k * a.Dilation - a.PadBegin;
                if (o >= 0 && o < a.Output) n++;
            }
            pairs *= n;
        }
        return g.Batch * g.InChannelsPerGroup * g.OutChannels * pairs;
    }

    /// <summary>Resize(nearest, integer s) + stride-1 Conv (K taps, pads pb) vs the same filter run per phase on x.</summary>
    public static (long ResizeConvMacs, long PolyphaseMacs, long UpsampledBytes) ResizeConv(long cin, long cout, long[] input, long kernel, long stride, long padBegin)
    {
        long oProd = input.Aggregate(1L, (p, v) => p * v * stride);
        long taps = PhaseTaps(kernel, stride, padBegin);
        long perOutput = 1, full = 1;
        foreach (var _ in input) { perOutput *= taps; full *= kernel; }
        return (cout * cin * full * oProd, cout * cin * perOutput * oProd, cin * oProd * F);
    }

    /// <summary>Largest number of distinct input offsets one output phase of Resize(s)+Conv(K, pb) reads (taps on the same offset add up).</summary>
    public static long PhaseTaps(long kernel, long stride, long padBegin)
    {
        long most = 0;
        for (long r = 0; r < stride; r++)
        {
            var offsets = new HashSet<long>();
            for (long k = 0; k < kernel; k++) offsets.Add(FloorDiv(r - padBegin + k, stride));
            most = Math.Max(most, offsets.Count);
        }
        return most;
    }

    /// <summary>The cost table of docs/how-it-works.md as markdown.</summary>
    public static string MarkdownTable(ConvTransposeGeometry g)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append("| Method | MACs | vs useful | Intermediates | Scratch allocated | Scratch written | Why |\n");
        sb.Append("|---|---:|---:|---:|---:|---:|---|\n");
        foreach (var c in ConvTranspose(g))
        {
            sb.Append(inv, $"| {c.Method} | {c.Macs:N0} | {(double)c.Macs / g.UsefulMacs:0.00}x | {Bytes(c.IntermediateBytes)} | {Bytes(c.ScratchBytes)} | {Bytes(c.ScratchWrittenBytes)} | {c.Note} |\n");
        }
        return sb.ToString();
    }

    public static string Bytes(long b) => b switch
    {
        0 => "0",
        < 1024 => $"{b} B",
        < 1024 * 1024 => string.Create(CultureInfo.InvariantCulture, $"{b / 1024.0:0.#} KiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{b / (1024.0 * 1024):0.##} MiB"),
    };

    private static string Ratio(long a, long b) => string.Create(CultureInfo.InvariantCulture, $"{(double)a / b:0.##}");

    private static long Prod(IEnumerable<AxisGeometry> axes, Func<AxisGeometry, long> f) => axes.Aggregate(1L, (p, a) => checked(p * f(a)));

    private static long FloorDiv(long a, long b) => a >= 0 ? a / b : -((-a + b - 1) / b);
}
