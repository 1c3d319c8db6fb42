using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Runtime;
using CT = OnnxDeconv.GraphRewrite.Ops.ConvTranspose;

namespace OnnxDeconv.Tests;

/// <summary>
/// Invalid ConvTranspose configurations: the geometry throws <see cref="GeometryException"/> whose Attribute and message
/// name the offending attribute (or input X/W), and ONNX Runtime refuses the same node, so the geometry is neither
/// looser nor stricter than the runtime it must match (one documented exception below).
/// </summary>
public sealed class GeometryValidationTests
{
    private sealed record Invalid(ConvTransposeAttributes Attrs, long[] X, long[] W, string Attribute, bool OrtRefuses = true);

    private static readonly long[] X1 = [1, 1, 3];
    private static readonly long[] W1 = [1, 1, 3];

    private static readonly Dictionary<string, Invalid> Cases = new(StringComparer.Ordinal)
    {
        ["output_padding >= max(stride, dilation)"] = new(new() { Strides = [2], Dilations = [1], OutputPadding = [2] }, X1, W1, CT.OutputPadding),
        ["output_padding >= dilation > stride"] = new(new() { Strides = [1], Dilations = [2], OutputPadding = [2] }, X1, W1, CT.OutputPadding),
        ["output_padding negative"] = new(new() { Strides = [2], OutputPadding = [-1] }, X1, W1, CT.OutputPadding),
        ["output_padding wrong length"] = new(new() { Strides = [2], OutputPadding = [0, 0] }, X1, W1, CT.OutputPadding),
        ["strides zero"] = new(new() { Strides = [0] }, X1, W1, CT.Strides),
        ["strides negative"] = new(new() { Strides = [-2] }, X1, W1, CT.Strides),
        ["strides wrong length"] = new(new() { Strides = [1, 1] }, X1, W1, CT.Strides),
        ["dilations zero"] = new(new() { Dilations = [0] }, X1, W1, CT.Dilations),
        ["dilations wrong length"] = new(new() { Dilations = [1, 1] }, X1, W1, CT.Dilations),
        ["kernel_shape zero"] = new(new() { KernelShape = [0] }, X1, W1, CT.KernelShape),
        ["kernel_shape contradicts W"] = new(new() { KernelShape = [2] }, X1, W1, CT.KernelShape),
        ["kernel_shape wrong length"] = new(new() { KernelShape = [3, 3] }, X1, W1, CT.KernelShape),
        ["pads negative"] = new(new() { Pads = [-1, 0] }, X1, W1, CT.Pads),
        ["pads wrong length"] = new(new() { Pads = [1] }, X1, W1, CT.Pads),
        ["pads crop everything"] = new(new() { Pads = [2, 3] }, X1, W1, CT.Pads),
        ["pads crop more than everything (2D)"] = new(new() { Pads = [0, 4, 0, 4] }, [1, 1, 2, 2], [1, 1, 2, 2], CT.Pads),
        ["pads (all zero) with auto_pad VALID"] = new(new() { Pads = [0, 0], AutoPad = AutoPad.Valid }, X1, W1, CT.Pads),
        ["pads with auto_pad SAME_UPPER"] = new(new() { Strides = [2], Pads = [1, 0], AutoPad = AutoPad.SameUpper }, X1, W1, CT.Pads),
        ["output_shape wrong length"] = new(new() { OutputShape = [5, 5] }, X1, W1, CT.OutputShape),
        ["output_shape in N, C, spatial form"] = new(new() { OutputShape = [1, 1, 4] }, X1, W1, CT.OutputShape),
        ["output_shape zero"] = new(new() { OutputShape = [0] }, X1, W1, CT.OutputShape),
        ["output_shape longer by stride"] = new(new() { Strides = [2], OutputShape = [9] }, X1, W1, CT.OutputShape),
        ["output_shape longer, plus output_padding, reaches stride"] = new(new() { Strides = [3], OutputPadding = [1], OutputShape = [12] }, X1, W1, CT.OutputShape),
        ["group zero"] = new(new() { Group = 0 }, X1, W1, CT.Group),
        ["group negative"] = new(new() { Group = -1 }, X1, W1, CT.Group),
        ["group does not divide input channels"] = new(new() { Group = 2 }, [1, 3, 3], [3, 1, 3], CT.Group),
        ["W input channels differ from X"] = new(new(), [1, 2, 3], [3, 1, 3], "W"),
        ["W rank differs from X"] = new(new(), X1, [1, 1, 3, 3], "W"),
        ["W kernel dimension zero"] = new(new(), X1, [1, 1, 0], "W"),
        ["X rank below 3"] = new(new(), [1, 1], [1, 1], "X"),
        // ONNX Runtime accepts zero output channels (an empty output); the geometry refuses every non-positive size.
        ["W output channels zero"] = new(new(), X1, [1, 0, 3], "W", OrtRefuses: false),
        // ONNX Runtime accepts an empty spatial axis and reports an output length from the formula (2 here) for data
        // that does not exist; the geometry refuses it instead, as the spec requires positive sizes.
        ["X spatial dimension zero"] = new(new(), [1, 1, 0], W1, "X", OrtRefuses: false),
    };

