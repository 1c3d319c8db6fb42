// The one matcher of ConvTranspose sites. Every target (portable, plugin, auto) starts from the site it builds, so a
// node one target refuses for a reason of the node itself (not constant, not float, a configuration ONNX Runtime
// rejects) is refused by every target with the same words; lowering-specific limits are each lowering's CanLower.
using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.Kernels;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Patterns;

/// <summary>Builds a <see cref="ConvTransposeSite"/> from a ConvTranspose node, or says why the node is not one.</summary>
public static class ConvTransposeMatcher
{
    /// <summary>Spatial size assumed for dynamic dims when only MACs depend on it (no lowering depends on it).</summary>
    public const long DynamicDimPlaceholder = 64;

    /// <summary>
    /// The nodes every target reports on: op type ConvTranspose in any domain (a custom domain's is reported as left
    /// alone, with the domain named, by every target alike).
    /// </summary>
    public static bool IsCandidate(NodeProto node) => node.OpType == Ops.ConvTranspose.OpType;

    /// <summary>Cheap (reads no weight values) and never throws: false with <paramref name="reason"/> on anything that is not a site.</summary>
    /// <param name="shapeHints">Inferred shapes of values without value_info, used only for MACs (see <see cref="Rewrites.ShapeHints"/>).</param>
    /// <param name="origin">For a ConvTranspose a pre-pass derived: the user's nodes (kept on the site), else null.</param>
    public static bool TryMatch(GraphIndex index, NodeProto node, out ConvTransposeSite? site, out string? reason,
        IReadOnlyDictionary<string, long[]>? shapeHints = null, SiteOrigin? origin = null)
        => SafeMatch.Try((out ConvTransposeSite? s) => Check(index, node, shapeHints, origin, out s), out site, out reason);

