using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.Kernels;
using OnnxDeconv.Plugin;
using T = OnnxDeconv.GraphRewrite.Ops.TransposedConv;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

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
    /// Throws ArgumentException when the kernel cannot run <paramref name="g"/> or <paramref name="onnxWeights"/> do not
    /// fit it: everything packing checks, without packing (matching stays cheap and Apply cannot fail).
    /// </summary>
    public static void CheckPackable(ConvTransposeGeometry g, float[] onnxWeights) => DeconvKernel.PackWeights(g, onnxWeights, 0, Span<float>.Empty);

    /// <summary>
    /// As <see cref="CheckPackable"/> without the weight values (matching reads none): the weight count must be what
    /// the geometry packs, and the kernel must accept the geometry (building its plan is what refuses one).
    /// </summary>
    public static void CheckGeometry(ConvTransposeGeometry g, long weightCount)
    {
        long n = DeconvKernel.PackedWeightLength(g);
        if (weightCount != n) throw new ArgumentException($"W has {weightCount} values; geometry needs {n}");
        _ = DeconvKernel.WorkspaceBytes(g);
    }

    /// <summary>
    /// Packs the weights offline (<see cref="DeconvKernel.PackWeights(ConvTransposeGeometry, ReadOnlySpan{float}, long, Span{float})"/>)
    /// into a 1-D initializer named <paramref name="packedWeightName"/> and builds the node reading (input, packed W[, B])
    /// and writing <paramref name="output"/>. With a <paramref name="sink"/>, a large packed weight is written to it slice
    /// by slice (never held whole) and the initializer refers to it; the bytes are the same either way.
    /// </summary>
    public static (NodeProto Node, TensorProto PackedWeights) Lower(PluginPlan plan, string input, string output,
        string packedWeightName, string nodeName, IWeightSink? sink = null)
    {
        var g = plan.Geometry;
        var onnxWeights = plan.Weights;
        var weights = ComputedTensors.Floats(packedWeightName, [DeconvKernel.PackedWeightLength(g)], 1,
            (first, dst) => DeconvKernel.PackWeights(g, onnxWeights, first, dst), sink);

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

/// <summary>
/// Lowers a site to the plugin op, packing the weights offline.
/// <code>
/// Before:  X -> ConvTranspose(W const, [B const]) [-> Relu | LeakyRelu | Clip | Sigmoid | Tanh] -> Y
/// After:   X -> ai.onnxdeconv:TransposedConv(X, W_packed, [B], activation=...) -> Y
/// </code>
/// The activation is the site's fusable one: the ConvTranspose's sole consumer, its intermediate not a graph output.
/// </summary>
internal sealed class PluginSiteLowering : ISiteLowering
{
    public string Name => "plugin";

    public string? CanLower(ConvTransposeSite site)
    {
        if (site.Model.OpsetImport.FirstOrDefault(o => o.Domain == T.Domain) is { } import && import.Version != T.Version)
            return $"the model imports domain '{T.Domain}' at version {import.Version}; the plugin op is version {T.Version}";
        // float32 and float16 (computed in float32, converted at the op boundary); see TransposedConvSchema.
        if (site.ElementType is not (DataType.Float or DataType.Float16))
            return $"weights '{site.WeightName}' are {site.ElementType}; the plugin takes float32 or float16 only";
        try
        {
            PluginLowering.CheckGeometry(site.Geometry, Tensors.ElementCount(site.WeightTensor.Dims));
            return null;
        }
        catch (ArgumentException e) { return $"the plugin kernel cannot run this geometry: {e.Message}"; }
    }

    public LoweredSite Lower(ConvTransposeSite site, GraphEditor editor, LoweringEnvironment environment)
    {
        var g = site.Geometry;
        var plan = new PluginPlan
        {
            Geometry = g,
            Weights = site.Weights(environment.Weights),
            BiasName = site.BiasName,
            Epilogue = site.Epilogue,
            OutputShape = site.Attributes.OutputShape is null ? null : g.Axes.Select(a => a.Output).ToArray(),
        };
        string packedName = editor.UniqueValueName($"{site.WeightName}_onnxdeconv_packed");
        string output = site.FusedOutput;
        string name = string.IsNullOrEmpty(site.Node.Name) ? editor.UniqueNodeName($"{T.OpType}_{output}") : site.Node.Name;
        // float16 weights: packed in float32 (only rearranged, so exact) and stored back as float16; the spill file holds float32.
        var (node, packed) = PluginLowering.Lower(plan, site.Input, output, packedName, name, site.IsHalf ? null : environment.Spill?.For(editor.Model));
        packed = HalfInitializers.Narrow(packed, site.ElementType);
        editor.ReplaceNode(site.Node, [node], site.Activation);
        editor.AddInitializer(packed, keepIrConvention: true);
        editor.RemoveIfUnused(site.WeightName);
        editor.EnsureOpset(T.Domain, T.Version);
        long macs = site.StaticSpatial ? g.UsefulMacs : 0;
        string pattern = site.Activation is null ? Ops.ConvTranspose.OpType : $"{Ops.ConvTranspose.OpType}+{site.Activation.OpType}";
        return new LoweredSite(true, pattern, PluginLowering.Describe(plan), macs, macs);
    }
}
