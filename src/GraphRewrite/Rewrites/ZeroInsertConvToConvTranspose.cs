using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Pipeline;

namespace OnnxDeconv.GraphRewrite.Rewrites;

/// <summary>The ConvTranspose equivalent of a zero-insertion + Conv pattern: attributes and flipped, transposed weights.</summary>
public sealed record DerivedConvTranspose(ConvTransposeAttributes Attributes, long[] WeightShape, float[] Weights, string Note);

/// <summary>
/// A rewrite that ran before the ConvTranspose lowerings and the ConvTranspose node it produced or changed
/// (Attributes.Describe of it, as the lowering reports name it); null when nothing was produced.
/// </summary>
public sealed record SourceRewrite(NodeReport Report, string? ConvTransposeNode);

/// <summary>
/// Replaces zero insertion + Conv by one ConvTranspose that the ConvTranspose lowerings (portable, plugin) then handle.
/// <code>
/// Before:  x -> [interleave with zeros, stride s] -> [Pad] -> Conv(w, pads, group, [b]) -> y
/// After:   x -> ConvTranspose(W', strides s, pads, [output_padding], group, [b]) -> y
/// </code>
/// Per axis, with P / R the total zero padding before / after the standard stuffed length s*I (each pixel then s-1
/// zeros): y[o] = sum_k u[o-P+k] w[k] keeps the taps with o-P+k = i*s, which is ConvTranspose with
/// W'[k'] = w[K-1-k'], begin pad K-1-P and end pad K-s-R (both output lengths are s*I+P+R-K+1). A negative end pad
/// up to s-1 becomes output_padding; beyond that, or a negative begin pad, the kernel is extended with zero taps (exact:
/// those taps only ever meet positions the Conv read as padding).
/// </summary>
public static class ZeroInsertConvToConvTranspose
{
    public const string PatternName = "ZeroInsertion+Conv";

    /// <summary>The ConvTranspose (attributes, weights [Cin, Cout/group, k'...]) equal to the matched pattern.</summary>
    public static DerivedConvTranspose Derive(ZeroInsertionMatch m)
    {
        int r = m.Kernel.Length;
        long[] s = m.Strides, k = m.Kernel;
        var front = new long[r];
        var back = new long[r];
        var pads = new long[2 * r];
        var outPad = new long[r];
        for (int j = 0; j < r; j++)
        {
            long begin = k[j] - 1 - m.PadBegin[j];
            front[j] = Math.Max(0, -begin);
            pads[j] = begin + front[j];
            long end = k[j] - s[j] - m.PadEnd[j];
            if (end >= 0) pads[r + j] = end;
            else
            {
                outPad[j] = Math.Min(-end, s[j] - 1);
                back[j] = -end - outPad[j];
            }
        }
        var k2 = new long[r];
        for (int j = 0; j < r; j++) k2[j] = k[j] + front[j] + back[j];

        long g = m.Group, cog = m.OutChannels / g, cig = m.InChannels / g;
        long taps = k.Aggregate(1L, (a, b) => a * b), taps2 = k2.Aggregate(1L, (a, b) => a * b);
        var wt = new float[checked(m.InChannels * cog * taps2)];
        var idx = new long[r];
        for (long gi = 0; gi < g; gi++)
        for (long oc = 0; oc < cog; oc++)
        for (long ic = 0; ic < cig; ic++)
        {
            long src = ((gi * cog + oc) * cig + ic) * taps;
            long dst = ((gi * cig + ic) * cog + oc) * taps2;
            for (long t = 0; t < taps; t++)
            {
                // Source tap t -> per-axis index; destination index = front + (K-1-index) (the flip).
                long rem = t;
                for (int j = r - 1; j >= 0; j--) { idx[j] = rem % k[j]; rem /= k[j]; }
                long d = 0;
                for (int j = 0; j < r; j++) d = d * k2[j] + front[j] + (k[j] - 1 - idx[j]);
                wt[dst + d] = m.ConvWeights[src + t];
            }
        }
        var attrs = new ConvTransposeAttributes
        {
            KernelShape = k2,
            Strides = s,
            Pads = pads,
            OutputPadding = outPad.Any(v => v != 0) ? outPad : null,
            Group = g,
        };
        string note = front.Concat(back).Any(v => v != 0)
            ? $"kernel extended by zero taps [{string.Join(",", front)}] before / [{string.Join(",", back)}] after"
            : "flipped kernel";
        return new DerivedConvTranspose(attrs, [m.InChannels, cog, .. k2], wt, note);
    }

