using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.Plan;

namespace OnnxDeconv.GraphRewrite.Lowering;

/// <summary>How the phases become Convs.</summary>
public enum PhaseForm
{
    /// <summary>Pick by zero-tap waste: per-phase Convs when one Conv would waste more than <see cref="PortableLowering.MaxCombinedWaste"/>.</summary>
    Auto,
    /// <summary>One Conv with Cout*prod(s) output channels; phases with fewer taps get zero taps.</summary>
    Combined,
    /// <summary>One Conv per phase combination, each with its own kernel, then Concat.</summary>
    PerPhase,
}

/// <summary>How the phase outputs are interleaved into the full-resolution output.</summary>
public enum InterleaveForm { None, DepthToSpaceCrd, DepthToSpaceDcr, ReshapeTranspose }

/// <summary>Where and how to lower: value names, the model's default-domain opset and what is known about the input.</summary>
public sealed record LoweringRequest
{
    public required string Input { get; init; }
    public required string Output { get; init; }
    /// <summary>Returns a graph-unique value/node name starting with the given stem.</summary>
    public required Func<string, string> UniqueName { get; init; }
    public required long Opset { get; init; }
    /// <summary>Every spatial dim of the input is a known constant (the Reshape/Transpose interleave then uses constant shapes).</summary>
    public required bool StaticSpatial { get; init; }
    public PhaseForm Form { get; init; } = PhaseForm.Auto;
    /// <summary>
    /// The node's element type. FLOAT16/BFLOAT16 interleave with Reshape/Transpose (ONNX Runtime's CPU has them for
    /// half types, DepthToSpace it does not); the caller narrows the float32 initializers (<see cref="HalfInitializers"/>).
    /// </summary>
    public TensorProto.Types.DataType ElementType { get; init; } = TensorProto.Types.DataType.Float;
    /// <summary>Where large rearranged weights are written slice by slice (never held whole); null = built in memory.</summary>
    public IWeightSink? Sink { get; init; }
}

/// <summary>The decision, made without touching weights (cheap, for matching).</summary>
public sealed record LoweringChoice(PhaseForm Form, InterleaveForm Interleave, bool PhaseMajorChannels, long Macs, double CombinedTapWaste);

/// <summary>Nodes and initializers replacing one transposed convolution, in topological order.</summary>
public sealed record LoweredNodes(IReadOnlyList<NodeProto> Nodes, IReadOnlyList<TensorProto> Initializers, LoweringChoice Choice, string Description);

/// <summary>The lowering cannot produce a valid form for this node in this model; the message says why.</summary>
public sealed class LoweringException(string message) : Exception(message);

/// <summary>
/// Lowers a <see cref="TransposedConvPlan"/> to standard ONNX ops, zero-free: polyphase Conv(s) on the original input,
/// interleave (DepthToSpace in 2D with equal strides, Reshape/Transpose/Reshape otherwise), Slice for the crop.
/// Weights are rearranged here, offline, into new initializers.
/// </summary>
public static class PortableLowering
{
    /// <summary>Zero-tap share above which the Auto form runs phases as separate Convs (more nodes, fewer MACs).</summary>
    public const double MaxCombinedWaste = 0.25;