    private static string? Check(GraphIndex index, NodeProto node, IReadOnlyDictionary<string, long[]>? shapeHints, SiteOrigin? origin,
        out ConvTransposeSite? site)
    {
        site = null;
        if (node.OpType != Ops.ConvTranspose.OpType) return $"not a {Ops.ConvTranspose.OpType} ({node.OpType})";
        if (!Ops.IsDefaultDomain(node.Domain)) return $"domain '{node.Domain}' is not the default ONNX domain";
        if (node.Input.Count < 2 || node.Output.Count != 1 || node.Output[0].Length == 0)
            return "expects inputs X, W[, B] and one output";
        if (index.Model is null) return "the node's model is unknown";
        long? opset = index.Opset(Ops.DefaultDomain);
        if (opset is null) return "the model does not import the default ONNX domain";

        string x = node.Input[0], wName = node.Input[1];
        if (QdqConvTransposeMatcher.Applies(index, node)) return QdqConvTransposeMatcher.Check(index, node, opset.Value, out site);
        var w = index.ConstantWeight(wName);
        if (w is null)
            return index.IsGraphInput(wName)
                ? $"weights '{wName}' are a graph input, not constant: they can change at run time"
                : $"weights '{wName}' are computed in the graph, not constant";
        // float16/bfloat16 sites are widened exactly to float32 where lowered and stored back in their type.
        var type = (DataType)w.DataType;
        if (!HalfFloats.IsFloatLike(type)) return $"weights '{wName}' are {type}; only float32, float16 and bfloat16 (FLOAT, FLOAT16, BFLOAT16) are supported";
        if (ExternalUnreadable(index, w)) return $"weights '{wName}' use external data but the model's folder is unknown; load the model from its file";
        string? bName = node.Input.Count > 2 && node.Input[2].Length > 0 ? node.Input[2] : null;
        TensorProto? b = null;
        if (bName is not null)
        {
            b = index.ConstantWeight(bName);
            if (b is null) return $"bias '{bName}' is not constant";
            if (b.DataType != (int)type) return $"bias '{bName}' is {(DataType)b.DataType}, weights are {type}; ONNX requires one type";
            if (ExternalUnreadable(index, b)) return $"bias '{bName}' uses external data but the model's folder is unknown";
        }
        var xType = index.ValueInfo(x)?.Type?.TensorType;
        if (xType is not null && xType.ElemType != (int)DataType.Undefined && xType.ElemType != (int)type)
            return $"input '{x}' is {(DataType)xType.ElemType}, weights are {type}; ONNX requires one type";

        long[] wShape = w.Dims.ToArray();
        if (wShape.Length < 3) return $"weights '{wName}' have rank {wShape.Length}; expected >= 3 ([Cin, Cout/group, k...])";
        int rank = wShape.Length - 2;
        var attrs = ConvTransposeNode.ReadAttributes(node);

        long[]? xShape = index.Shape(x);
        if (xShape is not null && xShape.Length != wShape.Length)
            return $"input '{x}' has rank {xShape.Length}, weights rank {wShape.Length}";
        if (xShape is not null && xShape[1] > 0 && xShape[1] != wShape[0])
            return $"input '{x}' has {xShape[1]} channels but weights '{wName}' expect {wShape[0]}";
        bool staticSpatial = xShape is not null && xShape.Skip(2).All(d => d > 0);
        string? specialised = null;
        if (attrs.OutputShape is not null && !staticSpatial)
        {
            // The pads output_shape implies depend on the input size: known from the resolved input shapes (--shape,
            // inference, probe), the site is lowered for that size only, and the caller declares the graph input with
            // it (SpecialisedSites), so the written model refuses other sizes instead of computing them wrongly.
            if (shapeHints is null || !shapeHints.TryGetValue(x, out var known) || known.Length != wShape.Length || known.Skip(2).Any(d => d <= 0))
                return "output_shape with an unknown input size: the pads it implies depend on the input size (give the input's size with --shape)";
            xShape = [known[0] > 0 ? known[0] : 1, known[1], .. known.Skip(2)];
            staticSpatial = true;
            specialised = $"specialised to input size {string.Join("x", known.Skip(2))} (output_shape's pads depend on it)";
        }

        // Pads from explicit pads or auto_pad do not depend on the input size, so unknown dims take placeholders (large
        // enough that no crop empties them); only the reported MACs depend on them. An inferred shape is better.
        var shape = new long[wShape.Length];
        shape[0] = xShape is not null && xShape[0] > 0 ? xShape[0] : 1;
        shape[1] = wShape[0];
        for (int i = 0; i < rank; i++)
            shape[i + 2] = xShape is not null && xShape[i + 2] > 0 ? xShape[i + 2] : DynamicDimPlaceholder;
        string? note = specialised ?? (staticSpatial ? null : $"MACs for dynamic spatial dims taken at {DynamicDimPlaceholder}");
        ConvTransposeGeometry? geometry = null;
        if (!staticSpatial && shapeHints is not null && shapeHints.TryGetValue(x, out var hint) && hint.Length == shape.Length)
        {
            try
            {
                geometry = ConvTransposeGeometry.Resolve(attrs, [hint[0] > 0 ? hint[0] : 1, shape[1], .. hint.Skip(2)], wShape);
                note = $"MACs at inferred input shape [{string.Join(",", hint)}]";
            }
            catch (GeometryException) { geometry = null; }
        }
        geometry ??= ConvTransposeGeometry.Resolve(attrs, shape, wShape);
        if (geometry.OrtRejectsOutputPadding)
            return $"output_padding [{string.Join(",", geometry.Axes.Select(a => a.OutputPadding))}] >= stride: the spec allows it but ONNX Runtime rejects the original node, so there is nothing to reproduce";
        if (b is not null && (b.Dims.Count != 1 || b.Dims[0] != geometry.OutChannels))
            return $"bias '{bName}' has shape [{string.Join(",", b.Dims)}]; expected [{geometry.OutChannels}]";

        var (act, epilogue) = FusableActivation(index, node);
        site = new ConvTransposeSite
        {
            Model = index.Model, Node = node, Attributes = attrs, Geometry = geometry, WeightTensor = w, BiasTensor = b,
            Opset = opset.Value, StaticSpatial = staticSpatial, MacsNote = note, Activation = act, Epilogue = epilogue, Origin = origin,
        };
        return null;
    }