    public static TheoryData<string> CaseNames() => new(Cases.Keys);

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void InvalidConfig_GeometryThrowsNamingTheAttribute(string name)
    {
        var c = Cases[name];
        var e = Assert.Throws<GeometryException>(() => ConvTransposeGeometry.Resolve(c.Attrs, c.X, c.W));
        Assert.Equal(c.Attribute, e.Attribute);
        Assert.Contains(c.Attribute, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void InvalidConfig_OnnxRuntimeAgrees(string name)
    {
        var c = Cases[name];
        var e = Record.Exception(() => RunOrt(c.Attrs, c.X, c.W));
        // Values ONNX Runtime would divide by (group/strides/dilations <= 0) are refused by NativeGuard before it.
        if (c.OrtRefuses)
            Assert.True(e is OnnxRuntimeException or OnnxDeconv.GraphRewrite.IO.ModelFormatException, $"{name}: {e}");
        else
            Assert.Null(e);
    }

    [Fact]
    public void AutoPad_UnknownValue_ThrowsNamingAutoPad()
    {
        var e = Assert.Throws<GeometryException>(() => ConvTransposeAttributes.ParseAutoPad("SAME"));
        Assert.Equal(CT.AutoPad, e.Attribute);
        Assert.Contains(CT.AutoPad, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OutputPadding_BetweenStrideAndDilation_IsAcceptedAndReportedAsRefusedByOrt()
    {
        var g = ConvTransposeGeometry.Resolve(new() { Strides = [1], Dilations = [3], OutputPadding = [2] }, X1, W1);
        Assert.True(g.OrtRejectsOutputPadding);
        Assert.Equal([1L, 1, 3 - 1 + 2 + 3 * 2 + 1], g.OutputShape);
        Assert.False(ConvTransposeGeometry.Resolve(new() { Strides = [3], Dilations = [3], OutputPadding = [2] }, X1, W1).OrtRejectsOutputPadding);
    }

    [Fact]
    public void OutputShape_LongerThanFullOutputBelowStride_ExtendsAtTheEnd()
    {
        // full = 2*(3-1) + 3 = 7; 8 asks one more element, which ONNX Runtime appends at the end.
        var g = ConvTransposeGeometry.Resolve(new() { Strides = [2], OutputShape = [8] }, X1, W1);
        Assert.Equal([1L, 1, 8], g.OutputShape);
        Assert.Equal([0L, -1], g.Pads);
    }

    private static void RunOrt(ConvTransposeAttributes attrs, long[] x, long[] w)
    {
        var b = new ModelBuilder("invalid_convtranspose");
        b.Input("X", x);
        b.Input("W", w);
        b.Node(CT.OpType, ["X", "W"], ConvTransposeNode.ToAttributes(attrs), output: "Y");
        b.Output("Y", null);
        OrtRunner.RunOnce(b.Build(),
        [
            TensorValue.Float("X", x, new float[x.Aggregate(1L, (p, v) => p * v)]),
            TensorValue.Float("W", w, new float[w.Aggregate(1L, (p, v) => p * v)]),
        ]);
    }
}
