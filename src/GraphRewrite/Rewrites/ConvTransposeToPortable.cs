using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Lowering;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.Plan;

namespace OnnxDeconv.GraphRewrite.Rewrites;

/// <summary>A site the portable lowering can rewrite, with its plan and lowering choice.</summary>
/// <param name="Note">Said in the report next to the lowering (e.g. how MACs were estimated), or null.</param>
public sealed record ConvTransposeMatch(ConvTransposeSite Site, TransposedConvPlan Plan, LoweringChoice Choice, string? Note)
{
    public NodeProto Node => Site.Node;
}

/// <summary>
/// The portable lowering of one ConvTranspose as a match/apply pair: <see cref="ConvTransposeMatcher"/> then
/// <see cref="Lowerings.PortableFor"/> (see <see cref="PortableSiteLowering"/> for what the rewrite does).
/// </summary>
public static class ConvTransposeToPortable
{
    /// <summary>Cheap check; never throws. False with <paramref name="reason"/> on anything this rewrite does not support.</summary>
    /// <param name="shapeHints">Inferred shapes of values without value_info, used only to report MACs (see <see cref="ShapeHints"/>).</param>
    public static bool TryMatch(GraphIndex index, NodeProto node, PhaseForm form, out ConvTransposeMatch? match, out string? reason,
        IReadOnlyDictionary<string, long[]>? shapeHints = null)
    {
        match = null;
        if (!ConvTransposeMatcher.TryMatch(index, node, out var site, out reason, shapeHints) || site is null) return false;
        reason = Lowerings.PortableFor(form).CanLower(site);
        if (reason is not null) return false;
        var p = PortableSiteLowering.Prepare(site, form);
        match = new ConvTransposeMatch(site, p.Plan, p.Choice, p.Note);
        return true;
    }

    /// <summary>Rewrites the matched node in <paramref name="model"/> (the model it was matched in). Returns what the lowering did.</summary>
    /// <param name="spill">Where large rearranged weights are written slice by slice (never held whole), or null for in memory.</param>
    public static LoweredSite Apply(ModelProto model, ConvTransposeMatch match, SpillFile? spill = null) =>
        Lowerings.PortableFor(match.Choice.Form).Lower(match.Site, new GraphEditor(model), LoweringEnvironment.Default with { Spill = spill });
}
