using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Lowering;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Pipeline;

namespace OnnxDeconv.GraphRewrite.Rewrites;

/// <summary>
/// The plugin lowering over a model: <see cref="ConvTransposeMatcher"/> then <see cref="Lowerings.Plugin"/> per
/// ConvTranspose (see <see cref="PluginSiteLowering"/> for what the rewrite does).
/// </summary>
public static class ConvTransposeToPlugin
{
    public const string PatternName = "ConvTranspose";

    /// <summary>Rewrites <paramref name="node"/> if it matches; the report says what happened (or why not).</summary>
    /// <param name="spill">Where a large packed weight is written slice by slice (never held whole), or null for in memory.</param>
    public static bool TryRewrite(ModelProto model, NodeProto node, out NodeReport report, SpillFile? spill = null)
    {
        report = LoweringPass.LowerOne(new GraphEditor(model), node, Lowerings.Plugin, LoweringEnvironment.Default with { Spill = spill });
        return report.Rewritten;
    }

    /// <summary>Rewrites every ConvTranspose in the main graph; one report per ConvTranspose.</summary>
    /// <param name="afterNode">Called after each rewritten node (e.g. to move its new weights out of memory).</param>
    /// <param name="spill">Where large packed weights are written slice by slice, or null for in memory.</param>
    public static OptimizeResult RewriteAll(ModelProto model, Action<ModelProto>? afterNode = null, SpillFile? spill = null) =>
        new(model, LoweringPass.Run(model, Lowerings.Plugin, LoweringEnvironment.Default with { Spill = spill }, afterNode));
}
