using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.Kernels;
using OnnxDeconv.Plugin;
using T = OnnxDeconv.GraphRewrite.Ops.TransposedConv;

namespace OnnxDeconv.GraphRewrite.Lowering;

/// <summary>
/// A transposed convolution ready for the plugin: resolved geometry (pads already derived from auto_pad /
/// output_shape; batch and unknown spatial sizes are placeholders, only the per-axis attributes and channels
/// matter), ONNX-layout weights [Cin, Cout/group, K...], optional bias [Cout] and the fused epilogue.
/// </summary>
public sealed record PluginPlan
{
    public required ConvTransposeGeometry Geometry { get; init; }
    public required float[] Weights { get; init; }
    /// <summary>Weights already packed for the kernel (the rewrite packs while matching, so Apply cannot fail); null = pack in Lower.</summary>
    public float[]? PackedWeights { get; init; }
    /// <summary>Name of an existing constant [Cout] float value to use as B, or null for no bias.</summary>
    public string? BiasName { get; init; }
    public Epilogue Epilogue { get; init; } = Epilogue.None;
    /// <summary>Spatial output size the original node asked for (output_shape), checked by the kernel at run time.</summary>
    public long[]? OutputShape { get; init; }
}

/// <summary>Lowers a <see cref="PluginPlan"/> to one <c>ai.onnxdeconv:TransposedConv</c> node plus its packed weights.</summary>
public static class PluginLowering
{
    /// <summary>
    /// Packs the weights offline (<see cref="DeconvKernel.PackWeights"/>) into a 1-D initializer named
    /// <paramref name="packedWeightName"/> and builds the node reading (input, packed W[, B]) and writing <paramref name="output"/>.
    /// </summary>
    /// <summary>ONNX-layout weights packed for the kernel; throws ArgumentException for a geometry the kernel refuses.</summary>
    public static float[] Pack(ConvTransposeGeometry g, float[] onnxWeights)
    {
        var packed = new float[DeconvKernel.PackedWeightLength(g)];
        DeconvKernel.PackWeights(g, onnxWeights, packed);
        return packed;
    }

    public static (NodeProto Node, TensorProto PackedWeights) Lower(PluginPlan plan, string input, string output,
        string packedWeightName, string nodeName)
    {
        var g = plan.Geometry;
        var packed = plan.PackedWeights ?? Pack(g, plan.Weights);
        // Packed weights are never modified after packing: the tensor takes the array as is (one copy of a large weight).
        var weights = Tensors.FromFloatsOwned(packedWeightName, [packed.LongLength], packed);

        var node = new NodeProto { Name = nodeName, OpType = T.OpType, Domain = T.Domain };
        node.Input.Add(input);
        node.Input.Add(packedWeightName);
        if (plan.BiasName is not null) node.Input.Add(plan.BiasName);
        node.Output.Add(output);
        node.Attribute.Add(Attributes.Ints(T.KernelShape, g.Axes.Select(a => a.Kernel)));
        node.Attribute.Add(Attributes.Ints(T.Strides, g.Axes.Select(a => a.Stride)));
        node.Attribute.Add(Attributes.Ints(T.Dilations, g.Axes.Select(a => a.Dilation)));
        node.Attribute.Add(Attributes.Ints(T.Pads, g.Pads));
        node.Attribute.Add(Attributes.Ints(T.OutputPadding, g.Axes.Select(a => a.OutputPadding)));
        node.Attribute.Add(Attributes.Int(T.Group, g.Group));
        node.Attribute.Add(Attributes.Int(T.InChannels, g.InChannels));
        node.Attribute.Add(Attributes.Int(T.OutChannels, g.OutChannels));
        node.Attribute.Add(Attributes.Int(T.PackingFormat, TransposedConvSchema.PackingFormat));
        var ep = plan.Epilogue;
        if (ep.Kind != Activation.None)
        {
            node.Attribute.Add(Attributes.String(T.Activation, TransposedConvSchema.ActivationName(ep.Kind)));
            if (ep.Kind == Activation.LeakyRelu) node.Attribute.Add(Attributes.Float(T.Alpha, ep.Alpha));
            if (ep.Kind == Activation.Clip)
            {
                node.Attribute.Add(Attributes.Float(T.ClipMin, ep.Min));
                node.Attribute.Add(Attributes.Float(T.ClipMax, ep.Max));
            }
        }
        if (plan.OutputShape is { } os) node.Attribute.Add(Attributes.Ints(T.OutputShape, os));
        return (node, weights);
    }

    /// <summary>Short description for reports, e.g. "ai.onnxdeconv:TransposedConv (packed W 1024, fused Relu)".</summary>
    public static string Describe(PluginPlan plan) =>
        $"{T.Domain}:{T.OpType} (packed W {DeconvKernel.PackedWeightLength(plan.Geometry)}"
        + (plan.Epilogue.Kind == Activation.None ? "" : $", fused {plan.Epilogue.Kind}") + ")";
}
