using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Lowering;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Rewrites;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Timing;
using OnnxDeconv.GraphRewrite.Verification;

namespace OnnxDeconv.GraphRewrite.Pipeline;

/// <summary>
/// <see cref="Target.Auto"/> on top of sites and lowerings: per ConvTranspose site, the decision cache is looked up
/// first (the key needs only the site's geometry and which lowerings can lower it, nothing built); on a miss every
/// applicable lowering in <see cref="Lowerings.AutoCandidates"/> is applied to the node isolated at its real input
/// shape, checked against the unchanged node, timed side by side, and the fastest kept (the node stays unchanged
/// unless a candidate wins by <see cref="WinMargin"/>); see <see cref="AutoDecider"/>. Then the original and the
/// result are timed as whole models; if the result is slower, node choices are undone, least gain first, down to the
/// original model. A site's weights are read once per decision and once when its choice is applied.
/// </summary>
public static class AutoTuner
{
    public const string Unchanged = "unchanged";
    public const string PortableCombined = "portable-combined";
    public const string PortablePerPhase = "portable-perphase";
    public const string Plugin = "plugin";
    /// <summary>A ConvTranspose the pre-passes derived from a Resize+Conv or zero-insertion+Conv pattern (or a BN fold), kept as a ConvTranspose.</summary>
    public const string DerivedConvTranspose = "convtranspose";

    /// <summary>A candidate must be this much faster than the unchanged node to replace it (timing noise is a few %).</summary>
    public const double WinMargin = 0.03;

    /// <summary>The result counts as slower than the original only beyond this fraction (noise between two timings).</summary>
    public const double WholeModelNoise = 0.03;