    /// <summary>Decides form and interleave; throws <see cref="LoweringException"/> when no valid form exists at this opset/shape knowledge.</summary>
    public static LoweringChoice Choose(TransposedConvPlan plan, LoweringRequest request)
    {
        long kernelTaps = plan.Axes.Aggregate(1L, (p, a) => p * a.Geometry.Kernel);
        long combinedTaps = plan.PhaseCount * plan.Axes.Aggregate(1L, (p, a) => p * a.CombinedLength);
        double waste = 1.0 - (double)kernelTaps / combinedTaps;
        var form = request.Form;
        if (form == PhaseForm.Auto)
            form = waste > MaxCombinedWaste && plan.PerPhaseMacs < plan.CombinedMacs ? PhaseForm.PerPhase : PhaseForm.Combined;
        if (plan.PhaseCount == 1) form = PhaseForm.Combined; // one phase: both forms are the same single Conv

        var interleave = InterleaveForm.None;
        bool phaseMajor = form == PhaseForm.PerPhase; // Concat of per-phase outputs is phase-major by construction
        if (plan.PhaseCount > 1)
        {
            bool d2s = plan.Rank == 2 && plan.Axes[0].Stride == plan.Axes[1].Stride && !HalfFloats.IsHalf(request.ElementType);
            if (d2s && form == PhaseForm.PerPhase)
                interleave = InterleaveForm.DepthToSpaceDcr;
            else if (d2s && request.Opset >= 11)
                interleave = InterleaveForm.DepthToSpaceCrd;
            else if (d2s && plan.Group == 1)
            {
                // DepthToSpace before opset 11 only has DCR: order the Conv's channels phase-major instead.
                interleave = InterleaveForm.DepthToSpaceDcr;
                phaseMajor = true;
            }
            else
            {
                if (request.Opset < 5)
                    throw new LoweringException($"opset {request.Opset} < 5: Reshape takes its shape as an attribute there; not supported");
                if (!request.StaticSpatial && plan.Rank > 1 && request.Opset < 6)
                    throw new LoweringException($"opset {request.Opset} < 6 with dynamic spatial dims: computing the interleave shapes needs Mul on int64 (opset 6)");
                interleave = InterleaveForm.ReshapeTranspose;
            }
        }
        long macs = form == PhaseForm.PerPhase ? plan.PerPhaseMacs : plan.CombinedMacs;
        return new LoweringChoice(form, interleave, phaseMajor, macs, waste);
    }

