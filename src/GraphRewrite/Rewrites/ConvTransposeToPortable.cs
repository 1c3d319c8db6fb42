// Before:  X ─ ConvTranspose(W, B; strides s, pads, dilations, group, auto_pad/output_shape/output_padding) ─ Y
// After:   X ─ Conv(W', B'; stride 1)  [one Conv with Cout*prod(s) channels, or one Conv per phase + Concat]
//            ─ DepthToSpace | Reshape/Transpose/Reshape   (interleave the phases; absent when every stride is 1)
//            ─ Slice                                      (crop pads/output_padding; absent when nothing to crop) ─ Y
// Preconditions: default domain; W (and B) constant FLOAT, FLOAT16 or BFLOAT16 tensors (half types: rearranged
// exactly in float32 and stored back in the model's type; no DepthToSpace, which ONNX Runtime's CPU lacks for them); a configuration ONNX Runtime accepts
// (output_padding < stride); output_shape only with a static input size; a form valid at the model's opset.
// Y keeps its name, so its value_info and every consumer stay valid; the opset import is never changed.
using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Lowering;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.Plan;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Rewrites;

/// <summary>A ConvTranspose node that <see cref="ConvTransposeToPortable"/> can rewrite, with its plan and lowering choice.</summary>
/// <param name="Note">Said in the report next to the lowering (e.g. how MACs were estimated), or null.</param>
public sealed record ConvTransposeMatch(NodeProto Node, TransposedConvPlan Plan, LoweringChoice Choice, long Opset, bool StaticSpatial,
    string? Note)
{
    public string Input => Node.Input[0];
    public string Weights => Node.Input[1];
    public string? Bias => Node.Input.Count > 2 && Node.Input[2].Length > 0 ? Node.Input[2] : null;
    public string Output => Node.Output[0];
}

/// <summary>Rewrites a ConvTranspose with constant weights into the zero-free portable form (see the file header).</summary>
public static class ConvTransposeToPortable
{
    /// <summary>Spatial size assumed for dynamic dims when only MACs depend on it (the rewrite itself does not).</summary>
    public const long DynamicDimPlaceholder = 64;

    /// <summary>Cheap check; never throws. False with <paramref name="reason"/> on anything this rewrite does not support.</summary>
    /// <param name="shapeHints">Inferred shapes of values without value_info, used only to report MACs (see <see cref="ShapeHints"/>).</param>
    public static bool TryMatch(GraphIndex index, NodeProto node, PhaseForm form, out ConvTransposeMatch? match, out string? reason,
        IReadOnlyDictionary<string, long[]>? shapeHints = null)
        => SafeMatch.Try((out ConvTransposeMatch? m) => Check(index, node, form, shapeHints, out m), out match, out reason);

