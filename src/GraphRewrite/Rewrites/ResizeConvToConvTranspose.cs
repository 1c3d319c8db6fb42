using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Pipeline;
using C = OnnxDeconv.GraphRewrite.Ops.Conv;
using CT = OnnxDeconv.GraphRewrite.Ops.ConvTranspose;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Rewrites;

/// <summary>A Resize/Upsample(nearest ×s) → Conv pair and the equivalent ConvTranspose derived from it.</summary>
public sealed record ResizeConvMatch(
    ResizeConvPair Pair,
    long[] Strides,
    long[] KernelShape,
    long[] Pads,
    long Group,
    long[] WeightShape,
    float[] Weights,
    long MacsBefore,
    long MacsAfter,
    long[]? InputShape = null,
    long[]? OutputShape = null)
{
    public string Pattern => ResizeConvToConvTranspose.PatternName(Pair);
}

/// <summary>
/// Rewrites nearest integer upsampling followed by a stride-1 Conv into one ConvTranspose (DESIGN.md section 1,
/// "Resize(nearest) + Conv is a polyphase filter too"); the ConvTranspose lowerings then make it zero-free.
/// <code>
/// Before:  X -> Resize|Upsample(nearest, ×s) -> U -> Conv(W [Cout, Cin/g, K..], B, pads pb/pe, stride 1, dilation d) -> Y
/// After:   X -> ConvTranspose(W' [Cin, Cout/g, d(K-1)+s ..], B, strides s, pads d(K-1)-pb / d(K-1)-pe) -> Y
/// </code>
/// Why it is exact: u[j] = x[floor(j/s)], so output o reads x[i] through every tap k with floor((o - pb + d*k)/s) = i,
/// i.e. 0 &lt;= t - pb + d*k &lt; s with t = o - i*s: a condition on t alone, so the sum is a ConvTranspose with stride s.
/// With k' = t - pb + d(K-1) those taps are the k with k' in [d(K-1-k), d(K-1-k)+s-1], whose weights add up to W'[k'].
/// For d &lt;= s these windows tile [0, d(K-1)+s) without gaps; for d > s they leave zero taps and the ConvTranspose
/// would do more MACs than the Conv (each output reads K distinct inputs either way), so d > s is refused.
/// Per axis the window sum is separable, so the N-d kernel is the product of the per-axis windows.
/// </summary>
public static class ResizeConvToConvTranspose
{
    public static string PatternName(ResizeConvPair pair) =>
        pair.Resize.OpType == Ops.Upsample.OpType ? "Upsample+Conv" : "Resize+Conv";