    /// <summary>
    /// Lowers the ConvTransposes of <paramref name="prePassed"/> (the model after the pattern pre-passes) by measurement.
    /// <paramref name="original"/> is the caller's model, which the result is timed against.
    /// </summary>
    internal static OptimizeResult Run(ModelProto original, ModelProto prePassed, IReadOnlyList<NodeReport> prePassReports,
        IReadOnlyList<SourceRewrite> sources, OptimizeOptions options)
    {
        int threads = options.Threads ?? Environment.ProcessorCount;
        var timer = options.Timer ?? new OrtCandidateTimer(threads, new TimingBudget(options.NodeBudget));
        var warnings = new List<string>();
        var cache = options.Cache;
        var env = new LoweringEnvironment { Weights = options.Weights ?? ModelWeightSource.Instance, Spill = options.Spill };
        var decider = new AutoDecider(options, threads, timer, cache, env.Weights);

        var nodes = prePassed.Graph.Node.Where(ConvTransposeMatcher.IsCandidate).ToList();
        var shapes = AutoDecider.InputShapes(prePassed, nodes, options.Shapes, out string? shapeProblem);
        var index = new GraphIndex(prePassed);
        var decisions = new List<Decision>();
        foreach (var node in nodes)
        {
            // Nodes and the whole-model comparison are the steps; the comparison is the last one.
            options.Progress?.Invoke(new ProgressStep(decisions.Count, nodes.Count + 1, $"node {decisions.Count + 1}/{nodes.Count}: {Attributes.Describe(node)}"));
            int position = IndexOf(prePassed.Graph, node);
            if (!ConvTransposeMatcher.TryMatch(index, node, out var site, out var reason, origin: SiteOrigins.Find(original, prePassed, node)) || site is null)
            {
                decisions.Add(new Decision(position, Attributes.Describe(node), Unchanged, [], false, reason));
                continue;
            }
            decisions.Add(decider.Decide(site, position, shapes.GetValueOrDefault(site.Input), shapeProblem));
            site.ReleaseWeights();
        }
        var chosen = decisions.Where(d => d.Choice != Unchanged).ToList();
        var (model, lowered, restored) = Build(prePassed, decisions, chosen, reverted: null, options.AfterNode, env);
        var reports = Compose(prePassReports, sources, lowered, restored);
        if (!reports.Any(r => r.Rewritten))
        {
            SaveCache(cache, warnings);
            return new OptimizeResult(original.Clone(), reports) { Warnings = warnings };
        }

        // Whole-model guarantee: never slower than the original. Undo choices, least gain first, while it is.
        WholeModelTiming? whole = null;
        try
        {
            var inputs = new Lazy<IReadOnlyList<TensorValue>>(() => WholeModelInputs(original, options.Shapes)); // not needed on a cache hit
            var originalBytes = RunnableBytes(original);
            var revertedOrder = new List<string>();
            var revertedSet = new HashSet<int>();
            var remaining = chosen.OrderBy(d => d.Gain).ToList();
            while (true)
            {
                var resultBytes = RunnableBytes(model);
                string key = AutoDecider.ComparisonKey(originalBytes, resultBytes, threads);
                IReadOnlyList<double> times;
                bool cachedComparison = false;
                if (cache is not null && cache.TryGetComparison(key, out var seen) && seen is not null)
                {
                    times = [seen.OriginalMs, seen.ResultMs];
                    cachedComparison = true;
                }
                else
                {
                    options.Progress?.Invoke(new ProgressStep(nodes.Count, nodes.Count + 1, revertedOrder.Count == 0
                        ? "whole model: original vs optimized" : $"whole model: original vs optimized with {revertedOrder.Count} choice(s) undone"));
                    times = timer.Time("whole model", [
                        new TimedModel("original", originalBytes, inputs.Value, OnnxDeconvSessionOptions.UsesPlugin(original)),
                        new TimedModel("auto", resultBytes, inputs.Value, OnnxDeconvSessionOptions.UsesPlugin(model)),
                    ]);
                    cache?.PutComparison(key, new CachedComparison(times[0], times[1]));
                }
                whole = new WholeModelTiming(times[0], times[1], revertedOrder.ToList(), false, cachedComparison);
                if (times[1] <= times[0] * (1 + WholeModelNoise)) break;
                if (remaining.Count == 0)
                {
                    warnings.Add($"the optimized model was slower than the original ({Ms(times[1])} vs {Ms(times[0])} ms) even with every node unchanged: returned the original model");
                    var back = reports.Select(r => r.Rewritten
                        ? r with { Rewritten = false, Lowering = null, Reason = $"reverted: the whole model was slower rewritten ({Ms(times[1])} vs {Ms(times[0])} ms)" }
                        : r).ToList();
                    return new OptimizeResult(original.Clone(), back) { Warnings = warnings, WholeModel = whole with { ReturnedOriginal = true } };
                }
                var undo = remaining[0];
                remaining.RemoveAt(0);
                revertedOrder.Add(undo.Description);
                revertedSet.Add(undo.Index);
                warnings.Add($"the optimized model was slower than the original ({Ms(times[1])} vs {Ms(times[0])} ms): {undo.Description} reverted to "
                    + (undo.Origin is null ? "the unchanged ConvTranspose" : $"the original {undo.Origin.Ops}"));
                (model, lowered, restored) = Build(prePassed, decisions, remaining, revertedSet, options.AfterNode, env);
                reports = Compose(prePassReports, sources, lowered, restored);
                if (!reports.Any(r => r.Rewritten)) // every choice undone and no pre-pass rewrite: that is the original
                    return new OptimizeResult(original.Clone(), reports)
                    {
                        Warnings = warnings,
                        WholeModel = new WholeModelTiming(times[0], times[1], revertedOrder.ToList(), true, cachedComparison),
                    };
            }
        }
        catch (Exception e) when (e is OnnxRuntimeException or ShapeProbeException or VerificationInputException)
        {
            warnings.Add($"whole model not timed against the original ({e.Message}): the per-node choices stand");
        }
        finally
        {
            SaveCache(cache, warnings);
        }
        return new OptimizeResult(model, reports) { Warnings = warnings, WholeModel = whole };
    }