    private static string? Check(GraphIndex index, NodeProto node, PhaseForm form, IReadOnlyDictionary<string, long[]>? shapeHints,
        out ConvTransposeMatch? match)
    {
        match = null;
        if (node.OpType != Ops.ConvTranspose.OpType) return $"not a {Ops.ConvTranspose.OpType}";
        if (!Ops.IsDefaultDomain(node.Domain)) return $"domain '{node.Domain}' is not the default ONNX domain";
        if (node.Input.Count < 2 || node.Output.Count != 1 || node.Output[0].Length == 0)
            return "expects inputs X, W[, B] and one output";
        long? opset = index.Opset(Ops.DefaultDomain);
        if (opset is null) return "the model does not import the default ONNX domain";

        string wName = node.Input[1];
        var w = ConstantValue(index, wName);
        if (w is null)
            return index.IsGraphInput(wName)
                ? $"weights '{wName}' are a graph input, not a constant: they can change at run time"
                : $"weights '{wName}' are computed in the graph, not a constant";
        if (!HalfFloats.IsFloatLike((DataType)w.DataType)) return $"weights '{wName}' are {(DataType)w.DataType}; only FLOAT, FLOAT16 and BFLOAT16 are supported";
        var type = (DataType)w.DataType;
        if (ExternalUnreadable(index, w)) return $"weights '{wName}' use external data but the model's folder is unknown; load the model from its file";
        string? bName = node.Input.Count > 2 && node.Input[2].Length > 0 ? node.Input[2] : null;
        if (bName is not null)
        {
            var b = ConstantValue(index, bName);
            if (b is null) return $"bias '{bName}' is not a constant";
            if (b.DataType != (int)type) return $"bias '{bName}' is {(DataType)b.DataType}, weights are {type}; ONNX requires one type";
            if (ExternalUnreadable(index, b)) return $"bias '{bName}' uses external data but the model's folder is unknown";
        }
        var xType = index.ValueInfo(node.Input[0])?.Type?.TensorType;
        if (xType is not null && xType.ElemType != 0 && xType.ElemType != (int)type)
            return $"input '{node.Input[0]}' is {(DataType)xType.ElemType}, weights are {type}; ONNX requires one type";

        long[] wShape = w.Dims.ToArray();
        if (wShape.Length < 3) return $"weights '{wName}' have rank {wShape.Length}; expected >= 3";
        int rank = wShape.Length - 2;
        var attrs = ConvTransposeNode.ReadAttributes(node);

        long[]? xShape = index.Shape(node.Input[0]);
        if (xShape is not null && xShape.Length != wShape.Length)
            return $"input '{node.Input[0]}' has rank {xShape.Length}, weights rank {wShape.Length}";
        bool staticSpatial = xShape is not null && xShape.Skip(2).All(d => d > 0);
        if (attrs.OutputShape is not null && !staticSpatial)
            return "output_shape with an unknown input size: the pads it implies depend on the input size";
        var shape = new long[wShape.Length];
        shape[0] = xShape is not null && xShape[0] >= 0 ? xShape[0] : 1;
        shape[1] = xShape is not null && xShape[1] > 0 ? xShape[1] : wShape[0];
        for (int i = 0; i < rank; i++)
            shape[i + 2] = xShape is not null && xShape[i + 2] > 0 ? xShape[i + 2] : DynamicDimPlaceholder;
        if (shape[0] == 0) shape[0] = 1;

        // Dynamic dims: the rewrite does not depend on them; only the reported MACs do. Take them from the inferred
        // shape when there is one that resolves, else from the placeholder.
        string? note = staticSpatial ? null : $"MACs for dynamic spatial dims taken at {DynamicDimPlaceholder}";
        ConvTransposeGeometry? geometry = null;
        if (!staticSpatial && shapeHints is not null && shapeHints.TryGetValue(node.Input[0], out var hint) && hint.Length == shape.Length)
        {
            try
            {
                geometry = ConvTransposeGeometry.Resolve(attrs, [hint[0], shape[1], .. hint.Skip(2)], wShape);
                note = $"MACs at inferred input shape [{string.Join(",", hint)}]";
            }
            catch (GeometryException) { geometry = null; }
        }
        geometry ??= ConvTransposeGeometry.Resolve(attrs, shape, wShape);
        if (geometry.OrtRejectsOutputPadding)
            return $"output_padding [{string.Join(",", geometry.Axes.Select(a => a.OutputPadding))}] >= stride: ONNX Runtime rejects this node, so there is nothing to reproduce";
        if (bName is not null)
        {
            long bCount = Tensors.ElementCount(ConstantValue(index, bName)!.Dims);
            if (bCount != geometry.OutChannels) return $"bias '{bName}' has {bCount} values; Cout is {geometry.OutChannels}";
        }

        var request = new LoweringRequest
        {
            Input = node.Input[0], Output = node.Output[0], UniqueName = s => s, Opset = opset.Value, StaticSpatial = staticSpatial, Form = form,
        };
        var plan = TransposedConvPlanBuilder.Build(geometry, bName is not null, attrs.OutputShape is not null);
        var choice = PortableLowering.Choose(plan, request);

        // A static input of length 1 (e.g. a GAN's 1x1 latent) makes the output independent of the stride: with
        // stride = K every phase has exactly one tap, so the Conv is 1x1 instead of K wide over mostly padding.
        if (staticSpatial && geometry.Axes.Any(SingleInputRestride))
        {
            var restrided = geometry with { Axes = [.. geometry.Axes.Select(a => SingleInputRestride(a) ? a with { Stride = a.Kernel } : a)] };
            var altPlan = TransposedConvPlanBuilder.Build(restrided, bName is not null, attrs.OutputShape is not null);
            LoweringChoice? alt = null;
            try { alt = PortableLowering.Choose(altPlan, request); }
            catch (LoweringException) { } // no valid form for the restrided plan at this opset: keep the original one
            if (alt is not null && alt.Macs < choice.Macs)
            {
                (plan, choice) = (altPlan, alt);
                note = "input length 1: stride taken as the kernel size";
            }
        }
        match = new ConvTransposeMatch(node, plan, choice, opset.Value, staticSpatial, note);
        return null;
    }

