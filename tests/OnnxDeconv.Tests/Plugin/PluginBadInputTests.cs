using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Lowering;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.Kernels;
using T = OnnxDeconv.GraphRewrite.Ops.TransposedConv;

namespace OnnxDeconv.Tests.Plugin;

/// <summary>
/// Bad attributes or inputs reaching the kernel become an ONNX Runtime error naming the node and the problem;
/// the host process survives (each test ends with a good run in the same process).
/// </summary>
public sealed class PluginBadInputTests
{
    // X [1, 4, 5, 5], W [4, 3, 3, 3], stride 2, pads 1: Y [1, 3, 9, 9].
    private static readonly ConvTransposeGeometry G = ConvTransposeGeometry.Resolve(
        new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1] }, [1, 4, 5, 5], [4, 3, 3, 3]);

    private static long Packed => DeconvKernel.PackedWeightLength(G);

    private static List<AttributeProto> GoodAttributes(Epilogue? ep = null, long[]? outputShape = null)
    {
        var plan = new PluginPlan { Geometry = G, Weights = new float[4 * 3 * 9], Epilogue = ep ?? Epilogue.None, OutputShape = outputShape };
        return PluginLowering.Lower(plan, "X", "Y", "W", "tconv").Node.Attribute.ToList();
    }

    private static List<AttributeProto> Replace(List<AttributeProto> attrs, AttributeProto a)
    {
        attrs.RemoveAll(x => x.Name == a.Name);
        attrs.Add(a);
        return attrs;
    }

    private static TensorValue X(params long[] dims) =>
        TensorValue.Float("X", dims, PluginTestKit.RandomFloats(new Random(1), dims.Aggregate(1L, (p, d) => p * d)));

    private static void AssertFails(ModelProto model, TensorValue x, params string[] fragments)
    {
        var e = Assert.ThrowsAny<OnnxRuntimeException>(() => PluginTestKit.RunSingle(model, x, PluginTestKit.WithPlugin()));
        foreach (var f in fragments) Assert.Contains(f, e.Message);
        AssertHostStillWorks();
    }

    private static void AssertHostStillWorks()
    {
        var y = PluginTestKit.RunSingle(PluginTestKit.PluginModel(GoodAttributes(), Packed), X(1, 4, 5, 5), PluginTestKit.WithPlugin());
        Assert.Equal(3 * 9 * 9, y.Length);
    }

    [Fact]
    public void WrongRank_ReturnsErrorNamingNodeAndRank() =>
        AssertFails(PluginTestKit.PluginModel(GoodAttributes(), Packed), X(1, 4, 5), "tconv", "rank 3", "rank 4");

    [Fact]
    public void MismatchedChannels_ReturnsError() =>
        AssertFails(PluginTestKit.PluginModel(GoodAttributes(), Packed), X(1, 3, 5, 5), "3 channels", "in_channels is 4");

    [Fact]
    public void WrongPackedWeightLength_ReturnsError() =>
        AssertFails(PluginTestKit.PluginModel(GoodAttributes(), Packed - 1), X(1, 4, 5, 5), "packed W", $"{Packed} values");

    [Fact]
    public void WrongBiasLength_ReturnsError() =>
        AssertFails(PluginTestKit.PluginModel(GoodAttributes(), Packed, biasLength: 2), X(1, 4, 5, 5), "B has shape [2]", "[3]");

    [Fact]
    public void InputContradictingOutputShape_ReturnsError() =>
        AssertFails(PluginTestKit.PluginModel(GoodAttributes(outputShape: [9, 9]), Packed), X(1, 4, 6, 5), "output_shape is [9,9]");

    [Fact]
    public void PadsCroppingEverything_ReturnsError()
    {
        var attrs = Replace(GoodAttributes(), Attributes.Ints(T.Pads, [1, 1, 1, 1]));
        // Input length 1 with kernel 3, stride 2: full length 3, pads 1+1 leave 1; pads 2+1 leave nothing.
        attrs = Replace(attrs, Attributes.Ints(T.Pads, [2, 1, 1, 1]));
        AssertFails(PluginTestKit.PluginModel(attrs, Packed), X(1, 4, 1, 5), "output length 0");
    }

    [Fact]
    public void OtherPackingFormat_IsRefusedAtSessionCreation() =>
        AssertFails(PluginTestKit.PluginModel(Replace(GoodAttributes(), Attributes.Int(T.PackingFormat, 12345)), Packed),
            X(1, 4, 5, 5), "packing_format is 12345");

    [Fact]
    public void MissingRequiredAttribute_ReturnsError()
    {
        var attrs = GoodAttributes();
        attrs.RemoveAll(a => a.Name == T.Strides);
        AssertFails(PluginTestKit.PluginModel(attrs, Packed), X(1, 4, 5, 5), "required attribute 'strides'");
    }

    [Fact]
    public void AttributeLengthMismatch_ReturnsError() =>
        AssertFails(PluginTestKit.PluginModel(Replace(GoodAttributes(), Attributes.Ints(T.Dilations, [1])), Packed),
            X(1, 4, 5, 5), "dilations has 1 values; expected 2");

    [Fact]
    public void UnknownActivation_ReturnsError() =>
        AssertFails(PluginTestKit.PluginModel(Replace(GoodAttributes(), Attributes.String(T.Activation, "Gelu")), Packed),
            X(1, 4, 5, 5), "activation", "Gelu");

    [Fact]
    public void NonFloatInput_IsRefused()
    {
        var model = PluginTestKit.PluginModel(GoodAttributes(), Packed, xType: TensorProto.Types.DataType.Double);
        var x = new TensorValue("X", TensorProto.Types.DataType.Double, [1, 4, 5, 5], new double[100]);
        Assert.ThrowsAny<OnnxRuntimeException>(() => OrtRunner.RunOnce(model, [x], PluginTestKit.WithPlugin()));
        AssertHostStillWorks();
    }

    [Fact]
    public void EmptyBatch_GivesEmptyOutput()
    {
        var y = PluginTestKit.RunSingle(PluginTestKit.PluginModel(GoodAttributes(), Packed), X(0, 4, 5, 5), PluginTestKit.WithPlugin());
        Assert.Empty(y);
    }
}
