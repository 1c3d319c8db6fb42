using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Runtime;
using static OnnxDeconv.Cli.Tests.CliHarness;
using R = OnnxDeconv.GraphRewrite.Ops.Resize;

namespace OnnxDeconv.Cli.Tests;

/// <summary>Resize/Upsample→Conv detection and the "integer nearest repetition" rule, checked against ONNX Runtime.</summary>
public class ResizeConvPairTests
{
    private static ModelProto ResizeConv(string? ctm, string? nearest, float scale, string mode = "nearest", long opset = 19, bool sizesInstead = false)
    {
        var b = new ModelBuilder("resize_conv", opset);
        b.Input("x", [1, 2, 5, 5]);
        var attrs = new List<AttributeProto> { Attributes.String(R.Mode, mode) };
        if (ctm is not null) attrs.Add(Attributes.String(R.CoordinateTransformationMode, ctm));
        if (nearest is not null) attrs.Add(Attributes.String(R.NearestMode, nearest));
        string u = sizesInstead
            ? b.Node(R.OpType, ["x", "", "", b.InitializerInt64("sizes", [4], [1, 2, (long)(5 * scale), (long)(5 * scale)])], attrs, output: "u", name: "up")
            : b.Node(R.OpType, ["x", "", b.Initializer("scales", [4], [1f, 1f, scale, scale])], attrs, output: "u", name: "up");
        b.Initializer("w", [3, 2, 3, 3], new float[54]);
        b.Node(Ops.Conv.OpType, [u, "w"], [Attributes.Ints(Ops.Conv.Pads, [1, 1, 1, 1])], output: "y", name: "conv");
        b.Output("y", null);
        return b.Build();
    }

    [Fact]
    public void FindAll_ResizeNearestAsymmetricFloorTimes2ThenConv_IsExactRepetition()
    {
        var pairs = ResizeConvPair.FindAll(new GraphIndex(ResizeConv("asymmetric", "floor", 2f)));
        var p = Assert.Single(pairs);
        Assert.Equal("up", p.Resize.Name);
        Assert.Equal("conv", p.Conv.Name);
        Assert.Equal([1f, 1f, 2f, 2f], p.Scales!);
        Assert.Equal([1L, 1, 1, 1], p.ConvPads!);
        Assert.Equal([3L, 3], p.ConvKernel!);
        Assert.True(p.IsIntegerNearestRepetition, p.RepetitionNote);
    }

    [Fact]
    public void FindAll_DefaultsOfOpset19_AreHalfPixelRoundPreferFloor_WhichRepeatsAtIntegerScales()
    {
        var p = Assert.Single(ResizeConvPair.FindAll(new GraphIndex(ResizeConv(null, null, 3f))));
        Assert.Equal("half_pixel", p.CoordinateTransformationMode);
        Assert.Equal("round_prefer_floor", p.NearestMode);
        Assert.True(p.IsIntegerNearestRepetition, p.RepetitionNote);
    }

    [Fact]
    public void FindAll_ConstantSizes_BecomeScalesWhenInputShapeKnown()
    {
        var m = ResizeConv("asymmetric", "floor", 2f, sizesInstead: true);
        var p = Assert.Single(ResizeConvPair.FindAll(new GraphIndex(m), v => v == "x" ? [1, 2, 5, 5] : null));
        Assert.Equal([1L, 2, 10, 10], p.Sizes!);
        Assert.Equal([1f, 1f, 2f, 2f], p.Scales!);
        Assert.True(p.IsIntegerNearestRepetition);
    }

