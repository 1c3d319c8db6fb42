using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Lowering;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Rewrites;

namespace OnnxDeconv.GraphRewrite.Pipeline;

/// <summary>Match → plan → lower over a whole model. Verification and saving are the caller's (the CLI's) job.</summary>
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

        var result = model.Clone();
        ModelIO.InheritSource(model, result); // external weights stay external and are read where the input's are
        // Pre-pass: Resize/Upsample(nearest)+Conv pairs become ConvTransposes, which the loops below then lower.
        var reports = new List<NodeReport>(ResizeConvToConvTranspose.RewriteAll(result, target: options.Target, afterNode: options.AfterNode));
        // Then explicit zero insertion + Conv becomes a ConvTranspose, and BatchNormalization after any ConvTranspose is folded.
        var sources = ZeroInsertConvToConvTranspose.RewriteAll(result, options.AfterNode)
            .Concat(FoldBatchNormIntoConvTranspose.RewriteAll(result, options.AfterNode)).ToList();
        switch (options.Target)
        {
            case Target.Portable: break;
            case Target.Plugin:
            {
                var rewritten = ConvTransposeToPlugin.RewriteAll(result, options.AfterNode, options.Spill);
                reports.AddRange(ZeroInsertConvToConvTranspose.MergeReports(sources, rewritten.Nodes));
                return new OptimizeResult(reports.Any(r => r.Rewritten) ? result : model.Clone(), reports);
            }
            case Target.ConvTranspose:
                reports.AddRange(ZeroInsertConvToConvTranspose.MergeReports(sources, []));
                return new OptimizeResult(reports.Any(r => r.Rewritten) ? result : model.Clone(), reports);
            case Target.Auto:
                return AutoTuner.Run(model, result, reports, sources, options);
        }
        int firstLowered = reports.Count;

        var candidates = result.Graph.Node.Where(n => n.OpType == Ops.ConvTranspose.OpType).ToList();
        // Shapes of values without value_info, for the MAC columns only (rewrites are shape-agnostic there).
        var hints = candidates.Count > 0 ? ShapeHints.Infer(result) : [];
        foreach (var node in candidates)
        {
            string name = Attributes.Describe(node);
            var index = new GraphIndex(result); // rebuilt per node: earlier rewrites changed the graph
            if (!ConvTransposeToPortable.TryMatch(index, node, form, out var match, out var reason, hints) || match is null)
            {
                reports.Add(new NodeReport { Node = name, Pattern = Ops.ConvTranspose.OpType, Rewritten = false, Reason = reason });
                continue;
            }
            var lowered = ConvTransposeToPortable.Apply(result, match, options.Spill);
            options.AfterNode?.Invoke(result);
            reports.Add(new NodeReport
            {
                Node = name,
                Pattern = Ops.ConvTranspose.OpType,
                Rewritten = true,
                Lowering = match.Note is null ? lowered.Description : $"{lowered.Description} ({match.Note})",
                MacsBefore = match.Plan.UsefulMacs,
                MacsAfter = lowered.Choice.Macs,
            });
        }
        var loweredReports = reports.Skip(firstLowered).ToList();
        reports.RemoveRange(firstLowered, loweredReports.Count);
        reports.AddRange(ZeroInsertConvToConvTranspose.MergeReports(sources, loweredReports));
        return new OptimizeResult(reports.Any(r => r.Rewritten) ? result : model.Clone(), reports);
    }
}