    /// <summary>
    /// Rewrites every exact Resize/Upsample → Conv pair of the main graph in place; one report per pair, rewritten or
    /// with the reason it was left alone. <paramref name="hints"/> (optional) give shapes for the MAC columns and for
    /// the cost model that decides a pair whose Resize must stay for other readers (<see cref="SharedResizeCost"/>,
    /// for the lowering <paramref name="target"/> will apply next).
    /// </summary>
    /// <param name="afterNode">Called after each rewrite (e.g. to move its new weights out of memory).</param>
    public static IReadOnlyList<NodeReport> RewriteAll(ModelProto model, IReadOnlyDictionary<string, long[]>? hints = null,
        Target target = Target.ConvTranspose, Action<ModelProto>? afterNode = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var reports = new List<NodeReport>();
        IReadOnlyList<ResizeConvPair> pairs;
        var first = new GraphIndex(model);
        try { pairs = ResizeConvPair.FindAll(first, StaticShape(first)); }
        catch (AttributeException e)
        {
            // A malformed Resize/Conv attribute: nothing is rewritten; the model is reported, not crashed on.
            return [new NodeReport { Node = model.Graph.Name, Pattern = "Resize+Conv", Rewritten = false, Reason = e.Message }];
        }
        var kept = KeptReaders(first, pairs, hints ?? ShapeHints.Infer(model));
        foreach (var found in pairs)
        {
            var index = new GraphIndex(model); // earlier rewrites changed consumers
            string name = Attributes.Describe(found.Conv);
            // Re-inferred per pair: hints do not pass through a Resize, but do through the ConvTranspose that replaced it.
            if (!TryMatch(index, found, out var match, out var reason, hints ?? ShapeHints.Infer(model)) || match is null)
            {
                reports.Add(new NodeReport { Node = name, Pattern = PatternName(found), Nodes = SourceNodes(found), Rewritten = false, Reason = reason });
                continue;
            }
            string? decision = null;
            if (kept.GetValueOrDefault(found.Resize) is > 0 and var readers)
            {
                // The Resize stays for other readers whatever happens here: fuse only if the Conv's replacement is cheaper.
                var cost = SharedResizeCost.Of(match, target);
                if (cost is { FuseIsFaster: false })
                {
                    reports.Add(new NodeReport
                    {
                        Node = name, Pattern = PatternName(found), Nodes = SourceNodes(found), Rewritten = false,
                        Reason = $"{found.Resize.OpType} stays for {readers} other reader(s) and fusing would be slower: {cost.Describe()}",
                        MacsBefore = match.MacsBefore,
                    });
                    continue;
                }
                decision = cost is null
                    ? "fused although the Resize stays (shapes unknown: no cost estimate)"
                    : $"fused although the Resize stays, because it is faster: {cost.Describe()}";
            }
            string note = Apply(model, match);
            if (decision is not null) note = $"{note}; {decision}";
            var produced = model.Graph.Node.First(n => n.OpType == CT.OpType && n.Output.Count > 0 && n.Output[0] == found.Conv.Output[0]);
            afterNode?.Invoke(model);
            reports.Add(new NodeReport
            {
                Node = name,
                Pattern = match.Pattern,
                Nodes = SourceNodes(found),
                Produces = Attributes.Describe(produced),
                Rewritten = true,
                Lowering = $"ConvTranspose(k[{string.Join(",", match.KernelShape)}] s[{string.Join(",", match.Strides)}] "
                    + $"pads[{string.Join(",", match.Pads)}]{(match.Group != 1 ? $" group {match.Group}" : "")}) with window-summed kernel; {note}",
                MacsBefore = match.MacsBefore,
                MacsAfter = match.MacsAfter,
            });
        }
        return reports;
    }

    private static IReadOnlyList<string> SourceNodes(ResizeConvPair pair) => [Attributes.Describe(pair.Resize), Attributes.Describe(pair.Conv)];

    /// <summary>
    /// Per Resize, how many of its readers will still read the upsampled tensor after every fusable Conv is fused
    /// (other ops, refused Convs, a graph output): the Resize stays exactly when this is &gt; 0.
    /// </summary>
    private static Dictionary<NodeProto, int> KeptReaders(GraphIndex index, IReadOnlyList<ResizeConvPair> pairs,
        IReadOnlyDictionary<string, long[]> hints)
    {
        var result = new Dictionary<NodeProto, int>(ReferenceEqualityComparer.Instance);
        foreach (var group in pairs.GroupBy(p => p.Resize, ReferenceEqualityComparer.Instance))
        {
            var resize = (NodeProto)group.Key!;
            string u = resize.Output[0];
            // The common case, one reader: nothing stays if it fuses (and no cost question if it does not).
            if (index.Uses(u).Count == 1 && !index.IsGraphOutput(u)) { result[resize] = 0; continue; }
            int fusable = group.Count(p => TryMatch(index, p, out _, out _, hints));
            result[resize] = index.Uses(u).Count - fusable + (index.IsGraphOutput(u) ? 1 : 0);
        }
        return result;
    }

    /// <summary>Decides whether <paramref name="pair"/> can become a ConvTranspose; never throws: false and a reason instead.</summary>
    public static bool TryMatch(GraphIndex index, ResizeConvPair pair, out ResizeConvMatch? match, out string? reason,
        IReadOnlyDictionary<string, long[]>? hints = null)
    {
        match = null;
        try { return Match(index, pair, out match, out reason, hints); }
        catch (Exception e) when (e is AttributeException or InvalidDataException or GeometryException or OverflowException)
        {
            reason = e.Message;
            return false;
        }
    }

