using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.Kernels;

namespace OnnxDeconv.GraphRewrite.Patterns;

/// <summary>
/// One transposed convolution found in a model, built once by <see cref="ConvTransposeMatcher"/> and handed to every
/// lowering (portable, plugin, kept as ConvTranspose, kept as the user wrote it): the node, its resolved geometry, its
/// constant weights and bias however the model stores them (initializer, Constant node, IR &lt; 4 initializer listed as
/// an input, external data), the activation a lowering may fuse, and — for a ConvTranspose a pre-pass derived — the
/// user's original nodes so that they can be put back.
/// Matching reads no weight values; <see cref="Weights"/> reads them on first use, once per site.
/// </summary>
public sealed class ConvTransposeSite
{
    private float[]? _weights;
    private float[]? _bias;

    /// <summary>The model the node and tensors below belong to.</summary>
    public required ModelProto Model { get; init; }
    public required NodeProto Node { get; init; }
    public required ConvTransposeAttributes Attributes { get; init; }
    /// <summary>
    /// Geometry at the input shape the model declares; where that is unknown, at the shape inferred from the graph,
    /// else with <see cref="ConvTransposeMatcher.DynamicDimPlaceholder"/> (only MACs depend on it: see <see cref="MacsNote"/>).
    /// </summary>
    public required ConvTransposeGeometry Geometry { get; init; }
    public required TensorProto WeightTensor { get; init; }
    public TensorProto? BiasTensor { get; init; }
    /// <summary>The model's default-domain opset.</summary>
    public required long Opset { get; init; }
    /// <summary>Every spatial input dim is a known constant.</summary>
    public required bool StaticSpatial { get; init; }
    /// <summary>How MACs were estimated where the input size is not declared, or null.</summary>
    public string? MacsNote { get; init; }
    /// <summary>The sole consumer a lowering may fuse as its epilogue (Relu, LeakyRelu, Clip, Sigmoid, Tanh), or null.</summary>
    public NodeProto? Activation { get; init; }
    public Epilogue Epilogue { get; init; } = Epilogue.None;
    /// <summary>For a ConvTranspose a pre-pass derived (Resize+Conv, zero insertion, BatchNorm fold): the user's nodes; else null.</summary>
    public SiteOrigin? Origin { get; init; }
    /// <summary>A QDQ site (<see cref="QdqConvTransposeMatcher"/>): the quantization around it; <see cref="WeightTensor"/> is then the int8 weights.</summary>
    public QdqSiteParams? Quantized { get; init; }

    /// <summary>The site's element type (its weights'; X, B and Y have it too): FLOAT, FLOAT16 or BFLOAT16.</summary>
    public TensorProto.Types.DataType ElementType => (TensorProto.Types.DataType)WeightTensor.DataType;
    /// <summary>float16 or bfloat16: lowered from exact float32 copies and stored back in this type.</summary>
    public bool IsHalf => HalfFloats.IsHalf(ElementType);

    public string Input => Node.Input[0];
    public string WeightName => Node.Input[1];
    public string? BiasName => Node.Input.Count > 2 && Node.Input[2].Length > 0 ? Node.Input[2] : null;
    public string Output => Node.Output[0];
    /// <summary>The value the site's result is read from: the fused activation's output when a lowering fuses it.</summary>
    public string FusedOutput => Activation?.Output[0] ?? Output;
    /// <summary>Name for the report: the node's name, else its op and output (see <see cref="Graph.Attributes.Describe"/>).</summary>
    public string Description => Graph.Attributes.Describe(Node);

    /// <summary>The weights [Cin, Cout/group, K...] as floats: read from <paramref name="source"/> on first use, then kept.</summary>
    public float[] Weights(IWeightSource source) => _weights ??= source.ReadFloats(Model, WeightTensor);

    /// <summary>The bias [Cout] as floats (empty without bias): read on first use, then kept.</summary>
    public float[] Bias(IWeightSource source) => _bias ??= BiasTensor is null ? [] : source.ReadFloats(Model, BiasTensor);

    /// <summary>Drops the values read so far (a large model's weights are not held across every site).</summary>
    public void ReleaseWeights() => (_weights, _bias) = (null, null);

    /// <summary>The same site with another provenance; values already read are kept.</summary>
    public ConvTransposeSite WithOrigin(SiteOrigin? origin) => new()
    {
        Model = Model, Node = Node, Attributes = Attributes, Geometry = Geometry, WeightTensor = WeightTensor, BiasTensor = BiasTensor,
        Opset = Opset, StaticSpatial = StaticSpatial, MacsNote = MacsNote, Activation = Activation, Epilogue = Epilogue, Origin = origin, Quantized = Quantized,
        _weights = _weights, _bias = _bias,
    };

    /// <summary>Takes <paramref name="other"/>'s values as already read (a site over a copy of the same node, e.g. isolated for timing).</summary>
    public void ShareWeights(ConvTransposeSite other, IWeightSource source)
    {
        _weights = other.Weights(source);
        _bias = other.Bias(source);
    }
}

/// <summary>
/// The user's nodes a derived ConvTranspose replaced, in graph order, with the initializers they read, and the opset
/// they were written for: enough to time them as they were and to put them back (<see cref="Graph.GraphEditor.ReplaceNode"/>).
/// </summary>
public sealed record SiteOrigin(IReadOnlyList<NodeProto> Nodes, IReadOnlyList<TensorProto> Initializers, long Opset)
{
    /// <summary>e.g. "Resize+Conv".</summary>
    public string Ops => string.Join("+", Nodes.Select(n => n.OpType));
}
