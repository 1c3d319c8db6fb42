using System.Globalization;
using System.Reflection;
using System.Security.Cryptography;
using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Lowering;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Timing;
using OnnxDeconv.GraphRewrite.Verification;
using OnnxDeconv.Kernels;
using static OnnxDeconv.GraphRewrite.Pipeline.AutoTuner;

namespace OnnxDeconv.GraphRewrite.Pipeline;

/// <param name="Index">Position of the node in the pre-passed graph (names need not be unique in a broken model).</param>
/// <param name="Origin">For a ConvTranspose the pre-passes derived: the user's nodes it replaced ("unchanged" keeps those).</param>
internal sealed record Decision(int Index, string Description, string Choice, IReadOnlyList<CandidateTiming> Candidates, bool Cached, string? Reason,
    SiteOrigin? Origin = null)
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

/// <summary>
/// One site's decision under <see cref="Target.Auto"/>: which lowerings can lower it at its real input shape (cheap
/// <see cref="ISiteLowering.CanLower"/>), then the decision cache, and only on a miss the candidates built on the node
/// isolated (weights read once, shared by every candidate), checked against the baseline and timed.
/// </summary>
internal sealed class AutoDecider(OptimizeOptions options, int threads, ICandidateTimer timer, DecisionCache? cache, IWeightSource weights)
{
    internal const int InputSeed = 1;

