using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Lowering;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;

namespace OnnxDeconv.GraphRewrite.Pipeline;

/// <summary>
/// Match once, lower with one <see cref="ISiteLowering"/>: every ConvTranspose of the main graph becomes a
/// <see cref="ConvTransposeSite"/> (or a report of why it is not one) and is lowered in place, one at a time, through
/// one <see cref="GraphEditor"/>. One report per ConvTranspose, in graph order.
/// </summary>
public static class LoweringPass
{
    /// <param name="afterNode">Called after each rewritten site (e.g. to move its new weights out of memory).</param>
    /// <param name="hints">Inferred shapes of values without value_info, for MACs only.</param>
    public static List<NodeReport> Run(ModelProto model, ISiteLowering lowering, LoweringEnvironment environment,
        Action<ModelProto>? afterNode = null, IReadOnlySet<string>? disabled = null, IReadOnlyDictionary<string, long[]>? hints = null)
    {
        var editor = new GraphEditor(model);
        var reports = new List<NodeReport>();
        foreach (var node in model.Graph.Node.Where(ConvTransposeMatcher.IsCandidate).ToList())
            reports.Add(LowerOne(editor, node, lowering, environment, afterNode, disabled, hints));
        return reports;
    }

    /// <summary>Matches <paramref name="node"/> and lowers it with <paramref name="lowering"/> if it can; the report says what happened.</summary>
    public static NodeReport LowerOne(GraphEditor editor, NodeProto node, ISiteLowering lowering, LoweringEnvironment environment,
        Action<ModelProto>? afterNode = null, IReadOnlySet<string>? disabled = null, IReadOnlyDictionary<string, long[]>? hints = null)
    {
        var refused = new NodeReport { Node = Attributes.Describe(node), Pattern = Ops.ConvTranspose.OpType, Rewritten = false };
        if (!ConvTransposeMatcher.TryMatch(editor.Index, node, out var site, out var reason, hints) || site is null)
            return refused with { Reason = reason };
        if (disabled is not null && disabled.Contains(lowering.Name))
            return refused with { Reason = $"lowering '{lowering.Name}' is disabled", RefusedBy = lowering.Name };
        if (lowering.CanLower(site) is { } why) return refused with { Reason = why, RefusedBy = lowering.Name };
        var done = lowering.Lower(site, editor, environment);
        site.ReleaseWeights();
        if (afterNode is not null)
        {
            afterNode(editor.Model);
            editor.Refresh(); // the callback may have edited tensors by hand
        }
        return new NodeReport
        {
            Node = refused.Node, Pattern = done.Pattern, Rewritten = done.Rewritten, Lowering = done.Rewritten ? done.Description : null,
            Reason = done.Rewritten ? null : done.Description, MacsBefore = done.MacsBefore, MacsAfter = done.MacsAfter,
        };
    }
}
