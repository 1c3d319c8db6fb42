using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Pipeline;
using BN = OnnxDeconv.GraphRewrite.Ops.BatchNormalization;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Rewrites;

/// <summary>A ConvTranspose whose only reader is an inference-mode BatchNormalization, with the folded weights and bias.</summary>
public sealed record BatchNormFoldMatch(NodeProto ConvTranspose, NodeProto BatchNorm, long[] WeightShape, float[] Weights, float[] Bias);

/// <summary>
/// Folds an inference BatchNormalization into the ConvTranspose before it:
/// <code>
/// Before:  X -> ConvTranspose(W const, [B const]) -> BatchNormalization(gamma, beta, mean, var, eps) -> Y
/// After:   X -> ConvTranspose(W', B') -> Y
///          W'[ci, oc, ..] = W * f[co],  B' = (B - mean) * f + beta,  f = gamma / sqrt(var + eps),  co = g*Cout/g + oc
/// </code>
/// Computed in double, stored as float32. Only when the ConvTranspose output has the BatchNormalization as its only
/// reader and is not a graph output, and the BatchNormalization has one output (training mode has three).
/// </summary>
public static class FoldBatchNormIntoConvTranspose
{
    public const string PatternName = "ConvTranspose+BatchNormalization";

    /// <summary>The BatchNormalization reading <paramref name="ct"/>'s output, if any (the candidate to fold).</summary>
    public static NodeProto? FollowingBatchNorm(GraphIndex index, NodeProto ct) =>
        ct.Output.Count == 0 ? null
            : index.Consumers(ct.Output[0]).FirstOrDefault(c => c.OpType == BN.OpType && Ops.IsDefaultDomain(c.Domain) && c.Input.Count > 0 && c.Input[0] == ct.Output[0]);

    /// <summary>Decides whether the BatchNormalization after <paramref name="ct"/> can be folded; never throws.</summary>
    public static bool TryMatch(GraphIndex index, NodeProto ct, out BatchNormFoldMatch? match, out string? reason) =>
        SafeMatch.Try((out BatchNormFoldMatch? m) => Check(index, ct, out m), out match, out reason);

    private static string? Check(GraphIndex index, NodeProto ct, out BatchNormFoldMatch? match)
    {
        match = null;
        if (!ConvTransposeNode.Is(ct)) return $"not a ConvTranspose ({ct.OpType})";
        var bn = FollowingBatchNorm(index, ct);
        if (bn is null) return "no BatchNormalization follows";
        string y = ct.Output[0], bnName = Attributes.Describe(bn);
        if (ct.Output.Count != 1 || ct.Input.Count < 2) return "ConvTranspose must have inputs X, W and one output";
        if (!index.IsUsedOnlyBy(y, bn)) return $"'{y}' is also used elsewhere (or is a graph output); the unnormalized values are needed";
        if (bn.Output.Count(o => o.Length > 0) != 1 || bn.Output[0].Length == 0)
            return $"{bnName} has {bn.Output.Count(o => o.Length > 0)} outputs (training mode); only the inference form folds";
        if ((Attributes.GetInt(bn, BN.TrainingMode) ?? 0) != 0) return $"{bnName} has training_mode set";
        if ((Attributes.GetInt(bn, BN.Spatial) ?? 1) != 1) return $"{bnName} has spatial=0 (per-element statistics)";
        // Before opset 7, is_test defaults to 0 (training: batch statistics).
        if ((index.Opset(Ops.DefaultDomain) ?? 1) < 7 && (Attributes.GetInt(bn, BN.IsTest) ?? 0) == 0)
            return $"{bnName} is not in test mode (is_test=0, opset < 7)";
        if (bn.Input.Count < 5) return $"{bnName} needs scale, B, mean and var inputs";

        var wt = index.Constant(ct.Input[1]);
        if (wt is null) return $"ConvTranspose weights '{ct.Input[1]}' are not constant";
        if (wt.DataType != (int)DataType.Float) return $"ConvTranspose weights '{ct.Input[1]}' are {(DataType)wt.DataType}; only float32 folds";
        long[] wShape = wt.Dims.ToArray();
        if (wShape.Length < 3) return $"ConvTranspose weights '{ct.Input[1]}' have rank {wShape.Length}";
        long group = Attributes.GetInt(ct, Ops.ConvTranspose.Group) ?? 1;
        if (group < 1 || wShape[0] % group != 0) return $"group {group} does not divide Cin {wShape[0]}";
        long cog = wShape[1], cout = cog * group, cig = wShape[0] / group;

        float[]? bias = null;
        if (ct.Input.Count > 2 && ct.Input[2].Length > 0)
        {
            bias = ConstFloats(index, ct.Input[2], cout, out var why);
            if (bias is null) return why;
        }
        var p = new float[4][];
        for (int i = 0; i < 4; i++)
        {
            p[i] = ConstFloats(index, bn.Input[1 + i], cout, out var why)!;
            if (p[i] is null) return $"{bnName}: {why}";
        }
        double eps = Attributes.GetFloat(bn, BN.Epsilon) ?? 1e-5f;
        var f = new double[cout];
        for (long c = 0; c < cout; c++)
        {
            double v = p[3][c] + eps;
            if (!(v > 0)) return $"{bnName}: var + epsilon is {v} for channel {c}";
            f[c] = p[0][c] / Math.Sqrt(v);
        }

        // Scaled in place: Floats returns a fresh array, and a large weight is then held once, not read and folded.
        var w = index.Floats(wt);
        long taps = wShape.Skip(2).Aggregate(1L, (a, b) => a * b);
        for (long g = 0; g < group; g++)
        for (long ic = 0; ic < cig; ic++)
        for (long oc = 0; oc < cog; oc++)
        {
            double scale = f[g * cog + oc];
            long at = ((g * cig + ic) * cog + oc) * taps;
            for (long t = 0; t < taps; t++) w[at + t] = (float)(w[at + t] * scale);
        }
        var b2 = new float[cout];
        for (long c = 0; c < cout; c++) b2[c] = (float)(((bias?[c] ?? 0.0) - p[2][c]) * f[c] + p[1][c]);
        match = new BatchNormFoldMatch(ct, bn, wShape, w, b2);
        return null;
    }

