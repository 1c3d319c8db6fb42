using System.Globalization;
using System.Reflection;
using System.Security.Cryptography;
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
using OnnxDeconv.Kernels;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Pipeline;

/// <summary>
/// <see cref="Target.Auto"/>: per ConvTranspose, every applicable lowering is built on an isolated single-node model at
/// the node's real input shape, checked against the unchanged node, timed side by side, and the fastest kept (the node
/// stays unchanged unless a candidate wins by <see cref="WinMargin"/>). Then the original and the result are timed as
/// whole models; if the result is slower, node choices are undone, least gain first, down to the original model.
/// The lowerings themselves are the existing rewrites' Apply steps, on the isolated models and then on the real one.
/// </summary>
public static class AutoTuner
{
    public const string Unchanged = "unchanged";
    public const string PortableCombined = "portable-combined";
    public const string PortablePerPhase = "portable-perphase";
    public const string Plugin = "plugin";
    /// <summary>A ConvTranspose the pre-passes derived from a Resize+Conv or zero-insertion+Conv pattern (or a BN fold), kept as a ConvTranspose.</summary>
    public const string DerivedConvTranspose = "convtranspose";

    /// <summary>Nodes an original pattern may have (Resize+Conv, a zero-insertion chain + Pad + Conv, + BatchNormalization).</summary>
    private const int MaxPatternNodes = 24;

    /// <summary>A candidate must be this much faster than the unchanged node to replace it (timing noise is a few %).</summary>
    public const double WinMargin = 0.03;

    /// <summary>The result counts as slower than the original only beyond this fraction (noise between two timings).</summary>
    public const double WholeModelNoise = 0.03;

    private const int InputSeed = 1;

    /// <param name="Index">Position of the node in the pre-passed graph (names need not be unique in a broken model).</param>
    /// <param name="Origin">For a ConvTranspose the pre-passes derived: the user's nodes it replaced ("unchanged" keeps those).</param>
    private sealed record Decision(int Index, string Description, string Choice, IReadOnlyList<CandidateTiming> Candidates, bool Cached, string? Reason,
        OriginalPattern? Origin = null)
    {
        /// <summary>Milliseconds saved on the isolated node (0 when unchanged or not timed).</summary>
        public double Gain
        {
            get
            {
                double? baseMs = Candidates.FirstOrDefault(c => c.Label == Unchanged)?.MedianMs;
                double? mine = Candidates.FirstOrDefault(c => c.Label == Choice)?.MedianMs;
                return baseMs is { } b && mine is { } m ? b - m : 0;
            }
        }
    }

    /// <summary>The user's nodes computing a derived ConvTranspose's output from its input, in graph order, and the initializers they read.</summary>
    private sealed record OriginalPattern(IReadOnlyList<NodeProto> Nodes, IReadOnlyList<TensorProto> Initializers, long Opset)
    {
        public string Ops => string.Join("+", Nodes.Select(n => n.OpType));
    }

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

