using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Lowering;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.Kernels;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;
using T = OnnxDeconv.GraphRewrite.Ops.TransposedConv;

namespace OnnxDeconv.GraphRewrite.Rewrites;

/// <summary>A ConvTranspose (and the activation fused into it, if any) that <see cref="ConvTransposeToPlugin.Apply"/> can rewrite.</summary>
public sealed record PluginMatch(NodeProto Node, NodeProto? Activation, PluginPlan Plan, string WeightName, long Macs);

/// <summary>
/// Rewrites a ConvTranspose with constant weights to the plugin op, packing the weights offline.
/// <code>
/// Before:  X -> ConvTranspose(W const, [B const]) [-> Relu | LeakyRelu | Clip | Sigmoid | Tanh] -> Y
/// After:   X -> ai.onnxdeconv:TransposedConv(X, W_packed, [B], activation=...) -> Y
/// </code>
/// The activation is fused only when it is the ConvTranspose's sole consumer and the intermediate is not a graph output.
/// <see cref="Match"/> is cheap and changes nothing; <see cref="Apply"/> edits the model.
/// </summary>
public static class ConvTransposeToPlugin
{
    public const string PatternName = "ConvTranspose";

    /// <summary>Rewrites <paramref name="node"/> if it matches; the report says what happened (or why not).</summary>
    /// <param name="spill">Where a large packed weight is written slice by slice (never held whole), or null for in memory.</param>
    public static bool TryRewrite(ModelProto model, NodeProto node, out NodeReport report, SpillFile? spill = null)
    {
        var index = new GraphIndex(model);
        if (!Match(index, node, out var match, out var reason))
        {
            report = new NodeReport { Node = Attributes.Describe(node), Pattern = PatternName, Rewritten = false, Reason = reason };
            return false;
        }
        Apply(model, match!, spill);
        report = new NodeReport
        {
            Node = Attributes.Describe(node),
            Pattern = match!.Activation is null ? PatternName : $"{PatternName}+{match.Activation.OpType}",
            Rewritten = true,
            Lowering = PluginLowering.Describe(match.Plan),
            MacsBefore = match.Macs,
            MacsAfter = match.Macs,
        };
        return true;
    }

    /// <summary>Rewrites every ConvTranspose in the main graph; one report per ConvTranspose.</summary>
    /// <param name="afterNode">Called after each rewritten node (e.g. to move its new weights out of memory).</param>
    /// <param name="spill">Where large packed weights are written slice by slice, or null for in memory.</param>
    public static OptimizeResult RewriteAll(ModelProto model, Action<ModelProto>? afterNode = null, SpillFile? spill = null)
    {
        var reports = new List<NodeReport>();
        foreach (var node in model.Graph.Node.Where(ConvTransposeNode.Is).ToList())
        {
            if (TryRewrite(model, node, out var r, spill)) afterNode?.Invoke(model);
            reports.Add(r);
        }
        return new OptimizeResult(model, reports);
    }