    private static float[]? ConstFloats(GraphIndex index, string name, long count, out string? reason)
    {
        reason = null;
        var t = index.Constant(name);
        if (t is null) { reason = $"'{name}' is not constant"; return null; }
        if (t.DataType != (int)DataType.Float) { reason = $"'{name}' is {(DataType)t.DataType}; only float32 folds"; return null; }
        var v = index.Floats(t);
        if (v.Length != count) { reason = $"'{name}' has {v.Length} values; expected {count} (one per output channel)"; return null; }
        return v;
    }

    /// <summary>Folds every foldable BatchNormalization after a ConvTranspose of the main graph; reports each one found.</summary>
    /// <param name="afterNode">Called after each rewrite (e.g. to move its new weights out of memory).</param>
    public static IReadOnlyList<SourceRewrite> RewriteAll(ModelProto model, Action<ModelProto>? afterNode = null)
    {
        var reports = new List<SourceRewrite>();
        GraphIndex? index = null;
        foreach (var ct in model.Graph.Node.Where(ConvTransposeNode.Is).ToList())
        {
            index ??= new GraphIndex(model); // rebuilt only after a fold changed the graph
            var bn = FollowingBatchNorm(index, ct);
            if (bn is null) continue;
            if (!TryMatch(index, ct, out var match, out var reason) || match is null)
            {
                reports.Add(new SourceRewrite(new NodeReport { Node = Attributes.Describe(bn), Pattern = PatternName, Rewritten = false, Reason = reason }, null));
                continue;
            }
            reports.Add(Apply(model, match));
            afterNode?.Invoke(model);
            index = null;
        }
        return reports;
    }

    /// <summary>Gives the ConvTranspose the folded weights and bias and the BatchNormalization's output; removes the BatchNormalization.</summary>
    public static SourceRewrite Apply(ModelProto model, BatchNormFoldMatch match)
    {
        var editor = new GraphEditor(model);
        var ct = match.ConvTranspose;
        var bn = match.BatchNorm;
        string stem = string.IsNullOrEmpty(ct.Name) ? ct.Output[0] : ct.Name;
        string wName = editor.UniqueName($"{ct.Input[1]}_bnfolded");
        string bName = editor.UniqueName($"{stem}_bnfolded_bias");
        // The folded weights were computed for this match alone: the tensor takes the array (one copy of a large weight).
        editor.AddInitializer(Tensors.FromFloatsOwned(wName, match.WeightShape, match.Weights), keepIrConvention: true);
        editor.AddInitializer(Tensors.FromFloats(bName, [match.Bias.Length], match.Bias), keepIrConvention: true);

        var dropped = new List<string> { ct.Input[1] };
        if (ct.Input.Count > 2) dropped.Add(ct.Input[2]);
        dropped.AddRange(bn.Input.Skip(1));
        string y = ct.Output[0];
        ct.Input[1] = wName;
        if (ct.Input.Count > 2) ct.Input[2] = bName; else ct.Input.Add(bName);
        editor.RemoveNode(bn, allowDanglingUses: true); // its output is the ConvTranspose's from now on
        ct.Output[0] = bn.Output[0];
        foreach (var vi in model.Graph.ValueInfo.Where(v => v.Name == y).ToList()) model.Graph.ValueInfo.Remove(vi);
        foreach (var v in dropped.Where(v => v.Length > 0).Distinct()) editor.RemoveIfUnused(v);

        var report = new NodeReport
        {
            Node = Attributes.Describe(ct),
            Pattern = PatternName,
            Nodes = [Attributes.Describe(ct), Attributes.Describe(bn)],
            Rewritten = true,
            Lowering = $"{Attributes.Describe(bn)} folded into weights and bias",
        };
        return new SourceRewrite(report, Attributes.Describe(ct));
    }
}