    private static void SaveCache(DecisionCache? cache, List<string> warnings)
    {
        if (cache is null) return;
        cache.Save();
        foreach (var w in cache.Warnings.Where(w => !warnings.Contains(w))) warnings.Add(w);
    }

    // Protobuf messages compare by value (two identical nodes are equal), so positions are found by reference.
    private static int IndexOf(GraphProto graph, NodeProto node)
    {
        for (int i = 0; i < graph.Node.Count; i++) if (ReferenceEquals(graph.Node[i], node)) return i;
        return -1;
    }

    /// <summary>Applies <paramref name="chosen"/> to a clone of <paramref name="prePassed"/>; one report per ConvTranspose, in graph order.</summary>
    private static (ModelProto Model, List<NodeReport> Reports, HashSet<string> Restored) Build(ModelProto prePassed, IReadOnlyList<Decision> all,
        IReadOnlyList<Decision> chosen, IReadOnlySet<int>? reverted, Action<ModelProto>? afterNode, LoweringEnvironment env)
    {
        var restored = new HashSet<string>(StringComparer.Ordinal);
        var model = prePassed.Clone();
        ModelIO.InheritSource(prePassed, model); // external weights stay external, read where the input's are
        var editor = new GraphEditor(model);
        var hints = ShapeHints.Infer(model);
        var apply = chosen.Select(d => d.Index).ToHashSet();
        // Node objects, taken before any rewrite shifts positions; a rewrite replaces only its own node (and fused activation).
        var targets = all.ToDictionary(d => d.Index, d => model.Graph.Node[d.Index]);
        var reports = new List<NodeReport>();
        foreach (var d in all)
        {
            var report = new NodeReport
            {
                Node = d.Description, Pattern = Ops.ConvTranspose.OpType, Rewritten = false,
                Candidates = d.Candidates, Choice = Unchanged, Cached = d.Cached,
                Reason = reverted is not null && reverted.Contains(d.Index)
                    ? "reverted: the whole model was slower with this node rewritten"
                    : d.Reason,
            };
            if (apply.Contains(d.Index))
            {
                report = ApplyChoice(editor, targets[d.Index], d, hints, env) ?? report with { Reason = $"{d.Choice} no longer matches in the model" };
                if (report.Rewritten && afterNode is not null)
                {
                    afterNode(model);
                    editor.Refresh();
                }
            }
            else if (d.Origin is not null)
            {
                // The user's pattern was fastest (or the whole model was slower with it replaced): keep it as it was.
                KeepOriginal.Restore(editor, targets[d.Index], d.Origin);
                restored.Add(d.Description);
                report = report with { Reason = report.Reason ?? $"the original {d.Origin.Ops} kept" };
            }
            reports.Add(report);
        }
        return (model, reports, restored);
    }

    /// <summary>
    /// One report per pattern: the pre-passes' reports merged with the lowerings'. A pattern put back as the user wrote it
    /// (<paramref name="restored"/>, by its ConvTranspose's description) is reported once, as not rewritten, with the timings.
    /// </summary>
    private static List<NodeReport> Compose(IReadOnlyList<NodeReport> prePassReports, IReadOnlyList<SourceRewrite> sources,
        IReadOnlyList<NodeReport> lowered, IReadOnlySet<string> restored)
    {
        var byNode = lowered.Where(l => restored.Contains(l.Node)).GroupBy(l => l.Node).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        NodeReport Kept(NodeReport source, NodeReport low) => source with
        {
            Rewritten = false, Lowering = null, MacsAfter = 0, Reason = low.Reason, Candidates = low.Candidates, Choice = low.Choice, Cached = low.Cached,
        };
        var result = new List<NodeReport>();
        var shown = new HashSet<string>(StringComparer.Ordinal);
        foreach (var r in prePassReports)
        {
            if (r.Rewritten && r.Produces is { } p && byNode.TryGetValue(p, out var low) && shown.Add(p)) result.Add(Kept(r, low));
            else result.Add(r);
        }
        var mine = sources.Where(s => s.ConvTransposeNode is { } c && byNode.ContainsKey(c)).ToList();
        foreach (var s in mine)
            result.Add(shown.Add(s.ConvTransposeNode!) ? Kept(s.Report, byNode[s.ConvTransposeNode!]) : s.Report with { Rewritten = false, Lowering = null, Reason = "the original pattern kept" });
        result.AddRange(ZeroInsertConvToConvTranspose.MergeReports(sources.Except(mine).ToList(), lowered.Where(l => !byNode.ContainsKey(l.Node)).ToList()));
        return result;
    }