    [Theory]
    [InlineData("asymmetric", "floor", 2f, true)]
    [InlineData("asymmetric", "floor", 3f, true)]
    [InlineData("half_pixel", "round_prefer_floor", 2f, true)]
    [InlineData("half_pixel", "round_prefer_ceil", 3f, true)]
    [InlineData("pytorch_half_pixel", "round_prefer_floor", 3f, true)]
    [InlineData("asymmetric", "round_prefer_floor", 2f, true)]
    [InlineData("asymmetric", "round_prefer_floor", 3f, false)]
    [InlineData("asymmetric", "round_prefer_ceil", 2f, false)]
    [InlineData("half_pixel", "floor", 2f, false)]
    [InlineData("half_pixel", "ceil", 2f, false)]
    [InlineData("align_corners", "round_prefer_floor", 3f, false)]
    [InlineData("asymmetric", "floor", 1.5f, false)]
    public void Repetition_Rule_AgreesWithOnnxRuntimeResize(string ctm, string nearest, float scale, bool expected)
    {
        var (exact, note) = ResizeConvPair.Repetition("nearest", ctm, nearest, [1f, 1f, scale, scale]);
        Assert.True(exact == expected, note);

        // Ground truth: run the Resize alone on a ramp and compare with x[floor(j/s)].
        var b = new ModelBuilder("resize_only", 19);
        b.Input("x", [1, 1, 1, 7]);
        b.Node(R.OpType, ["x", "", b.Initializer("scales", [4], [1f, 1f, 1f, scale])],
            [Attributes.String(R.Mode, "nearest"), Attributes.String(R.CoordinateTransformationMode, ctm), Attributes.String(R.NearestMode, nearest)], output: "u");
        b.Output("u", null);
        var ramp = Enumerable.Range(0, 7).Select(i => (float)i).ToArray();
        var u = OrtRunner.RunOnce(b.Build(), [TensorValue.Float("x", [1, 1, 1, 7], ramp)])[0].AsFloats();
        bool repetition = scale == MathF.Floor(scale) && u.Length == 7 * (int)scale
            && u.Select((v, j) => v == ramp[j / (int)scale]).All(x => x);
        Assert.Equal(repetition, exact);
    }

    [Fact]
    public void FindAll_UpsampleOpset9ThenConv_IsFloorRepetition_AndLinearIsNot()
    {
        var b = new ModelBuilder("upsample", 9);
        b.Input("x", [1, 1, 4, 4]);
        var u = b.Node(Ops.Upsample.OpType, ["x", b.Initializer("scales", [4], [1f, 1f, 2f, 2f])], [Attributes.String(Ops.Upsample.Mode, "nearest")], name: "up_nearest");
        var v = b.Node(Ops.Upsample.OpType, ["x", b.Initializer("scales_lin", [4], [1f, 1f, 2f, 2f])], [Attributes.String(Ops.Upsample.Mode, "linear")], name: "up_linear");
        b.Initializer("w", [1, 1, 3, 3], new float[9]);
        b.Output(b.Node(Ops.Conv.OpType, [u, "w"], name: "c1"), null);
        b.Output(b.Node(Ops.Conv.OpType, [v, "w"], name: "c2"), null);
        var pairs = ResizeConvPair.FindAll(new GraphIndex(b.Build())).ToDictionary(p => p.Resize.Name);
        Assert.True(pairs["up_nearest"].IsIntegerNearestRepetition, pairs["up_nearest"].RepetitionNote);
        Assert.Equal("floor", pairs["up_nearest"].NearestMode);
        Assert.False(pairs["up_linear"].IsIntegerNearestRepetition);
    }

    [Fact]
    public void Info_ResizeConvModel_ListsPairWithModesScalesConvPadsAndShapes()
    {
        using var tmp = new TempDir();
        var path = tmp.File("rc.onnx");
        ModelIO.Save(ResizeConv("asymmetric", "floor", 2f), path);
        var r = Run("info", path, "--json");
        Assert.True(r.Code == 0, r.ToString());
        var p = Assert.Single(r.Json().GetProperty("resizeConv").EnumerateArray());
        Assert.Equal("nearest", p.GetProperty("mode").GetString());
        Assert.Equal("asymmetric", p.GetProperty("coordinate_transformation_mode").GetString());
        Assert.Equal("floor", p.GetProperty("nearest_mode").GetString());
        Assert.Equal([1L, 1, 1, 1], p.GetProperty("convPads").Longs());
        Assert.Equal([1L, 2, 10, 10], p.GetProperty("resizedShape").Longs());
        Assert.Equal([1L, 3, 10, 10], p.GetProperty("convOutputShape").Longs());
        Assert.True(p.GetProperty("integerNearestRepetition").GetBoolean());
        // Conv k3 on 10x10: 3*2*9*100 MACs; the ConvTranspose k4 s2 on 5x5: 2*3*16*25.
        Assert.True(p.GetProperty("rewritable").GetBoolean());
        Assert.Equal(5400, p.GetProperty("macsBefore").GetInt64());
        Assert.Equal(2400, p.GetProperty("macsAfter").GetInt64());

        var text = Run("info", path);
        Assert.Contains("Resize/Upsample -> Conv pairs (1)", text.Out);
        Assert.Contains("yes: integer nearest repetition", text.Out);
        Assert.Contains("5,400 -> 2,400 (2.25x fewer)", text.Out);
    }