    /// <summary>Rewrites every matching Conv of the main graph in place; reports the patterns found (rewritten or not).</summary>
    /// <param name="afterNode">Called after each rewrite (e.g. to move its new weights out of memory).</param>
    public static IReadOnlyList<SourceRewrite> RewriteAll(ModelProto model, Action<ModelProto>? afterNode = null)
    {
        var reports = new List<SourceRewrite>();
        GraphIndex? index = null;
        Func<string, long[]?>? known = null;
        foreach (var conv in model.Graph.Node.Where(ZeroInsertion.IsConv).ToList())
        {
            if (index is null)
            {
                index = new GraphIndex(model); // rebuilt only after a rewrite changed the graph
                known = StaticShapes(model, index);
            }
            if (!model.Graph.Node.Contains(conv)) continue;
            if (!ZeroInsertion.TryMatch(index, conv, out var match, out var reason, known) || match is null)
            {
                if (ZeroInsertion.LooksLikeZeroInsertion(index, conv))
                    reports.Add(new SourceRewrite(new NodeReport { Node = Attributes.Describe(conv), Pattern = PatternName, Nodes = [Attributes.Describe(conv)], Rewritten = false, Reason = reason }, null));
                continue;
            }
            reports.Add(Apply(model, match));
            afterNode?.Invoke(model);
            index = null;
        }
        return reports;
    }

    /// <summary>
    /// Shapes propagated from the graph inputs when every input is fully static: then the propagation is exact (no
    /// symbolic dim stood in for), so a zero-insertion probe may run on a value without value_info. Exporters that
    /// hard-code the batch rarely write value_info; an earlier layer rewritten to ConvTranspose lets the next one
    /// propagate.
    /// </summary>
    private static Func<string, long[]?>? StaticShapes(ModelProto model, GraphIndex index)
    {
        var inputs = model.Graph.Input.Where(i => index.Initializer(i.Name) is null).ToList();
        if (inputs.Any(i => index.Shape(i.Name) is not { } s || s.Any(d => d <= 0))) return null;
        Dictionary<string, long[]>? hints = null;
        return name => (hints ??= ShapeHints.Infer(model)).GetValueOrDefault(name);
    }

    /// <summary>Replaces the matched pattern by the derived ConvTranspose (named like the Conv); drops what became unused.</summary>
    public static SourceRewrite Apply(ModelProto model, ZeroInsertionMatch match)
    {
        var derived = Derive(match);
        // For the report, in graph order (the matcher collects them walking back from the Conv).
        string[] sourceNodes = [.. match.Nodes.OrderBy(n => model.Graph.Node.IndexOf(n)).Select(Attributes.Describe), Attributes.Describe(match.Conv)];
        var editor = new GraphEditor(model);
        var conv = match.Conv;
        string wName = editor.UniqueName($"{match.WeightName}_convtranspose");
        // Derived just now for this rewrite: the tensor takes the array (one copy of a large weight).
        editor.AddInitializer(Tensors.FromFloatsOwned(wName, derived.WeightShape, derived.Weights), keepIrConvention: true);
        var node = new NodeProto
        {
            OpType = Ops.ConvTranspose.OpType,
            Domain = Ops.DefaultDomain,
            Name = string.IsNullOrEmpty(conv.Name) ? editor.UniqueName($"{Ops.ConvTranspose.OpType}_{conv.Output[0]}") : conv.Name,
        };
        node.Input.Add(match.Input);
        node.Input.Add(wName);
        if (match.BiasName is not null) node.Input.Add(match.BiasName);
        node.Output.Add(conv.Output[0]);
        node.Attribute.AddRange(ConvTransposeNode.ToAttributes(derived.Attributes));

        string original = Attributes.Describe(conv);
        editor.ReplaceNode(conv, [node]);
        var dropped = new List<string> { match.WeightName };
        foreach (var n in match.Nodes)
        {
            editor.RemoveNode(n, allowDanglingUses: true); // the chain goes as a whole
            dropped.AddRange(n.Input.Skip(1));
            foreach (var o in n.Output)
                foreach (var vi in model.Graph.ValueInfo.Where(v => v.Name == o).ToList()) model.Graph.ValueInfo.Remove(vi);
        }
        // Zero constants may feed a Concat as input 0 too; the data input x is never a constant here.
        foreach (var n in match.Nodes) dropped.AddRange(n.Input.Take(1).Where(i => i != match.Input));
        foreach (var v in dropped.Distinct()) editor.RemoveIfUnused(v);

        var a = derived.Attributes;
        var report = new NodeReport
        {
            Node = original,
            Pattern = PatternName,
            Nodes = sourceNodes,
            Rewritten = true,
            Lowering = $"{match.Style} -> ConvTranspose(strides [{string.Join(",", a.Strides!)}], pads [{string.Join(",", a.Pads!)}]"
                       + (a.OutputPadding is null ? "" : $", output_padding [{string.Join(",", a.OutputPadding)}]") + $", {derived.Note})",
            MacsBefore = match.ConvMacs,
            MacsAfter = ConvTransposeMacs(match, derived),
        };
        return new SourceRewrite(report, Attributes.Describe(node));
    }