    private static NodeReport? ApplyChoice(GraphEditor editor, NodeProto node, Decision d, IReadOnlyDictionary<string, long[]> hints, LoweringEnvironment env)
    {
        var common = new NodeReport
        {
            Node = d.Description, Pattern = Ops.ConvTranspose.OpType, Rewritten = true, Candidates = d.Candidates, Choice = d.Choice, Cached = d.Cached,
        };
        if (d.Choice == DerivedConvTranspose)
            return common with { Rewritten = false, Reason = $"the ConvTranspose derived from {d.Origin?.Ops ?? "the pattern"} was fastest" };
        if (Lowerings.ByName(d.Choice) is not { } lowering) return null;
        if (!ConvTransposeMatcher.TryMatch(editor.Index, node, out var site, out _, hints) || site is null || lowering.CanLower(site) is not null) return null;
        var done = lowering.Lower(site, editor, env);
        site.ReleaseWeights();
        return common with { Pattern = done.Pattern, Lowering = done.Description, MacsBefore = done.MacsBefore, MacsAfter = done.MacsAfter };
    }

    private static IReadOnlyList<TensorValue> WholeModelInputs(ModelProto model, IReadOnlyDictionary<string, long[]>? overrides)
    {
        var resolved = ShapeProbe.ResolveInputs(model, overrides);
        if (resolved.Missing.Count > 0)
            throw new ShapeProbeException($"input(s) {string.Join(", ", resolved.Missing)} need a shape (--shape)");
        using var so = new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
        if (OnnxDeconvSessionOptions.UsesPlugin(model)) so.RegisterOnnxDeconv();
        using var session = new InferenceSession(RunnableBytes(model), so);
        return InputGenerator.Generate(session, resolved.Shapes, AutoDecider.InputSeed);
    }

    /// <summary>Whole models with external data are timed only up to this size (model and data are held in memory to run).</summary>
    public const long WholeModelMaxExternalBytes = 512L << 20;

    /// <summary>
    /// The model as ONNX Runtime can run it from memory: external weights read in (relative to where the model came
    /// from). Refused over <see cref="WholeModelMaxExternalBytes"/>, where the per-node choices stand untimed as a whole.
    /// </summary>
    private static byte[] RunnableBytes(ModelProto model)
    {
        var external = ModelIO.AllTensors(model).Where(ExternalData.IsExternal).ToList();
        if (external.Count == 0) return ModelIO.Serialize(model);
        long total = external.Sum(t => ExternalData.ExpectedByteLength(t) ?? 0);
        if (total > WholeModelMaxExternalBytes)
            throw new VerificationInputException($"{total / (1024 * 1024)} MiB of external weights, over the {WholeModelMaxExternalBytes / (1024 * 1024)} MiB a whole-model timing may hold");
        var copy = model.Clone();
        foreach (var (t, c) in ModelIO.AllTensors(model).Zip(ModelIO.AllTensors(copy)))
            if (ExternalData.IsExternal(t)) ExternalData.SetInline(c, ModelIO.TensorBytes(model, t)); // on the clone, wherever the tensor sits (subgraphs too)
        return ModelIO.Serialize(copy);
    }

    internal static string Ms(double ms) => ms.ToString("0.000", CultureInfo.InvariantCulture);
}
