using System.Text.Json;
using OnnxDeconv.Explain;
using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;
using static OnnxDeconv.Cli.Tests.CliHarness;

namespace OnnxDeconv.Cli.Tests;

/// <summary>`onnx-deconv explain` with PyTorch-style arguments: the worked answers the project was founded on.</summary>
public class ExplainArgumentsTests
{
    [Fact]
    public void Explain_2x2Kernel2Stride2Padding0_Gives4x4()
    {
        var r = Run("explain", "--input", "2,2", "--kernel", "2", "--stride", "2", "--padding", "0");
        Assert.True(r.Code == 0, r.ToString());
        Assert.Contains("input 2x2 -> output 4x4", r.Out);
        Assert.Contains("= 2*(2-1) - 2*0 + 1*(2-1) + 0 + 1 = 4", r.Out);
        Assert.Contains("No padding: all of it is kept", r.Flat);

        var j = Run("explain", "--input", "2,2", "--kernel", "2", "--stride", "2", "--padding", "0", "--json").Json();
        var res = j.GetProperty("results")[0];
        Assert.Equal([4L, 4L], res.GetProperty("spatialOutput").Longs());
        Assert.Equal(1, res.GetProperty("axes")[0].GetProperty("implicitPadBegin").GetInt64());
        Assert.Equal([0L, 0L, 0L, 0L], res.GetProperty("onnx").GetProperty("pads").Longs());
    }

    [Fact]
    public void Explain_2x2Kernel2Stride2Padding1_Gives2x2_BecausePaddingRemovesBorderRowsOfTheFullOutput()
    {
        var r = Run("explain", "--input", "2,2", "--kernel", "2", "--stride", "2", "--padding", "1");
        Assert.True(r.Code == 0, r.ToString());
        Assert.Contains("input 2x2 -> output 2x2", r.Out);
        Assert.Contains("full output is s*(I-1) + d*(k-1) + 1 + op = 4", r.Flat);
        Assert.Contains("it removes 1 position(s) at the begin and 1 at the end of that full output, so O = 4 - 1 - 1 = 2", r.Flat);
        // The picture shows the two border windows being dropped and two surviving.
        Assert.Equal(2, CountOccurrences(r.Out, "(removed by pads)"));
        Assert.Contains("-> y0", r.Out);
        Assert.Contains("-> y1", r.Out);
        Assert.DoesNotContain("-> y2", r.Out);

        var axis = Run("explain", "--input", "2,2", "--kernel", "2", "--stride", "2", "--padding", "1", "--json")
            .Json().GetProperty("results")[0].GetProperty("axes")[0];
        Assert.Equal(4, axis.GetProperty("fullLength").GetInt64());
        Assert.Equal(1, axis.GetProperty("padBegin").GetInt64());
        Assert.Equal(1, axis.GetProperty("padEnd").GetInt64());
        Assert.Equal(2, axis.GetProperty("output").GetInt64());
        Assert.Equal(0, axis.GetProperty("implicitPadBegin").GetInt64());
    }

    [Fact]
    public void Explain_Input12Kernel5Stride2_Gives27_AndOutputPadding1Gives28_BecauseConvMapsBothTo12()
    {
        var r = Run("explain", "--input", "12", "--kernel", "5", "--stride", "2");
        Assert.True(r.Code == 0, r.ToString());
        Assert.Contains("input 12 -> output 27", r.Out);
        Assert.Contains("= 2*(12-1) - 2*0 + 1*(5-1) + 0 + 1 = 27", r.Out);
        Assert.Contains("Conv(k=5, s=2, p=0), which maps 27 and 28 to 12", r.Flat);
        Assert.Contains("28 -> Conv(k=5, s=2, p=0) -> 12 -> ConvTranspose with output_padding=1 -> 28", r.Flat);

        var axis = Run("explain", "--input", "12", "--kernel", "5", "--stride", "2", "--json")
            .Json().GetProperty("results")[0].GetProperty("axes")[0];
        Assert.Equal(27, axis.GetProperty("output").GetInt64());
        var pre = axis.GetProperty("inverseConv").GetProperty("preimages").EnumerateArray()
            .Select(p => (p.GetProperty("convInput").GetInt64(), p.GetProperty("outputPadding").GetInt64(), p.GetProperty("selected").GetBoolean()))
            .ToArray();
        Assert.Equal([(27L, 0L, true), (28L, 1L, false)], pre);

        var withOp = Run("explain", "--input", "12", "--kernel", "5", "--stride", "2", "--output-padding", "1", "--json")
            .Json().GetProperty("results")[0].GetProperty("axes")[0];
        Assert.Equal(28, withOp.GetProperty("output").GetInt64());
        Assert.True(withOp.GetProperty("inverseConv").GetProperty("preimages")[1].GetProperty("selected").GetBoolean());
    }