    /// <summary>
    /// Builds the nodes. <paramref name="weights"/> is ONNX ConvTranspose layout [Cin, Cout/group, K...];
    /// <paramref name="bias"/> has Cout values or is null.
    /// </summary>
    public static LoweredNodes Lower(TransposedConvPlan plan, ReadOnlyMemory<float> weights, ReadOnlySpan<float> bias, LoweringRequest request)
    {
        var choice = Choose(plan, request);
        var g = plan.Geometry;
        if (weights.Length != Tensors.ElementCount(g.WeightShape))
            throw new ArgumentException($"weights have {weights.Length} values; shape [{string.Join(",", g.WeightShape)}] needs {Tensors.ElementCount(g.WeightShape)}");
        if (plan.HasBias != (bias.Length > 0) || (bias.Length > 0 && bias.Length != plan.OutChannels))
            throw new ArgumentException($"bias has {bias.Length} values; plan expects {(plan.HasBias ? plan.OutChannels : 0)}");

        var nodes = new List<NodeProto>();
        var inits = new List<TensorProto>();
        bool needsInterleave = choice.Interleave != InterleaveForm.None;
        bool needsSlice = plan.Axes.Any(a => a.CropBegin != 0 || a.CropEnd != 0);
        string Value(string stem, bool last) => last ? request.Output : request.UniqueName(stem);

        string phasesOut;
        string convDesc;
        if (choice.Form == PhaseForm.Combined)
        {
            phasesOut = Value("polyphase_conv", !needsInterleave && !needsSlice);
            string wName = request.UniqueName("polyphase_W");
            inits.Add(CombinedWeights(plan, weights, choice.PhaseMajorChannels, wName, request.Sink));
            var b = CombinedBias(plan, bias, choice.PhaseMajorChannels);
            var inputs = new List<string> { request.Input, wName };
            if (b is not null)
            {
                string bName = request.UniqueName("polyphase_B");
                inits.Add(Tensors.FromFloats(bName, [b.Length], b));
                inputs.Add(bName);
            }
            nodes.Add(ConvNode(request, inputs, phasesOut, plan.Group,
                plan.Axes.Select(a => a.CombinedLength), plan.Axes.Select(a => a.CombinedDilation),
                plan.Axes.Select(a => a.CombinedPadBegin), plan.Axes.Select(a => a.CombinedPadEnd)));
            convDesc = $"Conv({plan.OutChannels * plan.PhaseCount}ch, k{Dims(plan.Axes.Select(a => a.CombinedLength))}"
                + (plan.Axes.Any(a => a.CombinedDilation != 1) ? $", dil{Dims(plan.Axes.Select(a => a.CombinedDilation))}" : "") + ")";
            if (plan.PhaseCount > 1)
                convDesc = $"polyphase {convDesc}" + (choice.CombinedTapWaste > 0 ? $" with {choice.CombinedTapWaste:P0} zero taps" : "");
        }
        else
        {
            string? bName = null;
            if (bias.Length > 0)
            {
                bName = request.UniqueName("phase_B");
                inits.Add(Tensors.FromFloats(bName, [bias.Length], bias));
            }
            var outs = new List<string>();
            var kernels = new List<string>();
            int ph = 0;
            foreach (var combo in plan.PhaseCombinations())
            {
                string wName = request.UniqueName($"phase{ph}_W");
                long[] lens = combo.Select(p => p.Length).ToArray();
                inits.Add(PhaseWeights(plan, weights, combo, wName, request.Sink));
                var inputs = new List<string> { request.Input, wName };
                if (bName is not null) inputs.Add(bName);
                string o = request.UniqueName($"phase{ph}_conv");
                nodes.Add(ConvNode(request, inputs, o, plan.Group, lens, combo.Select(p => p.Dilation),
                    combo.Select((p, i) => p.ConvPadBegin(plan.Axes[i])), combo.Select((p, i) => p.ConvPadEnd(plan.Axes[i]))));
                outs.Add(o);
                kernels.Add(Dims(lens));
                ph++;
            }
            phasesOut = request.UniqueName("phases_concat");
            var concat = NewNode(request, Ops.Concat.OpType, outs, phasesOut);
            concat.Attribute.Add(Attributes.Int(Ops.Concat.Axis, 1));
            nodes.Add(concat);
            convDesc = $"{plan.PhaseCount} phase Convs (k {string.Join(" ", kernels)})+Concat (one Conv would have {choice.CombinedTapWaste:P0} zero taps)";
        }

        string current = phasesOut;
        string interleaveDesc = "";
        if (needsInterleave)
        {
            string o = Value("interleaved", !needsSlice);
            if (choice.Interleave is InterleaveForm.DepthToSpaceCrd or InterleaveForm.DepthToSpaceDcr)
            {
                var d2s = NewNode(request, Ops.DepthToSpace.OpType, [current], o);
                d2s.Attribute.Add(Attributes.Int(Ops.DepthToSpace.BlockSize, plan.Axes[0].Stride));
                string mode = choice.Interleave == InterleaveForm.DepthToSpaceCrd ? Ops.DepthToSpace.ModeCrd : Ops.DepthToSpace.ModeDcr;
                if (request.Opset >= 11) d2s.Attribute.Add(Attributes.String(Ops.DepthToSpace.Mode, mode));
                nodes.Add(d2s);
                interleaveDesc = $"+DepthToSpace({mode},{plan.Axes[0].Stride})";
            }
            else
            {
                AddReshapeTranspose(plan, request, choice.PhaseMajorChannels, current, o, nodes, inits);
                interleaveDesc = request.StaticSpatial || plan.Rank == 1 ? "+Reshape/Transpose/Reshape" : "+Reshape/Transpose/Reshape (shapes from Shape/Gather/Mul/Concat)";
            }
            current = o;
        }

        if (needsSlice)
        {
            AddSlice(plan, request, current, request.Output, nodes, inits);
            current = request.Output;
        }
        return new LoweredNodes(nodes, inits, choice, convDesc + interleaveDesc + (needsSlice ? "+Slice" : ""));
    }

    private static string Dims(IEnumerable<long> v) => string.Join("x", v);

    private static NodeProto NewNode(LoweringRequest request, string opType, IEnumerable<string> inputs, string output)
    {
        var n = new NodeProto { OpType = opType, Name = request.UniqueName(opType), Domain = Ops.DefaultDomain };
        n.Input.AddRange(inputs);
        n.Output.Add(output);
        return n;
    }

