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
        int ran = 0;
        var stats = new Dictionary<string, int>();
        foreach (var c in RandomConvTranspose.Cases(ConvTransposeFlavor.OrtAccepted, FirstSeed, Count))
        {
            ran++;
            Count1(stats, $"rank{c.Rank}");
            Count1(stats, ConvTransposeAttributes.AutoPadName(c.Attributes.AutoPad));
            if (c.Attributes.OutputShape is not null) Count1(stats, "output_shape");
            if (c.Attributes.Pads is not null) Count1(stats, "pads");
            if (c.Attributes.Group > 1 && c.Attributes.Group == c.InputShape[1]) Count1(stats, "depthwise");
            string? problem = Check(c);
            if (problem is not null) failures.Add($"{c}\n    -> {problem}");
        }
        output.WriteLine($"{ran} configurations: " + string.Join(", ", stats.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}={kv.Value}")));
        Assert.True(ran >= 500);
        Assert.True(failures.Count == 0, $"{failures.Count} of {ran} configurations disagree with ONNX Runtime:\n" + string.Join("\n", failures.Take(25)));
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

    private static void Count1(Dictionary<string, int> d, string key) => d[key] = d.GetValueOrDefault(key) + 1;

    /// <summary>Null when geometry, reference and ONNX Runtime agree; otherwise what differs.</summary>
    internal static string? Check(ConvTransposeCase c)
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