    [Fact]
    public void Explain_Input28Kernel5Stride2_RoundTripShows28To12To27_AndOutputPadding1Restores28()
    {
        var r = Run("explain", "--input", "28", "--kernel", "5", "--stride", "2", "--padding", "0");
        Assert.True(r.Code == 0, r.ToString());
        Assert.Contains("28 -> Conv(k=5, s=2, p=0) -> 12 -> ConvTranspose(same k, s, p, d) -> 27; output_padding=1 gives 28", r.Flat);

        var rt = Run("explain", "--input", "28", "--kernel", "5", "--stride", "2", "--padding", "0", "--json")
            .Json().GetProperty("results")[0].GetProperty("axes")[0].GetProperty("roundTrip");
        Assert.Equal(28, rt.GetProperty("convInput").GetInt64());
        Assert.Equal(12, rt.GetProperty("convOutput").GetInt64());
        Assert.Equal(27, rt.GetProperty("transposeOutput").GetInt64());
        Assert.Equal(1, rt.GetProperty("outputPaddingNeeded").GetInt64());
    }

    [Fact]
    public void Explain_PyTorchPaddingAndOutputPadding_MapToOnnxPadsPerAxis()
    {
        var res = Run("explain", "--input", "8,6", "--kernel", "3", "--stride", "2", "--padding", "1,0", "--output-padding", "1", "--json")
            .Json().GetProperty("results")[0];
        var onnx = res.GetProperty("onnx");
        Assert.Equal([1L, 0L, 1L, 0L], onnx.GetProperty("pads").Longs());
        Assert.Equal([1L, 1L], onnx.GetProperty("output_padding").Longs());
        Assert.Equal([3L, 3L], onnx.GetProperty("kernel_shape").Longs());
        // 2*7 - 2 + 2 + 1 + 1 = 16 ; 2*5 - 0 + 2 + 1 + 1 = 14
        Assert.Equal([16L, 14L], res.GetProperty("spatialOutput").Longs());
    }

    [Fact]
    public void Explain_OutputPaddingAtLeastStrideButBelowDilation_SaysOnnxRuntimeRefuses_AndOrtDoesRefuse()
    {
        var r = Run("explain", "--input", "5", "--kernel", "3", "--stride", "1", "--dilation", "3", "--output-padding", "2", "--json");
        Assert.True(r.Code == 0, r.ToString());
        var res = r.Json().GetProperty("results")[0];
        Assert.False(res.GetProperty("ortAccepts").GetBoolean());
        Assert.Contains("output_padding 2 >= stride 1", res.GetProperty("ortNote").GetString());
        Assert.Contains("REFUSES", Run("explain", "--input", "5", "--kernel", "3", "--stride", "1", "--dilation", "3", "--output-padding", "2").Out);

        // The claim itself: ONNX Runtime rejects this node.
        var b = new ModelBuilder("op_ge_stride");
        b.Input("x", [1, 1, 5]);
        b.Initializer("w", [1, 1, 3], new float[3]);
        b.Node(Ops.ConvTranspose.OpType, ["x", "w"], [Attributes.Ints(Ops.ConvTranspose.Strides, [1]), Attributes.Ints(Ops.ConvTranspose.Dilations, [3]), Attributes.Ints(Ops.ConvTranspose.OutputPadding, [2])], output: "y");
        b.Output("y", null);
        Assert.ThrowsAny<Exception>(() => OrtRunner.RunOnce(b.Build(), [TensorValue.Float("x", [1, 1, 5], new float[5])]));
    }

