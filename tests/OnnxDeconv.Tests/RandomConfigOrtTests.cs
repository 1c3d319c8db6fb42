using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.Geometry;
using OnnxDeconv.Kernels;
using OnnxDeconv.TestSupport;
using Xunit.Abstractions;

namespace OnnxDeconv.Tests;

/// <summary>
/// Geometry and the scalar reference against ONNX Runtime's ConvTranspose (ORT_DISABLE_ALL, 1 thread) on seeded random
/// configurations. Shapes must match exactly; values within |a-b| &lt;= 1e-5 + 1e-4*|b| (float32, b = ONNX Runtime).
/// Every disagreement is collected so one run shows them all, each with its replayable case line.
/// </summary>
public sealed class RandomConfigOrtTests(ITestOutputHelper output)
{
    private const int FirstSeed = 1000;
    private const int Count = 600;

    [Fact]
    public void RandomConfigs_GeometryShapeAndReferenceValues_MatchOnnxRuntime()
    {
        var failures = new List<string>();
        var coverage = new SortedDictionary<string, int>(StringComparer.Ordinal);
        int ran = 0;
        long compared = 0;
        foreach (var c in RandomConvTranspose.Cases(ConvTransposeFlavor.OrtAccepted, FirstSeed, Count))
        {
            ran++;
            var (problem, g) = Check(c);
            if (problem is not null) failures.Add($"{c}\n    -> {problem}");
            if (g is not null)
            {
                compared += g.OutputShape.Aggregate(1L, (p, v) => p * v);
                foreach (var feature in Features(c, g)) coverage[feature] = coverage.GetValueOrDefault(feature) + 1;
            }
        }
        output.WriteLine($"{ran} configurations, {compared} output values compared; coverage: "
            + string.Join(", ", coverage.Select(kv => $"{kv.Key}={kv.Value}")));
        Assert.True(failures.Count == 0,
            $"{failures.Count} of {ran} configurations disagree with ONNX Runtime:\n" + string.Join("\n", failures.Take(25)));
        // The generator must keep exercising every behaviour the geometry distinguishes; a silent loss of coverage fails.
        var missing = AllFeatures.Where(f => coverage.GetValueOrDefault(f) < 5).ToList();
        Assert.True(missing.Count == 0, "features seen fewer than 5 times: " + string.Join(", ", missing));
    }

    private static readonly string[] AllFeatures =
    [
        "rank1", "rank2", "rank3", "batch2", "group", "depthwise", "dilation", "stride", "output_padding",
        "pads_asymmetric", "pads_absent", "kernel_shape_absent", "kernel_shape_present", "bias", "no_bias",
        "W_initializer", "W_input", "opset11", "opset22", "VALID",
        "output_shape_odd_total_begin", "output_shape_odd_total_end", "output_shape_ignores_pads", "output_shape_extends_end", "output_shape_extends_end_SAME_UPPER",
        "SAME_UPPER_odd_total", "SAME_LOWER_odd_total", "SAME_negative_total_clamped",
    ];