    /// <summary>External data is read lazily in Apply, one node at a time; that needs the folder it is relative to.</summary>
    internal static bool ExternalUnreadable(GraphIndex index, TensorProto t) =>
        ExternalData.IsExternal(t) && (index.Model is null || ModelIO.DataDirectory(index.Model, t) is null);

    private static bool SingleInputRestride(AxisGeometry a) => a.Input == 1 && a.Dilation == 1 && a.Kernel > 1 && a.Stride != a.Kernel;

    /// <summary>
    /// A constant tensor, also counting initializers listed as graph inputs in IR version &lt; 4 models: that IR
    /// required every initializer to be listed as an input, so the listing does not mark it as meant to be fed.
    /// </summary>
    internal static TensorProto? ConstantValue(GraphIndex index, string value)
    {
        var c = index.Constant(value);
        if (c is null && index.Model is { IrVersion: < 4 } && index.IsGraphInput(value)) c = index.Initializer(value);
        return c;
    }

    /// <summary>Rewrites the matched node in <paramref name="model"/> (the model the index was built on). Returns the lowering used.</summary>
    /// <param name="spill">Where large rearranged weights are written slice by slice (never held whole), or null for in memory.</param>
    public static LoweredNodes Apply(ModelProto model, ConvTransposeMatch match, SpillFile? spill = null)
    {
        var graph = model.Graph;
        var ctx = new RewriteContext(graph);
        var index = new GraphIndex(model);
        var wt = ConstantValue(index, match.Weights)
            ?? throw new InvalidOperationException($"weights '{match.Weights}' vanished between match and apply");
        var type = (DataType)wt.DataType; // float16/bfloat16 weights are widened exactly here and narrowed back below
        var w = ModelIO.TensorFloats(model, wt);
        float[] b = match.Bias is { } bn
            ? ModelIO.TensorFloats(model, ConstantValue(index, bn) ?? throw new InvalidOperationException($"bias '{bn}' vanished between match and apply"))
            : [];
        string stem = string.IsNullOrEmpty(match.Node.Name) ? match.Output : match.Node.Name;
        var lowered = PortableLowering.Lower(match.Plan, w, b, new LoweringRequest
        {
            Input = match.Input,
            Output = match.Output,
            UniqueName = s => ctx.UniqueName($"{stem}/{s}"),
            Opset = match.Opset,
            StaticSpatial = match.StaticSpatial,
            Form = match.Choice.Form,
            ElementType = type,
            Sink = HalfFloats.IsHalf(type) ? null : spill?.For(model), // the spill file holds float32 slices
        });
        lowered = HalfInitializers.Narrow(lowered, type);
        ctx.ReplaceNode(match.Node, lowered.Nodes);
        graph.Initializer.AddRange(lowered.Initializers);
        bool listInitializersAsInputs = model.IrVersion < 4; // keep that IR's convention for the new initializers
        if (listInitializersAsInputs)
            foreach (var t in lowered.Initializers)
                graph.Input.Add(ModelBuilder.ValueInfo(t.Name, (DataType)t.DataType, t.Dims.ToArray()));
        ctx.RemoveIfUnused(match.Weights, alsoGraphInput: listInitializersAsInputs);
        if (match.Bias is { } bias) ctx.RemoveIfUnused(bias, alsoGraphInput: listInitializersAsInputs);
        return lowered;
    }
}
