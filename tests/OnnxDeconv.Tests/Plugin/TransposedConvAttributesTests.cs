using OnnxDeconv.Geometry;
using OnnxDeconv.Kernels;
using OnnxDeconv.Plugin;

namespace OnnxDeconv.Tests.Plugin;

/// <summary>The op's attribute validation and per-call geometry, without ONNX Runtime.</summary>
public sealed class TransposedConvAttributesTests
{
    private static TransposedConvAttributes Valid(long[]? pads = null, long[]? outputShape = null) => new()
    {
        KernelShape = [4, 3],
        Strides = [2, 1],
        Dilations = [1, 2],
        Pads = pads ?? [1, 0, 2, 1],
        OutputPadding = [1, 0],
        Group = 2,
        InChannels = 4,
        OutChannels = 6,
        PackingFormat = TransposedConvSchema.PackingFormat,
        OutputShape = outputShape,
    };

    [Fact]
    public void Geometry_MatchesResolvedConvTranspose()
    {
        var expected = ConvTransposeGeometry.Resolve(new ConvTransposeAttributes
        {
            Strides = [2, 1], Dilations = [1, 2], Pads = [1, 0, 2, 1], OutputPadding = [1, 0], Group = 2,
        }, [3, 4, 5, 7], [4, 3, 4, 3]);
        var g = Valid().Geometry([3, 4, 5, 7]);
        Assert.Equal(expected.OutputShape, g.OutputShape);
        Assert.Equal(expected.Axes, g.Axes);
        Assert.Equal(expected.Group, g.Group);
    }

    [Fact]
    public void Geometry_NegativeEndPad_ExtendsOutput()
    {
        // full length on axis 0: 2*(5-1) + 1 + 3 + 1 = 13; end pad -1 gives 14 - begin 1 = 13.
        var g = Valid(pads: [1, 0, -1, 0]).Geometry([1, 4, 5, 7]);
        Assert.Equal(13, g.Axes[0].Output);
        Assert.Equal(-1, g.Axes[0].PadEnd);
    }

    [Fact]
    public void Validate_NegativeBeginPad_IsRefused()
    {
        var e = Assert.Throws<TransposedConvException>(() => Valid(pads: [-1, 0, 0, 0]).Validate());
        Assert.Equal(TransposedConvSchema.Pads, e.Subject);
    }

    [Fact]
    public void Validate_GroupNotDividingChannels_IsRefused()
    {
        var e = Assert.Throws<TransposedConvException>(() => (Valid() with { OutChannels = 5 }).Validate());
        Assert.Equal(TransposedConvSchema.OutChannels, e.Subject);
    }

    [Fact]
    public void Geometry_OutputShapeContradiction_NamesBothShapes()
    {
        var e = Assert.Throws<TransposedConvException>(() => Valid(outputShape: [12, 7]).Geometry([1, 4, 5, 7]));
        Assert.Contains("output_shape is [12,7]", e.Message);
    }

    [Fact]
    public void Read_AppliesDefaultsAndParsesActivation()
    {
        var v = Valid();
        var ints = new Dictionary<string, long[]>
        {
            [TransposedConvSchema.KernelShape] = v.KernelShape, [TransposedConvSchema.Strides] = v.Strides,
            [TransposedConvSchema.Dilations] = v.Dilations, [TransposedConvSchema.Pads] = v.Pads,
            [TransposedConvSchema.OutputPadding] = v.OutputPadding,
        };
        var int64 = new Dictionary<string, long>
        {
            [TransposedConvSchema.Group] = 2, [TransposedConvSchema.InChannels] = 4, [TransposedConvSchema.OutChannels] = 6,
            [TransposedConvSchema.PackingFormatAttribute] = TransposedConvSchema.PackingFormat,
        };
        var a = TransposedConvAttributes.Read(n => ints.GetValueOrDefault(n), n => int64.TryGetValue(n, out var x) ? x : null,
            n => n == TransposedConvSchema.Alpha ? 0.2f : null, n => n == TransposedConvSchema.Activation ? "LeakyRelu" : null);
        Assert.Equal(new Epilogue(Activation.LeakyRelu, 0.2f), a.Epilogue);
        Assert.Null(a.OutputShape);
    }

    [Fact]
    public void PackingFormat_IsDeterministicFingerprintOfKernelLayout()
    {
        int f = TransposedConvSchema.PackingFormat;
        Assert.True(f > 0);
        // Recomputing from scratch (new Lazy) must give the same value: it is a pure function of PackWeights.
        var compute = typeof(TransposedConvSchema).GetMethod("ComputePackingFormat", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!;
        Assert.Equal(f, (int)compute.Invoke(null, null)!);
    }

    [Fact]
    public void PackingFormat_ProbesReachEveryChannelBlockWidth()
    {
        // A layout change for a block width no probe uses would leave the fingerprint unchanged and old models would
        // run with misread weights instead of being refused.
        var widths = TransposedConvSchema.FingerprintProbes().Select(DeconvPlan.BlockFor).Distinct().Order().ToArray();
        Assert.Equal(new[] { DeconvPlan.ChannelBlock, DeconvPlan.WideBlock }, widths);
    }

    [Theory]
    [InlineData("", Activation.None)]
    [InlineData("Relu", Activation.Relu)]
    [InlineData("Clip", Activation.Clip)]
    [InlineData("Sigmoid", Activation.Sigmoid)]
    [InlineData("Tanh", Activation.Tanh)]
    public void ActivationNames_RoundTrip(string name, Activation kind)
    {
        Assert.Equal(kind, TransposedConvSchema.ParseActivation(name));
        Assert.Equal(name, TransposedConvSchema.ActivationName(kind));
    }
}