    private static bool Match(GraphIndex index, ResizeConvPair pair, out ResizeConvMatch? match, out string? reason,
        IReadOnlyDictionary<string, long[]>? hints)
    {
        match = null;
        var resize = pair.Resize;
        var conv = pair.Conv;
        string u = resize.Output[0];
        if (index.IsGraphOutput(u)) { reason = $"{resize.OpType} output '{u}' is a graph output"; return false; }
        if (!pair.IsIntegerNearestRepetition) { reason = pair.RepetitionNote; return false; }
        if (conv.Input.Count < 2 || conv.Output.Count != 1 || conv.Output[0].Length == 0)
        { reason = "Conv needs inputs X, W and one output"; return false; }

        var w = index.Constant(conv.Input[1]);
        if (w is null) { reason = $"Conv weight '{conv.Input[1]}' is not a constant"; return false; }
        if (!HalfFloats.IsFloatLike((DataType)w.DataType)) { reason = $"Conv weight '{conv.Input[1]}' is {(DataType)w.DataType}, only float32, float16 and bfloat16 are rewritten"; return false; }
        string? bias = conv.Input.Count > 2 && conv.Input[2].Length > 0 ? conv.Input[2] : null;
        if (bias is not null && index.Constant(bias) is null) { reason = $"Conv bias '{bias}' is not a constant"; return false; }

        long[] wShape = [.. w.Dims];
        int r = wShape.Length - 2;
        if (r < 1) { reason = $"Conv weight has rank {wShape.Length}; expected [Cout, Cin/group, k1..]"; return false; }
        var scales = pair.Scales!;
        if (scales.Length != r + 2) { reason = $"{scales.Length} resize scales for a rank-{r + 2} Conv"; return false; }
        long[] s = [.. scales.Skip(2).Select(v => (long)v)];
        long[] k = [.. wShape.Skip(2)];
        if (k.Any(v => v <= 0) || wShape[0] <= 0 || wShape[1] <= 0) { reason = $"Conv weight shape [{string.Join(",", wShape)}] has an empty dimension"; return false; }

        var kernelAttr = Attributes.GetInts(conv, C.KernelShape);
        if (kernelAttr is not null && !kernelAttr.SequenceEqual(k))
        { reason = $"Conv kernel_shape [{string.Join(",", kernelAttr)}] differs from the weight's [{string.Join(",", k)}]"; return false; }
        var strides = Attributes.GetInts(conv, C.Strides);
        if (strides is not null && strides.Any(v => v != 1))
        { reason = $"Conv strides [{string.Join(",", strides)}]: only stride 1 after an upsample is a transposed convolution"; return false; }
        long[] d = Attributes.GetInts(conv, C.Dilations) ?? [.. k.Select(_ => 1L)];
        if (d.Length != r || d.Any(v => v < 1))
        { reason = $"Conv dilations [{string.Join(",", d)}] are not {r} values >= 1"; return false; }
        for (int a = 0; a < r; a++)
            if (d[a] > s[a] && k[a] > 1)
            {
                reason = $"Conv dilation {d[a]} exceeds the upsample scale {s[a]} on spatial axis {a}: the derived ConvTranspose kernel "
                    + $"would hold zero taps and do more MACs than the Conv; only dilation <= scale is rewritten";
                return false;
            }
        long group = Attributes.GetInt(conv, C.Group) ?? 1;
        if (group <= 0 || wShape[0] % group != 0) { reason = $"Conv group {group} does not divide the {wShape[0]} output channels"; return false; }

        var autoPad = Attributes.GetString(conv, C.AutoPad);
        if (d.Any(v => v > 1) && autoPad is "SAME_UPPER" or "SAME_LOWER")
        {
            // ONNX Runtime refuses to run a dilated SAME Conv, so there is no reference to prove the rewrite against.
            reason = $"Conv auto_pad {autoPad} with dilations [{string.Join(",", d)}]: ONNX Runtime does not run it, so it is left alone";
            return false;
        }
        // The effective (dilated) kernel extent d(K-1)+1 plays the role of K everywhere below.
        long[] span = [.. k.Select((kk, a) => d[a] * (kk - 1) + 1)];
        var pads = ConvPads(conv, span, out reason);
        if (pads is null) return false;
        var ctPads = new long[2 * r];
        for (int a = 0; a < r; a++)
        {
            ctPads[a] = span[a] - 1 - pads[a];
            ctPads[r + a] = span[a] - 1 - pads[r + a];
            if (ctPads[a] < 0 || ctPads[r + a] < 0)
            {
                // Pads beyond K-1 make outputs that read only padding (bias alone): no ConvTranspose pads express that.
                reason = $"Conv pads [{string.Join(",", pads)}] exceed dilation*(kernel-1) on spatial axis {a}; the ConvTranspose would need negative pads";
                return false;
            }
        }

        long cout = wShape[0], cinPerGroup = wShape[1], coutPerGroup = cout / group;
        long[] ctKernel = [.. span.Select((kk, a) => kk + s[a] - 1)];
        long[] ctShape = [cinPerGroup * group, coutPerGroup, .. ctKernel];
        var weights = DeriveWeights(index.Floats(w), wShape, group, s, d);

        long before = 0, after = 0;
        var xShape = ShapeOf(index, resize.Input[0], hints);
        long[]? yShape = null;
        if (xShape is not null && xShape.Length == r + 2 && xShape[1] == cinPerGroup * group)
        {
            long outSpatial = 1;
            yShape = [xShape[0], cout, .. Enumerable.Range(0, r).Select(a => s[a] * xShape[2 + a] + pads[a] + pads[r + a] - span[a] + 1)];
            for (int a = 0; a < r; a++) outSpatial = checked(outSpatial * yShape[2 + a]);
            before = checked(xShape[0] * cout * cinPerGroup * k.Aggregate(1L, (p, v) => p * v) * outSpatial);
            var geometry = ConvTransposeGeometry.Resolve(
                new ConvTransposeAttributes { KernelShape = ctKernel, Strides = s, Pads = ctPads, Group = group }, xShape, ctShape);
            after = geometry.UsefulMacs;
        }

        match = new ResizeConvMatch(pair, s, ctKernel, ctPads, group, ctShape, weights, before, after,
            xShape is not null && yShape is not null ? xShape : null, yShape);
        reason = null;
        return true;
    }