        var nodes = prePassed.Graph.Node.Where(ConvTransposeNode.Is).ToList();
        var shapes = InputShapes(prePassed, nodes, options.Shapes, out string? shapeProblem);
        var decisions = new List<Decision>();
        foreach (var node in nodes)
        {
            options.Progress?.Invoke($"node {decisions.Count + 1}/{nodes.Count}: {Attributes.Describe(node)}");
            decisions.Add(Decide(prePassed, node, prePassed.Graph.Node.IndexOf(node), FindOrigin(original, prePassed, node),
                node.Input.Count > 0 ? shapes.GetValueOrDefault(node.Input[0]) : null, shapeProblem, options, threads, timer, cache));
        }
        var chosen = decisions.Where(d => d.Choice != Unchanged).ToList();
        var (model, lowered, restored) = Build(prePassed, decisions, chosen, reverted: null, options.AfterNode, options.Spill);
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
                string key = ComparisonKey(originalBytes, resultBytes, threads);
                IReadOnlyList<double> times;
                bool cachedComparison = false;
                if (cache is not null && cache.TryGetComparison(key, out var seen) && seen is not null)
                {
                    times = [seen.OriginalMs, seen.ResultMs];
                    cachedComparison = true;
                }
                else
                {
                    options.Progress?.Invoke(revertedOrder.Count == 0 ? "whole model: original vs optimized" : $"whole model: original vs optimized with {revertedOrder.Count} choice(s) undone");
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
                (model, lowered, restored) = Build(prePassed, decisions, remaining, revertedSet, options.AfterNode, options.Spill);
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

    /// <summary>Applies <paramref name="chosen"/> to a clone of <paramref name="prePassed"/>; one report per ConvTranspose, in graph order.</summary>
    private static (ModelProto Model, List<NodeReport> Reports, HashSet<string> Restored) Build(ModelProto prePassed, IReadOnlyList<Decision> all,
        IReadOnlyList<Decision> chosen, IReadOnlySet<int>? reverted, Action<ModelProto>? afterNode, SpillFile? spill)
    {
        var restored = new HashSet<string>(StringComparer.Ordinal);
        var model = prePassed.Clone();
        ModelIO.InheritSource(prePassed, model); // external weights stay external, read where the input's are
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
                report = ApplyChoice(model, targets[d.Index], d, hints, spill) ?? report with { Reason = $"{d.Choice} no longer matches in the model" };
                if (report.Rewritten) afterNode?.Invoke(model);
            }
            else if (d.Origin is not null)
            {
                // The user's pattern was fastest (or the whole model was slower with it replaced): keep it as it was.
                Restore(model, targets[d.Index], d.Origin);
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

    private static NodeReport? ApplyChoice(ModelProto model, NodeProto node, Decision d, IReadOnlyDictionary<string, long[]> hints, SpillFile? spill)
    {
        var common = new NodeReport
        {
            Node = d.Description, Pattern = Ops.ConvTranspose.OpType, Rewritten = true, Candidates = d.Candidates, Choice = d.Choice, Cached = d.Cached,
        };
        if (d.Choice == Plugin)
            return ConvTransposeToPlugin.TryRewrite(model, node, out var pr, spill)
                ? pr with { Candidates = d.Candidates, Choice = d.Choice, Cached = d.Cached }
                : null;
        if (d.Choice == DerivedConvTranspose)
            return common with { Rewritten = false, Reason = $"the ConvTranspose derived from {d.Origin?.Ops ?? "the pattern"} was fastest" };
        var form = d.Choice == PortablePerPhase ? PhaseForm.PerPhase : PhaseForm.Combined;
        if (!ConvTransposeToPortable.TryMatch(new GraphIndex(model), node, form, out var match, out _, hints) || match is null) return null;
        var lowered = ConvTransposeToPortable.Apply(model, match, spill);
        return common with
        {
            Lowering = match.Note is null ? lowered.Description : $"{lowered.Description} ({match.Note})",
            MacsBefore = match.Plan.UsefulMacs,
            MacsAfter = lowered.Choice.Macs,
        };
    }

    private static Decision Decide(ModelProto model, NodeProto node, int position, OriginalPattern? origin, long[]? xShape, string? shapeProblem, OptimizeOptions options,
        int threads, ICandidateTimer timer, DecisionCache? cache)
    {
        string description = Attributes.Describe(node);
        // Without timing, a derived ConvTranspose stays as derived (the pre-pass's own exactness and cost rules chose it).
        Decision Keep(string reason, IReadOnlyList<CandidateTiming>? candidates = null) =>
            new(position, description, Unchanged, candidates ?? [], false, reason);

        var index = new GraphIndex(model);
        // Which lowerings apply at all (on the real graph: reasons as the other targets give them).
        bool portableOk = ConvTransposeToPortable.TryMatch(index, node, PhaseForm.Auto, out _, out var portableReason);
        string? pluginReason = "excluded (--portable-only)";
        bool pluginOk = !options.PortableOnly && ConvTransposeToPlugin.Match(index, node, out _, out pluginReason);
        if (!portableOk && !pluginOk)
            return Keep(options.PortableOnly ? portableReason ?? "not supported" : $"portable: {portableReason}; plugin: {pluginReason}");
        if (xShape is null)
            return Keep($"auto needs the input shape of '{node.Input[0]}' to time the candidates: {shapeProblem ?? "unknown"}");

        // The isolated node runs on random data at its real size: refuse sizes a run would not survive (hostile shapes).
        try
        {
            var wShape = ConvTransposeToPortable.ConstantValue(index, node.Input[1])?.Dims.ToArray();
            if (wShape is null) return Keep($"weights '{node.Input[1]}' are not a constant");
            var g = Geometry.ConvTransposeGeometry.Resolve(ConvTransposeNode.ReadAttributes(node), xShape, wShape);
            long outCount = g.OutputShape.Aggregate(1L, (p, d) => checked(p * d));
            long inCount = xShape.Aggregate(1L, (p, d) => checked(p * d));
            if (Math.Max(inCount, outCount) > InputGenerator.MaxRandomInputElements)
                return Keep($"too large to time: input [{string.Join(",", xShape)}], output [{string.Join(",", g.OutputShape)}] (over {InputGenerator.MaxRandomInputElements} elements)");
        }
        catch (Exception e) when (e is Geometry.GeometryException or AttributeException or OverflowException)
        {
            return Keep($"not timed: {e.Message}");
        }

        var isolated = Isolate(model, index, node, xShape, out var isolateProblem);
        if (isolated is null) return Keep(isolateProblem!);

        // Candidate models: the existing rewrites applied to the isolated node. For a derived ConvTranspose, "unchanged"
        // is the user's original pattern, and the ConvTranspose itself is one more candidate.
        var originalIsolated = origin is null ? null : IsolatePattern(model, node, origin, xShape);
        if (originalIsolated is null) origin = null;
        var models = originalIsolated is null
            ? new List<(string Label, ModelProto Model)> { (Unchanged, isolated) }
            : [(Unchanged, originalIsolated), (DerivedConvTranspose, isolated)];
        var notes = new List<CandidateTiming>();
        var seenForms = new HashSet<PhaseForm>();
        foreach (var (label, form) in new[] { (PortableCombined, PhaseForm.Combined), (PortablePerPhase, PhaseForm.PerPhase) })
        {
            var copy = isolated.Clone();
            var n = copy.Graph.Node[0];
            if (!ConvTransposeToPortable.TryMatch(new GraphIndex(copy), n, form, out var m, out var why) || m is null)
            {
                notes.Add(new CandidateTiming(label, null, $"not applicable: {why}"));
                continue;
            }
            if (!seenForms.Add(m.Choice.Form)) continue; // one phase: both forms are the same Conv
            ConvTransposeToPortable.Apply(copy, m);
            models.Add((label, copy));
        }
        if (options.PortableOnly) notes.Add(new CandidateTiming(Plugin, null, "excluded (--portable-only)"));
        else
        {
            var copy = isolated.Clone();
            if (ConvTransposeToPlugin.Match(new GraphIndex(copy), copy.Graph.Node[0], out var pm, out var why) && pm is not null)
            {
                ConvTransposeToPlugin.Apply(copy, pm);
                models.Add((Plugin, copy));
            }
            else notes.Add(new CandidateTiming(Plugin, null, $"not applicable: {why}"));
        }
        if (models.Count == 1) return Keep("no lowering applies at this shape", notes);

        var labels = models.Select(m => m.Label).ToList();
        string key = CacheKey(model, node, xShape, threads, labels) + (origin is null ? "" : $"|origin={origin.Ops}");
        string baselineName = origin is null ? "the unchanged ConvTranspose" : $"the original {origin.Ops}";
        if (cache is not null && cache.TryGet(key, out var hit) && hit is not null && labels.Contains(hit.Choice))
            return new Decision(position, description, hit.Choice, hit.Candidates, true,
                hit.Choice == Unchanged ? $"no candidate was {WinMargin * 100:0}% faster than {baselineName} (cached)" : null, origin);

        var xValue = RandomInput(node.Input[0], xShape, NodeElementType(index, node));
        var candidates = new List<TimedModel>();
        IReadOnlyList<TensorValue>? expected = null;
        foreach (var (label, m) in models)
        {
            var bytes = ModelIO.Serialize(m);
            bool plugin = label == Plugin;
            string? problem;
            IReadOnlyList<TensorValue>? got = null;
            try
            {
                using var s = OrtTimedSession.FromBytes(bytes, [xValue], new TimedSessionOptions
                {
                    IntraOpThreads = threads, Configure = plugin ? so => so.RegisterOnnxDeconv() : null,
                });
                got = s.RunAndRead();
                problem = null;
            }
            catch (OnnxRuntimeException e) { problem = $"ONNX Runtime refused it: {e.Message}"; }
            if (label == Unchanged)
            {
                if (problem is not null && origin is not null)
                    return Decide(model, node, position, null, xShape, shapeProblem, options, threads, timer, cache);
                if (problem is not null) return Keep($"the node alone does not run in ONNX Runtime: {problem}", notes);
                expected = got;
            }
            else if (problem is null) problem = Mismatch(expected!, got!);
            if (problem is not null) notes.Add(new CandidateTiming(label, null, problem));
            else candidates.Add(new TimedModel(label, bytes, [xValue], plugin));
        }
        if (candidates.Count == 1) return Keep("no candidate matched the unchanged node's output", notes);

        IReadOnlyList<double> medians;
        try { medians = timer.Time(description, candidates); }
        catch (OnnxRuntimeException e) { return Keep($"timing failed in ONNX Runtime: {e.Message}", notes); }
        var timings = candidates.Select((c, i) => new CandidateTiming(c.Label, medians[i])).Concat(notes)
            .OrderBy(c => labels.IndexOf(c.Label) is var i && i < 0 ? int.MaxValue : i).ToList();
        double baseline = medians[0];
        int best = Enumerable.Range(1, candidates.Count - 1).MinBy(i => medians[i]);
        string choice = medians[best] < baseline * (1 - WinMargin) ? candidates[best].Label : Unchanged;
        cache?.Put(key, new CachedDecision(choice, timings));
        return new Decision(position, description, choice, timings, false,
            choice == Unchanged ? $"no candidate was {WinMargin * 100:0}% faster than {baselineName} (best: {candidates[best].Label} {Ms(medians[best])} vs {Ms(baseline)} ms)" : null,
            origin);
    }

    private static string? Mismatch(IReadOnlyList<TensorValue> expected, IReadOnlyList<TensorValue> actual)
    {
        for (int i = 0; i < expected.Count; i++)
        {
            var c = OutputComparer.Compare(expected[i].Name, expected[i], i < actual.Count ? actual[i] : null, Tolerance.Default);
            if (!c.Passed) return $"output mismatch, not timed: {c.Describe()}";
        }
        return null;
    }

    /// <summary>The node alone: X at its real shape as the only input, weights and bias inlined as initializers, Y the output.</summary>
    private static ModelProto? Isolate(ModelProto model, GraphIndex index, NodeProto node, long[] xShape, out string? problem)
    {
        problem = null;
        var opset = index.Opset(Ops.DefaultDomain) ?? 0;
        var builder = new ModelBuilder("auto_candidate", opset, Math.Max(model.IrVersion, 4));
        builder.Input(node.Input[0], xShape, NodeElementType(index, node));
        for (int i = 1; i < node.Input.Count; i++)
        {
            if (node.Input[i].Length == 0) continue;
            var t = ConvTransposeToPortable.ConstantValue(index, node.Input[i]);
            if (t is null) { problem = $"'{node.Input[i]}' is not a constant"; return null; }
            // The isolated model runs from memory: an external weight (one node's) is read in, relative to the model's source.
            var copy = ModelIO.InlineCopy(model, t);
            copy.Name = node.Input[i];
            builder.Graph.Initializer.Add(copy);
        }
        builder.Graph.Node.Add(node.Clone());
        builder.Output(AddFusableActivation(builder, index, node), null);
        return builder.Build();
    }

    /// <summary>
    /// The activation the plugin lowering would fuse into the node (its sole consumer: Relu, LeakyRelu, Clip, Sigmoid,
    /// Tanh), added after it with its constant inputs, so every candidate is timed as it will run (the plugin with the
    /// activation in its epilogue, the others followed by it). Returns the isolated model's output.
    /// </summary>
    private static string AddFusableActivation(ModelBuilder builder, GraphIndex index, NodeProto node)
    {
        var (act, _) = ConvTransposeToPlugin.FusableActivation(index, node);
        if (act is null) return node.Output[0];
        var have = builder.Graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var input in act.Input.Skip(1).Where(i => i.Length > 0 && !have.Contains(i)))
        {
            // FusableActivation only accepts constant Clip bounds.
            var t = index.Constant(input)!.Clone();
            t.Name = input;
            builder.Graph.Initializer.Add(t);
            have.Add(input);
        }
        builder.Graph.Node.Add(act.Clone());
        return act.Output[0];
    }

    /// <summary>
    /// For a ConvTranspose the pre-passes made: the user's nodes between its input and output (walking back from the
    /// output in <paramref name="original"/> to its input and constants). Null for a ConvTranspose of the user's own, or a
    /// pattern that reads any other non-constant value, has nodes the pre-passed graph still has, or is not plain ONNX.
    /// </summary>
    private static OriginalPattern? FindOrigin(ModelProto original, ModelProto prePassed, NodeProto node)
    {
        if (node.Input.Count == 0 || node.Output.Count != 1) return null;
        string x = node.Input[0], y = node.Output[0];
        var producers = new Dictionary<string, NodeProto>(StringComparer.Ordinal);
        foreach (var n in original.Graph.Node)
            foreach (var o in n.Output.Where(o => o.Length > 0))
                producers.TryAdd(o, n);
        if (!producers.TryGetValue(y, out var last) || last.OpType == Ops.ConvTranspose.OpType && last.Domain.Length == 0) return null;
        var stillThere = prePassed.Graph.Node.Where(n => !ReferenceEquals(n, node)).SelectMany(n => n.Output).ToHashSet(StringComparer.Ordinal);
        var initializers = original.Graph.Initializer.GroupBy(t => t.Name).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var graphInputs = original.Graph.Input.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var visited = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        var needed = new Dictionary<string, TensorProto>(StringComparer.Ordinal);
        var stack = new Stack<string>([y]);
        while (stack.Count > 0)
        {
            string t = stack.Pop();
            if (t.Length == 0 || t == x || needed.ContainsKey(t)) continue;
            if (initializers.TryGetValue(t, out var init) && !(graphInputs.Contains(t) && original.IrVersion >= 4))
            {
                needed[t] = init;
                continue;
            }
            if (stillThere.Contains(t) || !producers.TryGetValue(t, out var p)) return null;
            if (!visited.Add(p)) continue;
            if (p.Domain.Length > 0 || p.Attribute.Any(a => a.G is not null || a.Graphs.Count > 0) || visited.Count > MaxPatternNodes) return null;
            foreach (var i in p.Input) stack.Push(i);
        }
        // Every value the pattern computes must stay inside it, except Y.
        var inside = visited.SelectMany(n => n.Output).Where(o => o != y).ToHashSet(StringComparer.Ordinal);
        bool leaks = original.Graph.Node.Where(n => !visited.Contains(n)).Any(n => n.Input.Any(inside.Contains))
            || original.Graph.Output.Any(o => inside.Contains(o.Name));
        if (leaks) return null;
        return new OriginalPattern(original.Graph.Node.Where(visited.Contains).ToList(), needed.Values.ToList(),
            new GraphIndex(original).Opset(Ops.DefaultDomain) ?? 0);
    }

    /// <summary>The original pattern alone, as <see cref="Isolate"/> does for the node: X at its real shape in, Y out.</summary>
    private static ModelProto? IsolatePattern(ModelProto model, NodeProto node, OriginalPattern origin, long[] xShape)
    {
        var builder = new ModelBuilder("auto_original", origin.Opset, Math.Max(model.IrVersion, 4));
        builder.Input(node.Input[0], xShape, NodeElementType(new GraphIndex(model), node));
        // Runs from memory: external weights are read in (the pre-passed model shares the original's source folder).
        foreach (var t in origin.Initializers) builder.Graph.Initializer.Add(ModelIO.InlineCopy(model, t));
        foreach (var n in origin.Nodes) builder.Graph.Node.Add(n.Clone());
        builder.Output(AddFusableActivation(builder, new GraphIndex(model), node), null);
        return builder.Build();
    }

    /// <summary>Puts the original pattern back in place of its derived ConvTranspose (and the initializers the pre-passes dropped).</summary>
    private static void Restore(ModelProto model, NodeProto derived, OriginalPattern origin)
    {
        int at = model.Graph.Node.IndexOf(derived);
        if (at < 0) return;
        model.Graph.Node.RemoveAt(at);
        foreach (var n in origin.Nodes.Reverse()) model.Graph.Node.Insert(at, n.Clone());
        var have = model.Graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var t in origin.Initializers.Where(t => !have.Contains(t.Name))) model.Graph.Initializer.Add(t.Clone());
    }