    [Theory]
    [InlineData("--padding", "-1", "--padding: padding is -1; must be >= 0")]
    [InlineData("--output-padding", "2", "--output-padding: output_padding is 2; must be smaller than max(stride, dilation) = 2")]
    [InlineData("--input", "0", "--input: input is 0; must be positive")]
    [InlineData("--input", "12,x", "--input: '12,x' is not an integer")]
    [InlineData("--padding", "20", "--padding: padding = 20 removes 40 of the 27 positions")]
    [InlineData("--kernel", "5,5,5", "--kernel: kernel has 3 values; give one value")]
    public void Explain_InvalidArgument_Exits3WithMessageNamingIt(string option, string value, string expected)
    {
        var args = new List<string> { "explain", "--input", "12", "--kernel", "5", "--stride", "2" };
        int at = args.IndexOf(option);
        if (at >= 0) args[at + 1] = value; else args.AddRange([option, value]);
        var r = Run([.. args]);
        Assert.Equal(ExitCodes.InvalidInput, r.Code);
        Assert.Contains(expected, r.Err);
        Assert.Empty(r.Out);
    }

    [Fact]
    public void Explain_NeitherModelNorArguments_Exits3()
    {
        var r = Run("explain");
        Assert.Equal(ExitCodes.InvalidInput, r.Code);
        Assert.Contains("--input and --kernel", r.Err);
    }

    [Fact]
    public void Explainer_InverseConvPreimages_AreExactlyTheConvInputsMappedToI_AndOutputPaddingRestoresEach()
    {
        // Seeded sweep over small configurations: every listed preimage L maps to I under the Conv formula, the
        // ConvTranspose with that output_padding gives L back, and no other length near them maps to I.
        var rng = new Random(1234);
        for (int n = 0; n < 300; n++)
        {
            long i = rng.Next(1, 20), k = rng.Next(1, 7), s = rng.Next(1, 5), d = rng.Next(1, 3);
            long full = s * (i - 1) + d * (k - 1) + 1;
            long p = rng.Next(0, (int)Math.Max(1, (full - 1) / 2));
            var e = Explainer.FromPyTorch([i], [k], [s], [p], [0], [d]);
            var inv = e.Axes[0].InverseConv!;
            var mapped = Enumerable.Range(1, (int)(full + s + 5)).Where(l => Explainer.ConvOutput(l, k, s, p, p, d) == i).Select(l => (long)l).ToArray();
            Assert.Equal(mapped, inv.Preimages.Select(x => x.ConvInput).ToArray());
            foreach (var pre in inv.Preimages)
                Assert.Equal(pre.ConvInput, Explainer.FromPyTorch([i], [k], [s], [p], [pre.OutputPadding], [d]).Axes[0].Geometry.Output);
        }
    }