    private static NodeProto ConvNode(LoweringRequest request, IEnumerable<string> inputs, string output, long group,
        IEnumerable<long> kernel, IEnumerable<long> dilations, IEnumerable<long> padBegin, IEnumerable<long> padEnd)
    {
        var k = kernel.ToArray();
        var n = NewNode(request, Ops.Conv.OpType, inputs, output);
        n.Attribute.Add(Attributes.Ints(Ops.Conv.KernelShape, k));
        n.Attribute.Add(Attributes.Ints(Ops.Conv.Strides, k.Select(_ => 1L)));
        n.Attribute.Add(Attributes.Ints(Ops.Conv.Dilations, dilations));
        n.Attribute.Add(Attributes.Ints(Ops.Conv.Pads, [.. padBegin, .. padEnd]));
        if (group != 1) n.Attribute.Add(Attributes.Int(Ops.Conv.Group, group));
        return n;
    }

    /// <summary>
    /// One Conv kernel [Cout*S, Cin/group, L...]: channel (g*Cog+oc)*S + ph (CRD, keeps each group contiguous) or
    /// ph*Cout + g*Cog+oc (phase-major, for DepthToSpace DCR; only valid with group 1). Computed one output channel
    /// (row) at a time, so it can be written in slices (see <see cref="ComputedTensors.Floats"/>).
    /// </summary>
    private static TensorProto CombinedWeights(TransposedConvPlan plan, ReadOnlyMemory<float> weights, bool phaseMajor, string name, IWeightSink? sink)
    {
        var g = plan.Geometry;
        long S = plan.PhaseCount, cout = plan.OutChannels, cig = g.InChannelsPerGroup, cog = g.OutChannelsPerGroup;
        long[] lens = plan.Axes.Select(a => a.CombinedLength).ToArray();
        long lSpatial = lens.Aggregate(1L, (p, v) => p * v);
        long kSpatial = plan.Axes.Aggregate(1L, (p, a) => p * a.Geometry.Kernel);
        // Per phase, its (ConvTranspose tap, Conv tap) pairs: at most the kernel's taps each.
        var pairs = plan.PhaseCombinations()
            .Select(combo => TapPairs(plan, combo, (axis, tap) => plan.Axes[axis].CombinedKernelIndex(tap.Offset), lens).ToArray())
            .ToArray();
        long row = Math.Max(1, cig * lSpatial);
        return ComputedTensors.Floats(name, [cout * S, cig, .. lens], row, (first, dst) =>
        {
            dst.Clear(); // taps a phase does not have stay zero
            var w = weights.Span;
            for (long r = 0, rows = dst.Length / row; r < rows; r++)
            {
                long chan = first / row + r;
                long ph = phaseMajor ? chan / cout : chan % S;
                long co = phaseMajor ? chan % cout : chan / S;
                long grp = co / cog, oc = co % cog;
                var to = dst.Slice((int)(r * row), (int)row);
                foreach (var (src, at) in pairs[ph])
                    for (long ic = 0; ic < cig; ic++)
                        to[(int)(ic * lSpatial + at)] = w[(int)(((grp * cig + ic) * cog + oc) * kSpatial + src)];
            }
        }, sink);
    }

    /// <summary>The combined Conv's bias [Cout*S], in the same channel order as <see cref="CombinedWeights"/>; null without a bias.</summary>
    private static float[]? CombinedBias(TransposedConvPlan plan, ReadOnlySpan<float> bias, bool phaseMajor)
    {
        if (bias.Length == 0) return null;
        long S = plan.PhaseCount, cout = plan.OutChannels;
        var b = new float[cout * S];
        for (long p = 0; p < S; p++)
            for (long co = 0; co < cout; co++)
                b[phaseMajor ? p * cout + co : co * S + p] = bias[(int)co];
        return b;
    }