    /// <summary>Decides whether <paramref name="node"/> can become a TransposedConv; on false, <paramref name="reason"/> says why.</summary>
    public static bool Match(GraphIndex index, NodeProto node, out PluginMatch? match, out string? reason)
    {
        match = null;
        reason = null;
        if (!ConvTransposeNode.Is(node)) { reason = $"not a ConvTranspose ({node.OpType})"; return false; }
        if (node.Input.Count < 2 || node.Output.Count != 1 || node.Output[0].Length == 0)
        {
            reason = "ConvTranspose must have inputs X, W and exactly one output";
            return false;
        }
        string x = node.Input[0], w = node.Input[1];
        string? b = node.Input.Count > 2 && node.Input[2].Length > 0 ? node.Input[2] : null;

        var wt = index.Constant(w);
        if (wt is null) { reason = $"weights '{w}' are not constant (graph input or computed): the plugin needs them packed offline"; return false; }
        // float32 and float16 (computed in float32, converted at the op boundary); see TransposedConvSchema.
        var type = (DataType)wt.DataType;
        if (type is not (DataType.Float or DataType.Float16)) { reason = $"weights '{w}' are {type}; the plugin takes float32 or float16 only"; return false; }
        if (index.ValueInfo(x)?.Type?.TensorType is { } xt && xt.ElemType != (int)DataType.Undefined && xt.ElemType != (int)type)
        {
            reason = $"input '{x}' is {(DataType)xt.ElemType}, weights are {type}; ONNX requires one type";
            return false;
        }
        if (b is not null)
        {
            var bt = index.Constant(b);
            if (bt is null) { reason = $"bias '{b}' is not constant"; return false; }
            if (bt.DataType != (int)type) { reason = $"bias '{b}' is {(DataType)bt.DataType}, weights are {type}; ONNX requires one type"; return false; }
        }

        ConvTransposeAttributes attrs;
        try { attrs = ConvTransposeNode.ReadAttributes(node); }
        catch (AttributeException e) { reason = e.Message; return false; }

        long[] wShape = wt.Dims.ToArray();
        int r = wShape.Length - 2;
        if (r < 1) { reason = $"weights '{w}' have rank {wShape.Length}; need [Cin, Cout/group, k...]"; return false; }
        long[]? xShape = index.Shape(x);
        if (xShape is not null && xShape.Length != wShape.Length)
        {
            reason = $"input '{x}' has rank {xShape.Length}, weights rank {wShape.Length}";
            return false;
        }
        bool spatialKnown = xShape is not null && xShape.Skip(2).All(d => d > 0);
        if (attrs.OutputShape is not null && !spatialKnown)
        {
            reason = "output_shape with a dynamic spatial input size: the pads it implies depend on the input size";
            return false;
        }
        // Pads from explicit pads or auto_pad do not depend on the input size, so an unknown spatial size can take any
        // placeholder (large enough that no crop empties it); batch and unknown dims are placeholders too.
        var probe = new long[wShape.Length];
        probe[0] = 1;
        probe[1] = wShape[0];
        for (int i = 2; i < probe.Length; i++) probe[i] = xShape is not null && xShape[i] > 0 ? xShape[i] : 64;
        if (xShape is not null && xShape[1] > 0 && xShape[1] != wShape[0])
        {
            reason = $"input '{x}' has {xShape[1]} channels but weights '{w}' expect {wShape[0]}";
            return false;
        }
        ConvTransposeGeometry g;
        try { g = ConvTransposeGeometry.Resolve(attrs, probe, wShape); }
        catch (GeometryException e) { reason = $"{e.Attribute}: {e.Message}"; return false; }
        if (g.OrtRejectsOutputPadding)
        {
            reason = "output_padding >= stride: the spec allows it but ONNX Runtime refuses the original node, so the rewrite could not be verified";
            return false;
        }
        if (b is not null)
        {
            var bShape = index.Shape(b);
            if (bShape is null || bShape.Length != 1 || bShape[0] != g.OutChannels)
            {
                reason = $"bias '{b}' has shape [{string.Join(",", bShape ?? [])}]; expected [{g.OutChannels}]";
                return false;
            }
        }

        float[] weights;
        if (ConvTransposeToPortable.ExternalUnreadable(index, wt)) { reason = $"weights '{w}' use external data but the model's folder is unknown"; return false; }
        // External weights are read here, one node at a time (the match holds them until Apply).
        try { weights = index.Model is { } m ? ModelIO.TensorFloats(m, wt) : Tensors.ToFloats(wt); }
        catch (Exception e) when (e is InvalidDataException or ModelFormatException) { reason = e.Message; return false; }

        try { PluginLowering.CheckPackable(g, weights); }
        catch (ArgumentException e) { reason = $"the plugin kernel cannot run this geometry: {e.Message}"; return false; }

        var (act, epilogue) = FusableActivation(index, node);
        long macs = spatialKnown ? g.UsefulMacs : 0;
        var plan = new PluginPlan
        {
            Geometry = g,
            Weights = weights,
            BiasName = b,
            Epilogue = epilogue,
            OutputShape = attrs.OutputShape is null ? null : g.Axes.Select(a => a.Output).ToArray(),
        };
        match = new PluginMatch(node, act, plan, w, macs);
        return true;
    }