    [Fact]
    public void Info_NotExactPair_SaysWhyItIsNotRewritten_WithoutMacs()
    {
        using var tmp = new TempDir();
        var path = tmp.File("rc.onnx");
        ModelIO.Save(ResizeConv("align_corners", "round_prefer_floor", 2f), path);
        var r = Run("info", path, "--json");
        Assert.True(r.Code == 0, r.ToString());
        var p = Assert.Single(r.Json().GetProperty("resizeConv").EnumerateArray());
        Assert.False(p.GetProperty("rewritable").GetBoolean());
        Assert.Contains("align_corners", p.GetProperty("reason").GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, p.GetProperty("macsBefore").ValueKind);
    }

    [Fact]
    public void Info_UpfirdnModel_ListsZeroInsertionPatternWithShapesAndMacs()
    {
        var path = Path.Combine(OnnxDeconv.TestSupport.RepoPaths.DemoModels, "upfirdn_zero_insertion.onnx");
        var r = Run("info", path, "--json");
        Assert.True(r.Code == 0, r.ToString());
        var z = Assert.Single(r.Json().GetProperty("zeroInsertionConv").EnumerateArray());
        Assert.True(z.GetProperty("rewritable").GetBoolean());
        Assert.Equal([2L, 2], z.GetProperty("strides").Longs());
        Assert.Equal([1L, 16, 16, 16], z.GetProperty("inputShape").Longs());
        Assert.Equal([1L, 16, 32, 32], z.GetProperty("convOutputShape").Longs());
        // Conv k4 16->16 on the 35x35 padded stuffed tensor (32x32 outputs) vs the ConvTranspose's 16 taps per input pixel.
        Assert.Equal(16L * 16 * 16 * 32 * 32, z.GetProperty("macsBefore").GetInt64());
        Assert.Equal(16L * 16 * 16 * 16 * 16, z.GetProperty("macsAfter").GetInt64());
        Assert.Empty(r.Json().GetProperty("resizeConv").EnumerateArray());

        var text = Run("info", path);
        Assert.Contains("Zero-insertion -> Conv patterns (1)", text.Out);
        Assert.Contains("4,194,304 -> 1,048,576 (4.00x fewer)", text.Out);
    }
}

public class LegacyResizeTests
{
    [Theory]
    [InlineData(10L, 3f)]
    [InlineData(10L, 2f)]
    [InlineData(9L, 3f)]
    public void LegacyResizeAndUpsample_NearestIsFloorRepetition_InOnnxRuntime(long opset, float scale)
    {
        // ResizeConvPair reports opset-10 Resize and Upsample as asymmetric+floor; check ONNX Runtime does exactly that.
        var b = new ModelBuilder("legacy", opset);
        b.Input("x", [1, 1, 1, 5]);
        string op = opset >= 10 ? Ops.Resize.OpType : Ops.Upsample.OpType;
        var u = b.Node(op, ["x", b.Initializer("scales", [4], [1f, 1f, 1f, scale])], [Attributes.String(Ops.Resize.Mode, "nearest")], output: "u");
        b.Initializer("w", [1, 1, 1, 1], [1f]);
        b.Output(b.Node(Ops.Conv.OpType, [u, "w"], output: "y"), null);
        var model = b.Build();
        var pair = Assert.Single(ResizeConvPair.FindAll(new GraphIndex(model)));
        Assert.True(pair.IsIntegerNearestRepetition, pair.RepetitionNote);

        var ramp = Enumerable.Range(0, 5).Select(i => (float)i).ToArray();
        var y = OrtRunner.RunOnce(model, [TensorValue.Float("x", [1, 1, 1, 5], ramp)])[0].AsFloats();
        Assert.Equal(Enumerable.Range(0, 5 * (int)scale).Select(j => ramp[j / (int)scale]).ToArray(), y);
    }
}