    /// <summary>Replaces the Conv by the ConvTranspose; drops the Resize when nothing else reads it. Returns a note for the report.</summary>
    public static string Apply(ModelProto model, ResizeConvMatch match)
    {
        var graph = model.Graph;
        var resize = match.Pair.Resize;
        var conv = match.Pair.Conv;
        var editor = new GraphEditor(model);

        string weightName = editor.UniqueValueName($"{conv.Input[1]}_convtranspose");
        // The derived weights were computed for this match alone: the tensor takes the array (one copy of a large weight).
        // A float16/bfloat16 Conv keeps its type: the summed taps (computed in float32) are rounded once to it.
        var type = (DataType)(new GraphIndex(model).Constant(conv.Input[1])?.DataType ?? (int)DataType.Float);
        editor.AddInitializer(HalfFloats.IsHalf(type)
            ? HalfFloats.Tensor(weightName, type, match.WeightShape, match.Weights)
            : Tensors.FromFloatsOwned(weightName, match.WeightShape, match.Weights), keepIrConvention: true);

        var ct = new NodeProto
        {
            OpType = CT.OpType,
            Domain = Ops.DefaultDomain,
            Name = editor.UniqueNodeName(conv.Name.Length > 0 ? $"{conv.Name}_convtranspose" : CT.OpType),
        };
        ct.Input.Add(resize.Input[0]);
        ct.Input.Add(weightName);
        if (conv.Input.Count > 2 && conv.Input[2].Length > 0) ct.Input.Add(conv.Input[2]);
        ct.Output.Add(conv.Output[0]);
        ct.Attribute.Add(Attributes.Ints(CT.KernelShape, match.KernelShape));
        ct.Attribute.Add(Attributes.Ints(CT.Strides, match.Strides));
        ct.Attribute.Add(Attributes.Ints(CT.Pads, match.Pads));
        if (match.Group != 1) ct.Attribute.Add(Attributes.Int(CT.Group, match.Group));
        // Same position as the Conv: X is produced before the Resize, which precedes the Conv, so order stays topological.
        editor.ReplaceNode(conv, [ct]);
        editor.RemoveIfUnused(conv.Input[1]);
        var index = editor.Index;
        string u = resize.Output[0];
        int others = index.Uses(u).Count;
        if (others > 0 || index.IsGraphOutput(u))
            return $"{resize.OpType} kept for {others} other consumer(s)";
        editor.RemoveNode(resize);
        var vi = graph.ValueInfo.FirstOrDefault(v => v.Name == u);
        if (vi is not null) graph.ValueInfo.Remove(vi);
        foreach (var input in resize.Input.Skip(1)) editor.RemoveIfUnused(input);
        return $"{resize.OpType} removed";
    }