    /// <summary>The behaviours one configuration exercises, for the coverage check.</summary>
    private static IEnumerable<string> Features(ConvTransposeCase c, ConvTransposeGeometry g)
    {
        var a = c.Attributes;
        yield return $"rank{c.Rank}";
        yield return $"opset{c.Opset}";
        if (g.Batch == 2) yield return "batch2";
        if (g.Group > 1) yield return g.InChannelsPerGroup == 1 ? "depthwise" : "group";
        if (g.Axes.Any(x => x.Dilation > 1)) yield return "dilation";
        if (g.Axes.Any(x => x.Stride > 1)) yield return "stride";
        if (g.Axes.Any(x => x.OutputPadding > 0)) yield return "output_padding";
        if (a.Pads is null && a.OutputShape is null && a.AutoPad == AutoPad.NotSet) yield return "pads_absent";
        if (a.Pads is not null && a.OutputShape is null && g.Axes.Any(x => x.PadBegin != x.PadEnd)) yield return "pads_asymmetric";
        yield return a.KernelShape is null ? "kernel_shape_absent" : "kernel_shape_present";
        yield return c.Bias is null ? "no_bias" : "bias";
        yield return c.WeightIsInitializer ? "W_initializer" : "W_input";
        if (a.AutoPad == AutoPad.Valid && a.OutputShape is null) yield return "VALID";
        bool odd = g.Axes.Any(x => (x.PadBegin + x.PadEnd) % 2 == 1);
        if (a.OutputShape is not null)
        {
            if (odd) yield return a.AutoPad == AutoPad.SameUpper ? "output_shape_odd_total_end" : "output_shape_odd_total_begin";
            if (a.Pads is not null) yield return "output_shape_ignores_pads";
            if (g.Axes.Any(x => x.PadEnd < 0))
                yield return a.AutoPad == AutoPad.SameUpper ? "output_shape_extends_end_SAME_UPPER" : "output_shape_extends_end";
        }
        else if (a.AutoPad is AutoPad.SameUpper or AutoPad.SameLower)
        {
            if (odd) yield return $"{ConvTransposeAttributes.AutoPadName(a.AutoPad)}_odd_total";
            if (g.Axes.Any(x => x.FullLength < x.Input * x.Stride)) yield return "SAME_negative_total_clamped";
        }
    }

    /// <summary>
    /// stride &lt;= output_padding &lt; dilation: the spec allows it, ONNX Runtime refuses the node. The geometry must accept
    /// and report it, ONNX Runtime must really refuse it, and the reference must still compute the spec: output_padding
    /// only lengthens the output, so its values equal ONNX Runtime's for the same node without output_padding and
    /// without end padding wherever that output reaches, and bias (or 0) beyond it.
    /// </summary>
    [Fact]
    public void SpecOnlyOutputPadding_GeometryAcceptsAndReportsIt_OrtRefuses_ReferenceStillMatchesOrt()
    {
        int checkedCount = 0;
        foreach (var c in RandomConvTranspose.Cases(ConvTransposeFlavor.SpecOnlyOutputPadding, 50_000, 60))
        {
            var g = ConvTransposeGeometry.Resolve(c.Attributes, c.InputShape, c.WeightShape);
            Assert.True(g.OrtRejectsOutputPadding, $"not reported as refused by ONNX Runtime: {c}");

            var refused = Record.Exception(() => OnnxDeconv.GraphRewrite.Runtime.OrtRunner.RunOnce(c.BuildModel(), c.Inputs()));
            Assert.True(refused is OnnxRuntimeException && refused.Message.Contains("output_padding", StringComparison.Ordinal),
                $"ONNX Runtime did not refuse output_padding >= stride: {c}: {refused?.Message ?? "it ran"}");

            int r = c.Rank;
            long[] pads = [.. g.Axes.Select(a => a.PadBegin), .. new long[r]];
            var variant = c.Attributes with { OutputPadding = null, Pads = pads };
            var g1 = ConvTransposeGeometry.Resolve(variant, c.InputShape, c.WeightShape);
            var ort = OnnxDeconv.GraphRewrite.Runtime.OrtRunner.RunOnce(c.BuildModel(variant), c.Inputs())[0];
            Assert.Equal(g1.OutputShape, ort.Dims);

            var expected = ExpectedFromPrefix(g, g1, ort.AsFloats(), c.Bias);
            var actual = ReferenceConvTranspose.Compute(g, c.X, c.W, c.Bias ?? []);
            string? m = Close.Mismatch(actual, expected);
            Assert.True(m is null, $"{c}: {m}");
            checkedCount++;
        }
        Assert.Equal(60, checkedCount);
    }