    /// <summary>
    /// The same site at a concrete input shape (e.g. the shape auto times it at): geometry re-resolved, nothing read.
    /// Null when the shape does not fit the node.
    /// </summary>
    public static ConvTransposeSite? AtShape(ConvTransposeSite site, long[] inputShape)
    {
        if (inputShape.Length != site.WeightTensor.Dims.Count) return null;
        try
        {
            var g = ConvTransposeGeometry.Resolve(site.Attributes, inputShape, site.WeightTensor.Dims.ToArray());
            return g.OrtRejectsOutputPadding ? null : Clone(site, g);
        }
        catch (GeometryException) { return null; }
    }

    private static ConvTransposeSite Clone(ConvTransposeSite s, ConvTransposeGeometry g) => new()
    {
        Model = s.Model, Node = s.Node, Attributes = s.Attributes, Geometry = g, WeightTensor = s.WeightTensor, BiasTensor = s.BiasTensor,
        Opset = s.Opset, StaticSpatial = true, MacsNote = null, Activation = s.Activation, Epilogue = s.Epilogue, Origin = s.Origin, Quantized = s.Quantized,
    };

    /// <summary>External data is read lazily, one site at a time; that needs the folder it is relative to.</summary>
    internal static bool ExternalUnreadable(GraphIndex index, TensorProto t) =>
        ExternalData.IsExternal(t) && (index.Model is null || ModelIO.DataDirectory(index.Model, t) is null);

    /// <summary>
    /// An activation that is the sole consumer of the node's output (and can be fused), with its epilogue. Never the
    /// graph output itself: the intermediate must not be visible.
    /// </summary>
    public static (NodeProto? Node, Epilogue Epilogue) FusableActivation(GraphIndex index, NodeProto node)
    {
        string y = node.Output[0];
        if (index.IsGraphOutput(y) || index.SubgraphReaders(y).Count > 0) return (null, Epilogue.None);
        var consumers = index.Consumers(y);
        if (consumers.Count != 1) return (null, Epilogue.None);
        var c = consumers[0];
        if (!Ops.IsDefaultDomain(c.Domain) || c.Input.Count == 0 || c.Input[0] != y || c.Output.Count != 1) return (null, Epilogue.None);
        if (c.Input.Skip(1).Contains(y)) return (null, Epilogue.None);
        try
        {
            switch (c.OpType)
            {
                case Ops.Relu.OpType: return (c, new Epilogue(Activation.Relu));
                case Ops.Sigmoid.OpType: return (c, new Epilogue(Activation.Sigmoid));
                case Ops.Tanh.OpType: return (c, new Epilogue(Activation.Tanh));
                case Ops.LeakyRelu.OpType:
                    return (c, new Epilogue(Activation.LeakyRelu, Attributes.GetFloat(c, Ops.LeakyRelu.Alpha) ?? 0.01f));
                case Ops.Clip.OpType:
                    return ClipBounds(index, c) is { } mm ? (c, new Epilogue(Activation.Clip, Min: mm.Min, Max: mm.Max)) : (null, Epilogue.None);
                default: return (null, Epilogue.None);
            }
        }
        catch (AttributeException) { return (null, Epilogue.None); }
    }

    /// <summary>Clip's bounds: attributes before opset 11, optional constant scalar inputs since; null when not constant.</summary>
    private static (float Min, float Max)? ClipBounds(GraphIndex index, NodeProto clip)
    {
        float min = float.NegativeInfinity, max = float.PositiveInfinity;
        if (Attributes.GetFloat(clip, Ops.Clip.Min) is { } amin) min = amin;
        if (Attributes.GetFloat(clip, Ops.Clip.Max) is { } amax) max = amax;
        for (int i = 1; i <= 2 && i < clip.Input.Count; i++)
        {
            if (clip.Input[i].Length == 0) continue;
            var t = index.ConstantWeight(clip.Input[i]);
            if (t is null || !HalfFloats.IsFloatLike((DataType)t.DataType) || ExternalData.IsExternal(t)) return null;
            float[] v;
            try { v = Tensors.ToFloats(t); }
            catch (InvalidDataException) { return null; }
            if (v.Length != 1) return null;
            if (i == 1) min = v[0]; else max = v[0];
        }
        return min <= max ? (min, max) : null;
    }
}