    /// <summary>
    /// ConvTranspose weight [Cin, Cout/g, d(K-1)+s ..] from Conv weight [Cout, Cin/g, K ..]: channels transposed within each
    /// group, and each Conv tap k added to every ConvTranspose tap k' in [d(K-1-k), d(K-1-k)+s-1] on each axis
    /// (<paramref name="d"/>: Conv dilations, all 1 when null).
    /// </summary>
    public static float[] DeriveWeights(float[] w, long[] wShape, long group, long[] s, long[]? d = null)
    {
        int r = wShape.Length - 2;
        long cout = wShape[0], cinPerGroup = wShape[1], coutPerGroup = cout / group;
        long[] k = [.. wShape.Skip(2)];
        d ??= [.. k.Select(_ => 1L)];
        long[] l = [.. k.Select((kk, a) => d[a] * (kk - 1) + s[a])];
        long kVol = k.Aggregate(1L, (p, v) => p * v), lVol = l.Aggregate(1L, (p, v) => p * v);
        var result = new float[checked(cinPerGroup * group * coutPerGroup * lVol)];
        var kIdx = new long[r];
        var off = new long[r];
        for (long tap = 0; tap < kVol; tap++)
        {
            long rem = tap;
            for (int a = r - 1; a >= 0; a--) { kIdx[a] = rem % k[a]; rem /= k[a]; }
            // Every k' offset combination in the s1 x s2 x .. window around this tap.
            long windowVol = s.Aggregate(1L, (p, v) => p * v);
            for (long wi = 0; wi < windowVol; wi++)
            {
                long wr = wi, lFlat = 0;
                for (int a = r - 1; a >= 0; a--) { off[a] = wr % s[a]; wr /= s[a]; }
                for (int a = 0; a < r; a++) lFlat = lFlat * l[a] + (d[a] * (k[a] - 1 - kIdx[a]) + off[a]);
                for (long co = 0; co < cout; co++)
                {
                    long g = co / coutPerGroup, coInGroup = co % coutPerGroup;
                    for (long ci = 0; ci < cinPerGroup; ci++)
                    {
                        float v = w[(co * cinPerGroup + ci) * kVol + tap];
                        result[((g * cinPerGroup + ci) * coutPerGroup + coInGroup) * lVol + lFlat] += v;
                    }
                }
            }
        }
        return result;
    }

    /// <summary>
    /// Conv pads [begins.., ends..] in effect, auto_pad included; <paramref name="k"/> is the dilated kernel extent
    /// d(K-1)+1, so at stride 1 SAME pads k-1 in total.
    /// </summary>
    private static long[]? ConvPads(NodeProto conv, long[] k, out string? reason)
    {
        reason = null;
        int r = k.Length;
        var autoPad = ConvTransposeAttributes.ParseAutoPad(Attributes.GetString(conv, C.AutoPad));
        var explicitPads = Attributes.GetInts(conv, C.Pads);
        switch (autoPad)
        {
            case AutoPad.NotSet:
                var pads = explicitPads ?? new long[2 * r];
                if (pads.Length != 2 * r) { reason = $"Conv pads has {pads.Length} values; {2 * r} expected"; return null; }
                if (pads.Any(p => p < 0)) { reason = $"Conv pads [{string.Join(",", pads)}] are negative"; return null; }
                return pads;
            case AutoPad.Valid:
                return new long[2 * r];
            case AutoPad.SameUpper:
            case AutoPad.SameLower:
                // Stride 1: output = input, total padding K-1; SAME_UPPER puts the odd extra at the end, SAME_LOWER at the begin.
                var same = new long[2 * r];
                for (int a = 0; a < r; a++)
                {
                    long total = k[a] - 1, small = total / 2, large = total - small;
                    (same[a], same[r + a]) = autoPad == AutoPad.SameUpper ? (small, large) : (large, small);
                }
                return same;
            default:
                reason = $"Conv auto_pad '{ConvTransposeAttributes.AutoPadName(autoPad)}' is not handled";
                return null;
        }
    }

    private static long[]? ShapeOf(GraphIndex index, string value, IReadOnlyDictionary<string, long[]>? hints)
    {
        if (hints is not null && hints.TryGetValue(value, out var h)) return h;
        var declared = index.Shape(value);
        if (declared is null || declared.Length < 3 || declared.Skip(1).Any(d => d <= 0)) return null;
        // A symbolic batch counts as 1: reported MACs are per image.
        return declared[0] > 0 ? declared : [1, .. declared.Skip(1)];
    }

    /// <summary>Declared, fully static shapes only: turning Resize sizes into scales must not rest on a guessed dimension.</summary>
    private static Func<string, long[]?> StaticShape(GraphIndex index) => v =>
        index.Shape(v) is { } s && s.All(d => d > 0) ? s : null;
}