    [Fact]
    public void Explainer_ConvOutputFormula_MatchesOnnxRuntimeConvShapes()
    {
        // The inverse-Conv claims rest on this formula; check it against ONNX Runtime's Conv (ShapeProbe reads the shape).
        var cases = new (long L, long K, long S, long P, long D)[] { (28, 5, 2, 0, 1), (27, 5, 2, 0, 1), (9, 3, 2, 1, 1), (10, 3, 2, 1, 1), (17, 4, 3, 2, 2), (5, 2, 2, 1, 1), (7, 1, 3, 0, 1) };
        var b = new ModelBuilder("conv_shapes");
        b.Input("x", [1, 1, 28]);
        foreach (var (c, idx) in cases.Select((c, idx) => (c, idx)))
        {
            var sliced = b.Node(Ops.Slice.OpType, ["x", b.InitializerInt64($"st{idx}", [1], [0]), b.InitializerInt64($"en{idx}", [1], [c.L]), b.InitializerInt64($"ax{idx}", [1], [2])], output: $"s{idx}");
            b.Initializer($"w{idx}", [1, 1, c.K], new float[c.K]);
            b.Node(Ops.Conv.OpType, [sliced, $"w{idx}"], [Attributes.Ints(Ops.Conv.Strides, [c.S]), Attributes.Ints(Ops.Conv.Pads, [c.P, c.P]), Attributes.Ints(Ops.Conv.Dilations, [c.D])], output: $"y{idx}");
            b.Output($"y{idx}", null);
        }
        var probed = ShapeProbe.Probe(b.Build(), cases.Select((_, idx) => $"y{idx}"));
        foreach (var (c, idx) in cases.Select((c, idx) => (c, idx)))
            Assert.Equal(probed.Shapes[$"y{idx}"][2], Explainer.ConvOutput(c.L, c.K, c.S, c.P, c.P, c.D));
    }

    private static int CountOccurrences(string text, string what)
    {
        int n = 0;
        for (int i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + what.Length, StringComparison.Ordinal)) n++;
        return n;
    }
}

/// <summary>Seeded sweeps: explain never fails on valid arguments, and its sizes are ONNX Runtime's.</summary>
public class ExplainSweepTests
{
    [Fact]
    public void Explain_SeededValidArguments_OutputSizeEqualsOnnxRuntimeConvTranspose()
    {
        // 60 random 1-D configurations, all inside what ONNX Runtime accepts (output_padding < stride), as one model
        // with one input per case so a single ONNX Runtime session answers them all.
        var rng = new Random(20261125);
        var b = new ModelBuilder("sweep");
        var expected = new List<(string Y, long O)>();
        for (int n = 0; n < 60; n++)
        {
            long i = rng.Next(1, 12), k = rng.Next(1, 6), s = rng.Next(1, 5), d = rng.Next(1, 4);
            long op = rng.Next(0, (int)s);
            long full = s * (i - 1) + d * (k - 1) + 1 + op;
            long p = rng.Next(0, (int)((full - 1) / 2) + 1);
            var r = CliHarness.Run("explain", "--input", $"{i}", "--kernel", $"{k}", "--stride", $"{s}", "--padding", $"{p}",
                "--output-padding", $"{op}", "--dilation", $"{d}", "--json");
            Assert.True(r.Code == 0, r.ToString());
            var res = r.Json().GetProperty("results")[0];
            Assert.True(res.GetProperty("ortAccepts").GetBoolean());
            long o = res.GetProperty("spatialOutput")[0].GetInt64();
            Assert.Equal(full - 2 * p, o);
            Assert.NotEmpty(CliHarness.Run("explain", "--input", $"{i}", "--kernel", $"{k}", "--stride", $"{s}", "--padding", $"{p}",
                "--output-padding", $"{op}", "--dilation", $"{d}").Out);

            b.Input($"x{n}", [1, 1, i]);
            b.Initializer($"w{n}", [1, 1, k], new float[k]);
            b.Node(Ops.ConvTranspose.OpType, [$"x{n}", $"w{n}"],
                [Attributes.Ints(Ops.ConvTranspose.Strides, [s]), Attributes.Ints(Ops.ConvTranspose.Pads, [p, p]),
                 Attributes.Ints(Ops.ConvTranspose.OutputPadding, [op]), Attributes.Ints(Ops.ConvTranspose.Dilations, [d])], output: $"y{n}");
            b.Output($"y{n}", null);
            expected.Add(($"y{n}", o));
        }
        var probed = ShapeProbe.Probe(b.Build(), expected.Select(e => e.Y));
        foreach (var (y, o) in expected) Assert.Equal(o, probed.Shapes[y][2]);
    }
}