    /// <summary>
    /// MACs of the derived ConvTranspose on <paramref name="match"/>'s input (0 when a dim is dynamic): a plain
    /// ConvTranspose does every tap once per input pixel (zero taps of an extended kernel included).
    /// </summary>
    public static long ConvTransposeMacs(ZeroInsertionMatch match, DerivedConvTranspose derived) =>
        match.InputShape.All(d => d > 0)
            ? checked(match.InputShape[0] * match.InChannels * (match.OutChannels / match.Group)
                      * derived.Attributes.KernelShape!.Aggregate(1L, (p, q) => p * q) * match.InputShape.Skip(2).Aggregate(1L, (p, q) => p * q))
            : 0;

    /// <summary>
    /// Folds the source rewrites' reports into the ConvTranspose lowerings' reports: one line per original pattern,
    /// naming the whole chain (e.g. ZeroInsertion+Conv+BatchNormalization+Relu) with the MACs before the first rewrite.
    /// Source reports no lowering report names (refusals, or no lowering ran) are listed as they are.
    /// </summary>
    public static IReadOnlyList<NodeReport> MergeReports(IReadOnlyList<SourceRewrite> sources, IReadOnlyList<NodeReport> lowered)
    {
        var result = new List<NodeReport>();
        var consumed = new HashSet<SourceRewrite>(ReferenceEqualityComparer.Instance);
        foreach (var r in lowered)
        {
            var matched = sources.Where(s => s.ConvTransposeNode is not null && s.ConvTransposeNode == r.Node).ToList();
            consumed.UnionWith(matched);
            var mine = matched.Select(s => s.Report).ToList();
            if (mine.Count == 0) { result.Add(r); continue; }
            var head = mine[0];
            string pattern = head.Pattern;
            foreach (var extra in mine.Skip(1)) pattern += extra.Pattern[extra.Pattern.IndexOf('+')..];
            // The lowering's own pattern may add a fused activation ("ConvTranspose+Relu").
            if (r.Pattern.StartsWith(Ops.ConvTranspose.OpType + "+", StringComparison.Ordinal))
                pattern += r.Pattern[Ops.ConvTranspose.OpType.Length..];
            string steps = string.Join("; ", mine.Select(m => m.Lowering));
            result.Add(new NodeReport
            {
                Node = head.Node,
                Pattern = pattern,
                // Later steps name the ConvTranspose the first one produced; only original nodes are listed.
                Nodes = [.. mine.SelectMany((m, i) => i == 0 ? m.Nodes ?? [m.Node] : (m.Nodes ?? []).Where(n => n != r.Node)).Distinct()],
                Rewritten = true,
                Lowering = r.Rewritten ? $"{steps}; {r.Lowering}" : $"{steps}; ConvTranspose kept ({r.Reason})",
                MacsBefore = head.MacsBefore > 0 ? head.MacsBefore : r.MacsBefore,
                MacsAfter = r.Rewritten ? r.MacsAfter : r.MacsBefore,
                Candidates = r.Candidates,
                Choice = r.Choice,
                Cached = r.Cached,
            });
        }
        // Refusals, and rewrites whose ConvTranspose was not lowered further (Target.ConvTranspose), stand alone.
        result.InsertRange(0, sources.Where(s => !consumed.Contains(s)).Select(s => s.Report));
        return result;
    }
}
