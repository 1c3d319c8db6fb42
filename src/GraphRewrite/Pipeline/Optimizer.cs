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
        if (options.Target == Target.Auto) return AutoTuner.Run(model, result, reports, sources, options);

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
        return new OptimizeResult(reports.Any(r => r.Rewritten) ? result : model.Clone(), reports);
    }
}