    /// <summary>The output of <paramref name="g"/> built from <paramref name="prefix"/> (the output of <paramref name="g1"/>, same origin) and bias beyond it.</summary>
    private static float[] ExpectedFromPrefix(ConvTransposeGeometry g, ConvTransposeGeometry g1, float[] prefix, float[]? bias)
    {
        long spatial = g.Axes.Aggregate(1L, (p, a) => p * a.Output);
        long spatial1 = g1.Axes.Aggregate(1L, (p, a) => p * a.Output);
        var y = new float[g.Batch * g.OutChannels * spatial];
        var idx = new long[g.Rank];
        for (long nc = 0; nc < g.Batch * g.OutChannels; nc++)
        for (long o = 0; o < spatial; o++)
        {
            long rest = o, flat1 = 0;
            bool inside = true;
            for (int a = g.Rank - 1; a >= 0; a--) { idx[a] = rest % g.Axes[a].Output; rest /= g.Axes[a].Output; }
            for (int a = 0; a < g.Rank; a++)
            {
                if (idx[a] >= g1.Axes[a].Output) { inside = false; break; }
                flat1 = flat1 * g1.Axes[a].Output + idx[a];
            }
            y[nc * spatial + o] = inside ? prefix[nc * spatial1 + flat1] : bias is null ? 0f : bias[nc % g.OutChannels];
        }
        return y;
    }

    [Fact]
    public void RandomConfigs_AreDeterministicFromTheSeed()
    {
        var a = RandomConvTranspose.Generate(4242, ConvTransposeFlavor.OrtAccepted);
        var b = RandomConvTranspose.Generate(4242, ConvTransposeFlavor.OrtAccepted);
        Assert.Equal(a.ToString(), b.ToString());
        Assert.Equal(a.X, b.X);
        Assert.Equal(a.W, b.W);
        Assert.NotEqual(a.ToString(), RandomConvTranspose.Generate(4243, ConvTransposeFlavor.OrtAccepted).ToString());
    }

    /// <summary>Null when geometry, reference and ONNX Runtime agree; otherwise what differs.</summary>
    internal static (string? Problem, ConvTransposeGeometry? Geometry) Check(ConvTransposeCase c)
    {
        ConvTransposeGeometry? g = null;
        string? geometryError = null;
        try { g = ConvTransposeGeometry.Resolve(c.Attributes, c.InputShape, c.WeightShape); }
        catch (GeometryException e) { geometryError = $"[{e.Attribute}] {e.Message}"; }

        float[]? ortY = null;
        long[]? ortShape = null;
        string? ortError = null;
        try
        {
            var y = OnnxDeconv.GraphRewrite.Runtime.OrtRunner.RunOnce(c.BuildModel(), c.Inputs())[0];
            ortY = y.AsFloats();
            ortShape = y.Dims;
        }
        catch (OnnxRuntimeException e) { ortError = e.Message; }

        return (Compare(g, geometryError, ortY, ortShape, ortError, c), g);
    }

    private static string? Compare(ConvTransposeGeometry? g, string? geometryError, float[]? ortY, long[]? ortShape, string? ortError, ConvTransposeCase c)
    {
        if (g is null && ortError is not null) return $"both refuse; generator should not produce this (geometry: {geometryError}; ORT: {ortError})";
        if (g is null) return $"geometry refuses but ONNX Runtime accepts with shape {Fmt(ortShape!)}: {geometryError}";
        if (ortError is not null) return $"geometry gives {Fmt(g.OutputShape)} but ONNX Runtime refuses: {ortError}";
        if (!g.OutputShape.SequenceEqual(ortShape!)) return $"shape: geometry {Fmt(g.OutputShape)} vs ONNX Runtime {Fmt(ortShape!)} (pads {Fmt(g.Pads)})";
        var refY = ReferenceConvTranspose.Compute(g, c.X, c.W, c.Bias ?? []);
        string? m = Close.Mismatch(refY, ortY!);
        return m is null ? null : $"values (shape {Fmt(g.OutputShape)}, pads {Fmt(g.Pads)}): {m}";
    }

    private static string Fmt(long[] v) => "[" + string.Join(",", v) + "]";
}