    /// <summary>One phase combination's own kernel [Cout, Cin/group, T...] (groups stay contiguous as in any Conv), one output channel (row) at a time.</summary>
    private static TensorProto PhaseWeights(TransposedConvPlan plan, ReadOnlyMemory<float> weights, AxisPhase[] combo, string name, IWeightSink? sink)
    {
        var g = plan.Geometry;
        long cout = plan.OutChannels, cig = g.InChannelsPerGroup, cog = g.OutChannelsPerGroup;
        long[] lens = combo.Select(p => p.Length).ToArray();
        long lSpatial = lens.Aggregate(1L, (p, v) => p * v);
        long kSpatial = plan.Axes.Aggregate(1L, (p, a) => p * a.Geometry.Kernel);
        var pairs = TapPairs(plan, combo, (axis, tap) => combo[axis].KernelIndex(tap.Offset), lens).ToArray();
        long row = Math.Max(1, cig * lSpatial);
        return ComputedTensors.Floats(name, [cout, cig, .. lens], row, (first, dst) =>
        {
            dst.Clear();
            var w = weights.Span;
            for (long r = 0, rows = dst.Length / row; r < rows; r++)
            {
                long co = first / row + r, grp = co / cog, oc = co % cog;
                var to = dst.Slice((int)(r * row), (int)row);
                foreach (var (src, at) in pairs)
                    for (long ic = 0; ic < cig; ic++)
                        to[(int)(ic * lSpatial + at)] = w[(int)(((grp * cig + ic) * cog + oc) * kSpatial + src)];
            }
        }, sink);
    }

    /// <summary>Every tap tuple of a phase combination: (flat index into the ConvTranspose kernel, flat index into the Conv kernel).</summary>
    private static IEnumerable<(long Src, long Dst)> TapPairs(TransposedConvPlan plan, AxisPhase[] combo, Func<int, PhaseTap, long> dstIndex, long[] dstLens)
    {
        int r = plan.Rank;
        if (combo.Any(p => p.IsEmpty)) yield break;
        var idx = new int[r];
        while (true)
        {
            long src = 0, dst = 0;
            for (int a = 0; a < r; a++)
            {
                var tap = combo[a].Taps[idx[a]];
                src = src * plan.Axes[a].Geometry.Kernel + tap.K;
                dst = dst * dstLens[a] + dstIndex(a, tap);
            }
            yield return (src, dst);
            int i = r - 1;
            for (; i >= 0; i--)
            {
                if (++idx[i] < combo[i].TapCount) break;
                idx[i] = 0;
            }
            if (i < 0) yield break;
        }
    }