    public Decision Decide(ConvTransposeSite site, int position, long[]? xShape, string? shapeProblem)
    {
        string description = site.Description;
        var origin = site.Origin;
        // Without timing, a derived ConvTranspose stays as derived (the pre-pass's own exactness and cost rules chose it).
        Decision Keep(string reason, IReadOnlyList<CandidateTiming>? candidates = null) =>
            new(position, description, Unchanged, candidates ?? [], false, reason);

        // A QDQ site is timed as it runs (QdqAutoSite): uint8/int8 in and out, QLinearConv fusion on.
        bool qdq = site.Quantized is not null;
        var lowerings = Lowerings.AutoCandidates(site, options.PortableOnly).Where(l => l != Lowerings.Keep && l != Lowerings.ConvTranspose).ToList();
        var refusals = lowerings.Select(l => options.Disabled.Contains(l.Name) ? "disabled" : l.CanLower(site)).ToList();
        if (refusals.All(r => r is not null))
            return Keep(refusals.Distinct().Count() == 1 ? refusals[0]! : string.Join("; ", lowerings.Select((l, i) => $"{l.Name}: {refusals[i]}")));
        if (xShape is null)
            return Keep($"auto needs the input shape of '{site.Input}' to time the candidates: {shapeProblem ?? "unknown"}");
        var timed = ConvTransposeMatcher.AtShape(site, xShape);
        if (timed is null) return Keep($"not timed: input shape [{string.Join(",", xShape)}] does not fit the node");

        // The isolated node runs on random data at its real size: refuse sizes a run would not survive (hostile shapes).
        try
        {
            long outCount = timed.Geometry.OutputShape.Aggregate(1L, (p, d) => checked(p * d));
            long inCount = xShape.Aggregate(1L, (p, d) => checked(p * d));
            if (Math.Max(inCount, outCount) > InputGenerator.MaxRandomInputElements)
                return Keep($"too large to time: input [{string.Join(",", xShape)}], output [{string.Join(",", timed.Geometry.OutputShape)}] (over {InputGenerator.MaxRandomInputElements} elements)");
        }
        catch (OverflowException e) { return Keep($"not timed: {e.Message}"); }

        // Which candidates exist, decided on the site at its real shape: nothing built, no weight read.
        var notes = new List<CandidateTiming>();
        var applicable = new List<ISiteLowering>();
        foreach (var l in lowerings)
        {
            if (options.Disabled.Contains(l.Name)) { notes.Add(new CandidateTiming(l.Name, null, "disabled")); continue; }
            if (l.CanLower(timed) is { } why) { notes.Add(new CandidateTiming(l.Name, null, $"not applicable: {why}")); continue; }
            // One phase: both portable forms are the same Conv, timed once.
            if (l == Lowerings.PortablePerPhase && (qdq || PortableSiteLowering.Prepare(timed, PhaseForm.PerPhase).Choice.Form != PhaseForm.PerPhase)) continue;
            applicable.Add(l);
        }
        if (options.PortableOnly) notes.Add(new CandidateTiming(AutoTuner.Plugin, null, "excluded (--portable-only)"));
        if (applicable.Count == 0) return Keep("no lowering applies at this shape", notes);

        var labels = (origin is null ? new List<string> { Unchanged } : [Unchanged, DerivedConvTranspose]).Concat(applicable.Select(l => l.Name)).ToList();
        string key = CacheKey(timed, xShape, threads, labels) + (origin is null ? "" : $"|origin={origin.Ops}")
            + (qdq ? $"|{QdqAutoSite.CacheKeyPart(site)}" : "");
        string baselineName = origin is null ? "the unchanged ConvTranspose" : $"the original {origin.Ops}";
        if (cache is not null && cache.TryGet(key, out var hit) && hit is not null && labels.Contains(hit.Choice))
            return new Decision(position, description, hit.Choice, hit.Candidates, true,
                hit.Choice == Unchanged ? $"no candidate was {WinMargin * 100:0}% faster than {baselineName} (cached)" : null, origin);

        // A miss: build the candidates on the node isolated at its real shape, from the site's weights read once.
        var isolated = qdq ? QdqAutoSite.Isolate(site, xShape) : Isolate(site, xShape);
        var originalIsolated = origin is null ? null : IsolatePattern(site, origin, xShape);
        var models = originalIsolated is null
            ? new List<(string Label, ModelProto Model)> { (Unchanged, isolated) }
            : [(Unchanged, originalIsolated), (DerivedConvTranspose, isolated)];
        foreach (var l in applicable)
        {
            var copy = isolated.Clone();
            var editor = new GraphEditor(copy);
            if (!ConvTransposeMatcher.TryMatch(editor.Index, copy.Graph.Node.First(ConvTransposeMatcher.IsCandidate), out var candidate, out var why) || candidate is null)
            {
                notes.Add(new CandidateTiming(l.Name, null, $"not applicable: {why}"));
                continue;
            }
            if (!qdq) candidate.ShareWeights(site, weights); // a QDQ lowering reads the int8 values, not floats
            l.Lower(candidate, editor, LoweringEnvironment.Default with { Weights = weights });
            models.Add((l.Name, copy));
        }

        var xValue = qdq ? QdqAutoSite.RandomInput(site, xShape, InputSeed) : RandomInput(site.Input, xShape, site.ElementType);
        var candidates = new List<TimedModel>();
        IReadOnlyList<TensorValue>? expected = null;
        foreach (var (label, m) in models)
        {
            var bytes = ModelIO.Serialize(m);
            bool plugin = label == AutoTuner.Plugin;
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
                    return Decide(WithoutOrigin(site), position, xShape, shapeProblem);
                if (problem is not null) return Keep($"the node alone does not run in ONNX Runtime: {problem}", notes);
                expected = got;
            }
            else if (problem is null) problem = qdq ? QdqAutoSite.Mismatch(site, expected!, got!) : Mismatch(expected!, got!);
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
            choice == Unchanged ? $"no candidate was {WinMargin * 100:0}% faster than {baselineName} (best: {candidates[best].Label} {AutoTuner.Ms(medians[best])} vs {AutoTuner.Ms(baseline)} ms)" : null,
            origin);
    }


    /// <summary>The original pattern did not run alone: decide as for a ConvTranspose of the user's own.</summary>
    private static ConvTransposeSite WithoutOrigin(ConvTransposeSite s) => s.WithOrigin(null);

    private static string? Mismatch(IReadOnlyList<TensorValue> expected, IReadOnlyList<TensorValue> actual)
    {
        for (int i = 0; i < expected.Count; i++)
        {
            var c = OutputComparer.Compare(expected[i].Name, expected[i], i < actual.Count ? actual[i] : null, Tolerance.Default);
            if (!c.Passed) return $"output mismatch, not timed: {c.Describe()}";
        }
        return null;
    }


    /// <summary>
    /// The node alone: X at its real shape as the only input, weights and bias as initializers (from the values the
    /// site read, so an external weight is read once), Y (or the fusable activation's output) the output.
    /// </summary>
    private ModelProto Isolate(ConvTransposeSite site, long[] xShape)
    {
        var builder = new ModelBuilder("auto_candidate", site.Opset, Math.Max(site.Model.IrVersion, 4));
        builder.Input(site.Input, xShape, site.ElementType);
        // In the site's own type (float16 values were widened exactly, so storing them back is exact).
        builder.Graph.Initializer.Add(HalfFloats.Tensor(site.WeightName, site.ElementType, site.WeightTensor.Dims.ToArray(), site.Weights(weights)));
        if (site.BiasName is { } b) builder.Graph.Initializer.Add(HalfFloats.Tensor(b, site.ElementType, site.BiasTensor!.Dims.ToArray(), site.Bias(weights)));
        builder.Graph.Node.Add(site.Node.Clone());
        builder.Output(AddFusableActivation(builder, site), null);
        return builder.Build();
    }

    /// <summary>
    /// The activation the plugin lowering would fuse into the node (the site's: its sole consumer), added after it with
    /// its constant inputs, so every candidate is timed as it will run (the plugin with the activation in its epilogue,
    /// the others followed by it). Returns the isolated model's output.
    /// </summary>
    private static string AddFusableActivation(ModelBuilder builder, ConvTransposeSite site)
    {
        if (site.Activation is not { } act) return site.Output;
        var index = new GraphIndex(site.Model);
        var have = builder.Graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var input in act.Input.Skip(1).Where(i => i.Length > 0 && !have.Contains(i)))
        {
            // The matcher only fuses Clip with constant inline bounds.
            var t = index.ConstantWeight(input)!.Clone();
            t.Name = input;
            builder.Graph.Initializer.Add(t);
            have.Add(input);
        }
        builder.Graph.Node.Add(act.Clone());
        return act.Output[0];
    }

    /// <summary>The original pattern alone, as <see cref="Isolate"/> does for the node: X at its real shape in, Y out.</summary>
    private static ModelProto IsolatePattern(ConvTransposeSite site, SiteOrigin origin, long[] xShape)
    {
        var builder = new ModelBuilder("auto_original", origin.Opset, Math.Max(site.Model.IrVersion, 4));
        builder.Input(site.Input, xShape, site.ElementType);
        // Runs from memory: external weights are read in (the pre-passed model shares the original's source folder).
        foreach (var t in origin.Initializers) builder.Graph.Initializer.Add(ModelIO.InlineCopy(site.Model, t));
        foreach (var n in origin.Nodes) builder.Graph.Node.Add(n.Clone());
        builder.Output(AddFusableActivation(builder, site), null);
        return builder.Build();
    }

    /// <summary>Seeded uniform [-1, 1) input of the site's type: float16 sites are timed on float16 inputs.</summary>
    private static TensorValue RandomInput(string name, long[] shape, TensorProto.Types.DataType type)
    {
        var rng = new Random(InputSeed);
        var data = new float[Tensors.ElementCount(shape)];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() * 2 - 1);
        return HalfFloats.IsHalf(type) ? TensorValue.Rounded(name, type, shape, data) : TensorValue.Float(name, shape, data);
    }


    /// <summary>The concrete input shape of every node: declared when fully static (and no --shape given), else probed.</summary>
    internal static Dictionary<string, long[]> InputShapes(ModelProto model, IReadOnlyList<NodeProto> nodes,
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


    /// <summary>The fused activation timed with the node (see <see cref="AddFusableActivation"/>), with its parameters.</summary>
    private static string ActivationKey(ConvTransposeSite site) =>
        site.Activation is { } act ? $"{act.OpType}({site.Epilogue.Alpha},{site.Epilogue.Min},{site.Epilogue.Max})" : "none";

    /// <summary>Everything the decision depends on: the node's geometry, the machine's kernel ISA, threads, and the runtime and tool versions.</summary>
    private static string CacheKey(ConvTransposeSite site, long[] xShape, int threads, IReadOnlyList<string> candidates)
    {
        var attrs = site.Node.Attribute.OrderBy(a => a.Name, StringComparer.Ordinal).Select(a => $"{a.Name}={AttributeText(a)}");
        return string.Join("|",
            $"opset={site.Opset}",
            $"dtype={site.ElementType}",
            $"x=[{string.Join(",", xShape)}]",
            $"w=[{string.Join(",", site.WeightTensor.Dims)}]",
            $"b={(site.BiasTensor is { } b ? $"[{string.Join(",", b.Dims)}]" : "none")}",
            $"attrs={string.Join(";", attrs)}",
            $"activation={ActivationKey(site)}",
            $"candidates={string.Join(",", candidates)}",
            $"isa={KernelIsaSelector.Active}",
            $"threads={threads}",
            $"ort={OrtEnv.Instance().GetVersionString()}",
            $"tool={ToolVersion}");
    }

    /// <summary>The two models by content, and the setup they were timed on.</summary>
    internal static string ComparisonKey(byte[] original, byte[] result, int threads) => string.Join("|",
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


}