    private static TensorValue RandomInput(string name, long[] shape, Onnx.TensorProto.Types.DataType type)
    {
        var rng = new Random(InputSeed);
        var data = new float[Tensors.ElementCount(shape)];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() * 2 - 1);
        return HalfFloats.IsHalf(type) ? TensorValue.Rounded(name, type, shape, data) : TensorValue.Float(name, shape, data);
    }

    /// <summary>The node's element type (its weights'): float16 nodes are timed on float16 inputs.</summary>
    private static Onnx.TensorProto.Types.DataType NodeElementType(GraphIndex index, NodeProto node) =>
        node.Input.Count > 1 && ConvTransposeToPortable.ConstantValue(index, node.Input[1]) is { } w && HalfFloats.IsHalf((Onnx.TensorProto.Types.DataType)w.DataType)
            ? (Onnx.TensorProto.Types.DataType)w.DataType : Onnx.TensorProto.Types.DataType.Float;

    /// <summary>The concrete input shape of every node: declared when fully static (and no --shape given), else probed.</summary>
    private static Dictionary<string, long[]> InputShapes(ModelProto model, IReadOnlyList<NodeProto> nodes,
        IReadOnlyDictionary<string, long[]>? overrides, out string? problem)
    {
        problem = null;
        var index = new GraphIndex(model);
        var result = new Dictionary<string, long[]>(StringComparer.Ordinal);
        var toProbe = new List<string>();
        foreach (var x in nodes.Where(n => n.Input.Count > 0 && n.Input[0].Length > 0).Select(n => n.Input[0]).Distinct(StringComparer.Ordinal))
        {
            var s = index.Shape(x);
            if ((overrides is null || overrides.Count == 0) && s is not null && s.Length > 0 && s.All(d => d > 0)) result[x] = s;
            else toProbe.Add(x);
        }
        if (toProbe.Count == 0) return result;
        try
        {
            foreach (var (k, v) in ShapeProbe.Probe(model, toProbe, overrides).Shapes) result[k] = v;
        }
        catch (ShapeProbeException e) { problem = e.Message; }
        return result;
    }

    private static IReadOnlyList<TensorValue> WholeModelInputs(ModelProto model, IReadOnlyDictionary<string, long[]>? overrides)
    {
        var resolved = ShapeProbe.ResolveInputs(model, overrides);
        if (resolved.Missing.Count > 0)
            throw new ShapeProbeException($"input(s) {string.Join(", ", resolved.Missing)} need a shape (--shape)");
        using var so = new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
        if (OnnxDeconvSessionOptions.UsesPlugin(model)) so.RegisterOnnxDeconv();
        using var session = new InferenceSession(RunnableBytes(model), so);
        return InputGenerator.Generate(session, resolved.Shapes, InputSeed);
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

    /// <summary>Everything the decision depends on: the node's geometry, the machine's kernel ISA, threads, and the runtime and tool versions.</summary>
    /// <summary>The fused activation timed with the node (see <see cref="AddFusableActivation"/>), with its parameters.</summary>
    private static string ActivationKey(GraphIndex index, NodeProto node) =>
        ConvTransposeToPlugin.FusableActivation(index, node) is ({ } act, var ep) ? $"{act.OpType}({ep.Alpha},{ep.Min},{ep.Max})" : "none";

    private static string CacheKey(ModelProto model, NodeProto node, long[] xShape, int threads, IReadOnlyList<string> candidates)
    {
        var index = new GraphIndex(model);
        string Dims(string name) => ConvTransposeToPortable.ConstantValue(index, name) is { } t ? string.Join(",", t.Dims) : "?";
        var attrs = node.Attribute.OrderBy(a => a.Name, StringComparer.Ordinal).Select(a => $"{a.Name}={AttributeText(a)}");
        return string.Join("|",
            $"opset={index.Opset(Ops.DefaultDomain)}",
            "dtype=float",
            $"x=[{string.Join(",", xShape)}]",
            $"w=[{Dims(node.Input[1])}]",
            $"b={(node.Input.Count > 2 && node.Input[2].Length > 0 ? $"[{Dims(node.Input[2])}]" : "none")}",
            $"attrs={string.Join(";", attrs)}",
            $"activation={ActivationKey(index, node)}",
            $"candidates={string.Join(",", candidates)}",
            $"isa={KernelIsaSelector.Active}",
            $"threads={threads}",
            $"ort={OrtEnv.Instance().GetVersionString()}",
            $"tool={ToolVersion}");
    }

    /// <summary>The two models by content, and the setup they were timed on.</summary>
    private static string ComparisonKey(byte[] original, byte[] result, int threads) => string.Join("|",
        $"original={Convert.ToHexString(SHA256.HashData(original))}",
        $"result={Convert.ToHexString(SHA256.HashData(result))}",
        $"isa={KernelIsaSelector.Active}",
        $"threads={threads}",
        $"ort={OrtEnv.Instance().GetVersionString()}",
        $"tool={ToolVersion}");

    private static string AttributeText(AttributeProto a) => a.Type switch
    {
        AttributeProto.Types.AttributeType.Int => a.I.ToString(CultureInfo.InvariantCulture),
        AttributeProto.Types.AttributeType.Ints => string.Join(",", a.Ints),
        AttributeProto.Types.AttributeType.Float => a.F.ToString("R", CultureInfo.InvariantCulture),
        AttributeProto.Types.AttributeType.Floats => string.Join(",", a.Floats.Select(f => f.ToString("R", CultureInfo.InvariantCulture))),
        AttributeProto.Types.AttributeType.String => a.S.ToStringUtf8(),
        _ => a.ToString(),
    };

    private static readonly string ToolVersion =
        typeof(AutoTuner).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(AutoTuner).Assembly.GetName().Version?.ToString() ?? "unknown";

    private static string Ms(double ms) => ms.ToString("0.000", CultureInfo.InvariantCulture);
}