    /// <summary>Replaces the matched node (and fused activation) by the TransposedConv node; drops what became unused.</summary>
    /// <param name="spill">Where a large packed weight is written slice by slice (never held whole), or null for in memory.</param>
    public static void Apply(ModelProto model, PluginMatch match, SpillFile? spill = null)
    {
        var graph = model.Graph;
        var index = new GraphIndex(model);
        var used = new HashSet<string>(index.DefinedNames, StringComparer.Ordinal);
        string packedName = Unique(used, $"{match.WeightName}_onnxdeconv_packed");
        string output = match.Activation?.Output[0] ?? match.Node.Output[0];
        string name = string.IsNullOrEmpty(match.Node.Name) ? Unique(used, $"{T.OpType}_{output}") : match.Node.Name;
        // float16 weights: packed in float32 (only rearranged, so exact) and stored back as float16; the spill file holds float32.
        var type = (DataType)(index.Constant(match.WeightName)?.DataType ?? (int)DataType.Float);
        var (node, packed) = PluginLowering.Lower(match.Plan, match.Node.Input[0], output, packedName, name, HalfFloats.IsHalf(type) ? null : spill?.For(model));
        packed = HalfInitializers.Narrow(packed, type);

        int at = graph.Node.IndexOf(match.Node);
        if (at < 0) throw new InvalidOperationException($"node {Attributes.Describe(match.Node)} is not in the main graph");
        graph.Node[at] = node;
        if (match.Activation is not null)
        {
            graph.Node.Remove(match.Activation);
            // The ConvTranspose's own output no longer exists: drop its shape annotation.
            foreach (var vi in graph.ValueInfo.Where(v => v.Name == match.Node.Output[0]).ToList()) graph.ValueInfo.Remove(vi);
        }
        graph.Initializer.Add(packed);
        RemoveIfUnused(model, match.WeightName);

        if (!model.OpsetImport.Any(o => o.Domain == T.Domain))
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = T.Domain, Version = T.Version });
    }

    /// <summary>An activation that is the sole consumer of the node's output (and can be fused), with its epilogue.</summary>
    internal static (NodeProto? Node, Epilogue Epilogue) FusableActivation(GraphIndex index, NodeProto node)
    {
        string y = node.Output[0];
        if (index.IsGraphOutput(y)) return (null, Epilogue.None);
        var consumers = index.Consumers(y);
        if (consumers.Count != 1) return (null, Epilogue.None);
        var c = consumers[0];
        if (!Ops.IsDefaultDomain(c.Domain) || c.Input.Count == 0 || c.Input[0] != y || c.Output.Count != 1) return (null, Epilogue.None);
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
            var t = index.Constant(clip.Input[i]);
            if (t is null || !HalfFloats.IsFloatLike((DataType)t.DataType)) return null;
            float[] v;
            try { v = Tensors.ToFloats(t); }
            catch (InvalidDataException) { return null; }
            if (v.Length != 1) return null;
            if (i == 1) min = v[0]; else max = v[0];
        }
        return min <= max ? (min, max) : null;
    }

    private static void RemoveIfUnused(ModelProto model, string value)
    {
        var index = new GraphIndex(model);
        if (index.Consumers(value).Count > 0 || index.IsGraphOutput(value) || SubgraphsRead(model.Graph, value)) return;
        var init = model.Graph.Initializer.FirstOrDefault(t => t.Name == value);
        if (init is not null) model.Graph.Initializer.Remove(init);
        var producer = index.Producer(value);
        if (producer is not null && producer.OpType == Ops.Constant.OpType && Ops.IsDefaultDomain(producer.Domain))
            model.Graph.Node.Remove(producer);
    }

    /// <summary>True when a subgraph (If/Loop/Scan body) names <paramref name="value"/>: it may read it from the outer scope.</summary>
    private static bool SubgraphsRead(GraphProto graph, string value) =>
        graph.Node.SelectMany(n => n.Attribute).SelectMany(a => a.G is null ? a.Graphs : a.Graphs.Append(a.G))
            .Any(sg => sg.Node.Any(n => n.Input.Contains(value)) || SubgraphsRead(sg, value));

    private static string Unique(HashSet<string> used, string baseName)
    {
        string name = baseName;
        for (int i = 1; used.Contains(name); i++) name = $"{baseName}_{i}";
        used.Add(name);
        return name;
    }
}
