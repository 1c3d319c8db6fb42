// Lowerings of a ConvTransposeSite, as a list. Each is a cheap CanLower (a reason, or null; reads no weight values)
// and a Lower that edits the model through the GraphEditor. Targets are lists of these (see Lowerings.For), auto
// times every one that can lower a site, and any of them can be disabled by name.
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;

namespace OnnxDeconv.GraphRewrite.Lowering;

/// <summary>What a lowering may use besides the site and the editor.</summary>
public sealed record LoweringEnvironment
{
    public static readonly LoweringEnvironment Default = new();

    /// <summary>Where weight values are read from (a test counts reads here).</summary>
    public IWeightSource Weights { get; init; } = ModelWeightSource.Instance;
    /// <summary>Where large computed weights are written slice by slice (never held whole), or null for in memory.</summary>
    public SpillFile? Spill { get; init; }
}

/// <summary>What a lowering did to a site, for the report.</summary>
/// <param name="Rewritten">False for the lowerings that keep the site as it is (or put the user's nodes back).</param>
/// <param name="Pattern">The pattern covered, e.g. "ConvTranspose+Relu" when an activation was fused.</param>
/// <param name="Description">How, e.g. "polyphase Conv(16ch)+DepthToSpace+Slice"; for a kept site, why.</param>
public sealed record LoweredSite(bool Rewritten, string Pattern, string Description, long MacsBefore, long MacsAfter);

/// <summary>One way to lower a <see cref="ConvTransposeSite"/>.</summary>
public interface ISiteLowering
{
    /// <summary>Stable name: the label auto reports, the name a caller disables it by.</summary>
    string Name { get; }

    /// <summary>Null when <see cref="Lower"/> will succeed on <paramref name="site"/>; else why not. Cheap, never throws.</summary>
    string? CanLower(ConvTransposeSite site);

    /// <summary>Rewrites the site in <paramref name="editor"/>'s model (the model the site was matched in).</summary>
    LoweredSite Lower(ConvTransposeSite site, GraphEditor editor, LoweringEnvironment environment);
}

/// <summary>Every lowering, by name, and which ones each target uses.</summary>
public static class Lowerings
{
    /// <summary>Portable, form chosen by zero-tap waste (what <c>--target portable</c> does).</summary>
    public static readonly ISiteLowering Portable = new PortableSiteLowering("portable", PhaseForm.Auto);
    public static readonly ISiteLowering PortableCombined = new PortableSiteLowering("portable-combined", PhaseForm.Combined);
    public static readonly ISiteLowering PortablePerPhase = new PortableSiteLowering("portable-perphase", PhaseForm.PerPhase);
    public static readonly ISiteLowering Plugin = new PluginSiteLowering();
    /// <summary>A derived site stays the ConvTranspose the pre-pass made of it.</summary>
    public static readonly ISiteLowering ConvTranspose = new KeepConvTranspose();
    /// <summary>The site stays as the user wrote it: a derived site gets the user's nodes back.</summary>
    public static readonly ISiteLowering Keep = new KeepOriginal();

    public static IReadOnlyList<ISiteLowering> All { get; } = [Keep, ConvTranspose, Portable, PortableCombined, PortablePerPhase, Plugin];

    public static ISiteLowering? ByName(string name) => All.FirstOrDefault(l => l.Name == name);

    /// <summary>The portable lowering forcing <paramref name="form"/> (tests exercise both forms).</summary>
    public static ISiteLowering PortableFor(PhaseForm form) => form switch
    {
        PhaseForm.Combined => PortableCombined,
        PhaseForm.PerPhase => PortablePerPhase,
        _ => Portable,
    };

    /// <summary>
    /// The candidates auto times for a site, first the baseline: the user's nodes (<see cref="Keep"/>), then for a derived
    /// site the ConvTranspose itself, then both portable forms and (unless portable-only) the plugin.
    /// </summary>
    public static IReadOnlyList<ISiteLowering> AutoCandidates(ConvTransposeSite site, bool portableOnly) =>
    [
        Keep, .. site.Origin is null ? Array.Empty<ISiteLowering>() : [ConvTranspose], PortableCombined, PortablePerPhase,
        .. portableOnly ? Array.Empty<ISiteLowering>() : [Plugin],
    ];
}

/// <summary>Keeps a derived ConvTranspose as the pre-pass made it (a plain ConvTranspose keeps being itself).</summary>
internal sealed class KeepConvTranspose : ISiteLowering
{
    public string Name => "convtranspose";

    public string? CanLower(ConvTransposeSite site) => null;

    public LoweredSite Lower(ConvTransposeSite site, GraphEditor editor, LoweringEnvironment environment) =>
        new(false, Ops.ConvTranspose.OpType, "ConvTranspose kept", site.Geometry.UsefulMacs, site.Geometry.UsefulMacs);
}

/// <summary>Leaves the site as the user wrote it: a derived site's ConvTranspose is replaced by the user's nodes again.</summary>
internal sealed class KeepOriginal : ISiteLowering
{
    public string Name => "unchanged";

    public string? CanLower(ConvTransposeSite site) => null;

    public LoweredSite Lower(ConvTransposeSite site, GraphEditor editor, LoweringEnvironment environment)
    {
        if (site.Origin is not { } origin) return new(false, Ops.ConvTranspose.OpType, "unchanged", 0, 0);
        Restore(editor, site.Node, origin);
        return new(false, origin.Ops, $"the original {origin.Ops} kept", 0, 0);
    }

    /// <summary>Puts the user's nodes back in place of their derived ConvTranspose, with the initializers the pre-passes dropped.</summary>
    /// The derived node's own constants (e.g. BatchNorm-folded weights) go when nothing else reads them.
    public static void Restore(GraphEditor editor, NodeProto derived, SiteOrigin origin)
    {
        var derivedInputs = derived.Input.Where(i => i.Length > 0).Distinct().ToList();
        editor.ReplaceNode(derived, [.. origin.Nodes.Select(n => n.Clone())]);
        var have = editor.Graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var t in origin.Initializers.Where(t => !have.Contains(t.Name)))
            editor.AddInitializer(t.Clone(), keepIrConvention: !editor.Graph.Input.Any(i => i.Name == t.Name));
        foreach (var v in derivedInputs) editor.RemoveIfUnused(v);
    }
}