    /// <summary>
    /// Interleave for any rank: [N, C*S, Q...] → Reshape [N, C, s..., Q...] (or [N, s..., C, Q...] phase-major)
    /// → Transpose to [N, C, Q0, s0, Q1, s1, ...] → Reshape [N, C, Q0*s0, ...]. Shapes are constants when the input
    /// sizes are static (or in 1D, with -1); otherwise computed at run time with Shape/Gather/Mul/Concat.
    /// </summary>
    private static void AddReshapeTranspose(TransposedConvPlan plan, LoweringRequest request, bool phaseMajor, string input, string output,
        List<NodeProto> nodes, List<TensorProto> inits)
    {
        int r = plan.Rank;
        long c = plan.OutChannels;
        long[] s = plan.Strides;
        long[] channelDims = phaseMajor ? [.. s, c] : [c, .. s];
        var perm = new List<long> { 0, phaseMajor ? 1 + r : 1 };
        for (int a = 0; a < r; a++)
        {
            perm.Add(2 + r + a);
            perm.Add(phaseMajor ? 1 + a : 2 + a);
        }

        string splitName = request.UniqueName("interleave_split_shape");
        string mergedName = request.UniqueName("interleave_merged_shape");
        if (request.StaticSpatial || r == 1)
        {
            // 0 copies the batch dim, which may be dynamic; in 1D the one spatial dim can be -1 (inferred).
            long[] q = plan.Axes.Select(a => request.StaticSpatial ? a.Rows() : -1).ToArray();
            long[] split = [0, .. channelDims, .. q];
            long[] merged = [0, c, .. q.Select((v, a) => v < 0 ? -1 : v * s[a])];
            inits.Add(Tensors.FromInt64s(splitName, [split.Length], split));
            inits.Add(Tensors.FromInt64s(mergedName, [merged.Length], merged));
        }
        else
        {
            // Several dynamic spatial dims: read them from the phase tensor at run time.
            // split = [N, channelDims..., Q...], merged = [N, C, Q*s...].
            string shape = request.UniqueName("interleave_shape");
            nodes.Add(NewNode(request, Ops.Shape.OpType, [input], shape));
            string Const(string stem, long[] v)
            {
                string n = request.UniqueName(stem);
                inits.Add(Tensors.FromInt64s(n, [v.Length], v));
                return n;
            }
            string Gather(string stem, long[] indices)
            {
                string o = request.UniqueName(stem);
                var g = NewNode(request, Ops.Gather.OpType, [shape, Const(stem + "_indices", indices)], o);
                g.Attribute.Add(Attributes.Int(Ops.Gather.Axis, 0));
                nodes.Add(g);
                return o;
            }
            string n = Gather("interleave_batch", [0]);
            string q = Gather("interleave_rows", [.. Enumerable.Range(2, r).Select(i => (long)i)]);
            string qs = request.UniqueName("interleave_rows_scaled");
            nodes.Add(NewNode(request, Ops.Mul.OpType, [q, Const("interleave_strides", s)], qs));
            var splitConcat = NewNode(request, Ops.Concat.OpType, [n, Const("interleave_channel_dims", channelDims), q], splitName);
            splitConcat.Attribute.Add(Attributes.Int(Ops.Concat.Axis, 0));
            nodes.Add(splitConcat);
            var mergedConcat = NewNode(request, Ops.Concat.OpType, [n, Const("interleave_channels", [c]), qs], mergedName);
            mergedConcat.Attribute.Add(Attributes.Int(Ops.Concat.Axis, 0));
            nodes.Add(mergedConcat);
        }
        string a1 = request.UniqueName("interleave_split");
        nodes.Add(NewNode(request, Ops.Reshape.OpType, [input, splitName], a1));
        string a2 = request.UniqueName("interleave_transposed");
        var t = NewNode(request, Ops.Transpose.OpType, [a1], a2);
        t.Attribute.Add(Attributes.Ints(Ops.Transpose.Perm, perm));
        nodes.Add(t);
        nodes.Add(NewNode(request, Ops.Reshape.OpType, [a2, mergedName], output));
    }

    /// <summary>Crops [CropBegin, len - CropEnd) per axis; ends count from the end so the Slice works for any input size.</summary>
    private static void AddSlice(TransposedConvPlan plan, LoweringRequest request, string input, string output,
        List<NodeProto> nodes, List<TensorProto> inits)
    {
        var axes = new List<long>();
        var starts = new List<long>();
        var ends = new List<long>();
        for (int a = 0; a < plan.Rank; a++)
        {
            var ax = plan.Axes[a];
            if (ax.CropBegin == 0 && ax.CropEnd == 0) continue;
            axes.Add(2 + a);
            starts.Add(ax.CropBegin);
            ends.Add(ax.CropEnd == 0 ? long.MaxValue : -ax.CropEnd);
        }
        if (request.Opset >= 10)
        {
            string st = request.UniqueName("crop_starts"), en = request.UniqueName("crop_ends"), ax = request.UniqueName("crop_axes");
            inits.Add(Tensors.FromInt64s(st, [starts.Count], starts.ToArray()));
            inits.Add(Tensors.FromInt64s(en, [ends.Count], ends.ToArray()));
            inits.Add(Tensors.FromInt64s(ax, [axes.Count], axes.ToArray()));
            nodes.Add(NewNode(request, Ops.Slice.OpType, [input, st, en, ax], output));
        }
        else
        {
            // Slice-1: starts/ends/axes are attributes; negative ends also count from the end there.
            var n = NewNode(request, Ops.Slice.OpType, [input], output);
            n.Attribute.Add(Attributes.Ints(Ops.Slice.Starts, starts));
            n.Attribute.Add(Attributes.Ints(Ops.Slice.Ends, ends));
            n.Attribute.Add(Attributes.Ints(Ops.Slice.Axes, axes));
            nodes.Add(n);
        }
    }
}
