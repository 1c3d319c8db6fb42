using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Lowering;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Rewrites;

namespace OnnxDeconv.GraphRewrite.Pipeline;

/// <summary>Pre-passes, then match → lower every site with the target's lowering (see docs/architecture.md). Verification and saving are the caller's (the CLI's) job.</summary>
public static class Optimizer
{
    /// <summary>
    /// Rewrites every ConvTranspose of the main graph that the target supports, on a clone (the input model is never
    /// modified). One <see cref="NodeReport"/> per ConvTranspose, rewritten or with the reason it was left alone.
    /// First, exact Resize/Upsample(nearest)+Conv pairs become ConvTransposes (one report per pair), which are then lowered
    /// like any other; <see cref="Target.ConvTranspose"/> stops there.
    /// A model with nothing rewritten comes back unchanged (same bytes when serialized).
    /// <see cref="Target.Auto"/> times the candidates per node (see <see cref="AutoTuner"/>).
    /// </summary>
    public static OptimizeResult Run(ModelProto model, OptimizeOptions options) => Run(model, options, PhaseForm.Auto);

    /// <summary>As <see cref="Run(ModelProto, OptimizeOptions)"/>, forcing how phases become Convs (tests exercise both forms).</summary>
    public static OptimizeResult Run(ModelProto model, OptimizeOptions options, PhaseForm form)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        if (model.Graph is null) throw new ArgumentException("model has no graph", nameof(model));
        if (options.PortableOnly && options.Target != Target.Auto)
            throw new ArgumentException($"{nameof(OptimizeOptions.PortableOnly)} applies to target {Target.Auto} only", nameof(options));

        // A --shape naming no graph input is invalid input, found before any work (docs/shapes.md).
        Shapes.ShapeSpecs.CheckNames(model, options.Shapes);
        var result = model.Clone();
        ModelIO.InheritSource(model, result); // external weights stay external and are read where the input's are
        // Pre-pass: Resize/Upsample(nearest)+Conv pairs become ConvTransposes, which the loops below then lower.
        var reports = new List<NodeReport>(ResizeConvToConvTranspose.RewriteAll(result, target: options.Target, afterNode: options.AfterNode));
        // Then explicit zero insertion + Conv becomes a ConvTranspose, and BatchNormalization after any ConvTranspose is folded.
        var sources = ZeroInsertConvToConvTranspose.RewriteAll(result, options.AfterNode)
            .Concat(FoldBatchNormIntoConvTranspose.RewriteAll(result, options.AfterNode)).ToList();
        if (options.Target == Target.Auto) return DropLeftovers(model, AutoTuner.Run(model, result, reports, sources, options));

        // Every ConvTranspose becomes a site (one matcher for every target) and is lowered by the target's lowering.
        var lowering = options.Target switch
        {
            Target.Portable => Lowerings.PortableFor(form),
            Target.Plugin => Lowerings.Plugin,
            _ => null, // Target.ConvTranspose stops after the pre-passes
        };
        var lowered = new List<NodeReport>();
        if (lowering is not null && result.Graph.Node.Any(ConvTransposeMatcher.IsCandidate))
        {
            var environment = new LoweringEnvironment { Weights = options.Weights ?? ModelWeightSource.Instance, Spill = options.Spill };
            // Shapes of values without value_info from the resolved input shapes: for the MAC columns, and for an
            // output_shape site whose input size only they know (lowered for that size; the inputs are then declared with it).
            var inputShapes = Shapes.SpecialisedSites.ResolvedInputs(result, options.Shapes);
            var candidates = result.Graph.Node.Where(ConvTransposeMatcher.IsCandidate).ToList();
            var specialised = Shapes.SpecialisedSites.Find(result).ToHashSet(ReferenceEqualityComparer.Instance);
            lowered = LoweringPass.Run(result, lowering, environment, options.AfterNode, options.Disabled, ShapeHints.Infer(result, inputShapes));
            if (candidates.Zip(lowered).Any(p => p.Second.Rewritten && specialised.Contains(p.First))
                && Shapes.SpecialisedSites.Pin(result, inputShapes) is { } pinned)
                lowered = [.. candidates.Zip(lowered, (n, r) => r.Rewritten && specialised.Contains(n) ? r with { Lowering = $"{r.Lowering}; {pinned}" } : r)];
        }
        reports.AddRange(ZeroInsertConvToConvTranspose.MergeReports(sources, lowered));
        return DropLeftovers(model, new OptimizeResult(reports.Any(r => r.Rewritten) ? result : model.Clone(), reports));
    }

    /// <summary>
    /// The saved model holds no initializer (or Constant) that no node reads unless the input model held it unread too:
    /// each rewrite removes what it leaves unused, and this catches any path that did not (e.g. a revert), so no
    /// weight is ever left behind for ONNX Runtime to warn about and the file to carry.
    /// </summary>
    internal static OptimizeResult DropLeftovers(ModelProto input, OptimizeResult result)
    {
        if (ReferenceEquals(input, result.Model)) return result;
        var unusedBefore = UnreadConstants(input).ToHashSet(StringComparer.Ordinal);
        var leftovers = UnreadConstants(result.Model).Where(n => !unusedBefore.Contains(n)).ToList();
        if (leftovers.Count == 0) return result;
        var editor = new GraphEditor(result.Model);
        foreach (var name in leftovers) editor.RemoveIfUnused(name);
        return result;
    }

    /// <summary>Main-graph initializers and Constant outputs that no node (at any depth) and no graph output reads.</summary>
    internal static IEnumerable<string> UnreadConstants(ModelProto model)
    {
        var reads = new HashSet<string>(StringComparer.Ordinal);
        foreach (var g in Topology.AllGraphs(model))
            foreach (var n in g.Node) foreach (var r in Topology.NodeReads(n)) reads.Add(r);
        foreach (var o in model.Graph.Output) reads.Add(o.Name);
        // In IR >= 4 an initializer also listed as a graph input is part of the interface (a default the caller may override).
        var interfaceInputs = model.IrVersion >= 4 ? model.Graph.Input.Select(i => i.Name).ToHashSet(StringComparer.Ordinal) : [];
        foreach (var t in model.Graph.Initializer)
            if (!reads.Contains(t.Name) && !interfaceInputs.Contains(t.Name)) yield return t.Name;
        foreach (var n in model.Graph.Node.Where(n => n.OpType == Ops.Constant.OpType && Ops.IsDefaultDomain(n.Domain)))
            foreach (var o in n.Output.Where(o => o.Length > 0 && !reads.Contains(o))) yield return o;
    }
}
