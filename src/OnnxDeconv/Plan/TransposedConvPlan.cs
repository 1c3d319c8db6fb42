using OnnxDeconv.Geometry;

namespace OnnxDeconv.Plan;

/// <summary>One kernel tap of a phase: kernel index <see cref="K"/> reads input <c>x[q - Offset]</c> for phase row q.</summary>
public sealed record PhaseTap(long K, long Offset);

/// <summary>
/// One output phase of one axis: full-output positions <c>t</c> with <c>t mod s == Residue</c>.
/// Its taps are the kernel indices k with <c>k*d ≡ Residue (mod s)</c>; the phase is a stride-1 correlation on the
/// original input with taps at offsets <see cref="PhaseTap.Offset"/> = (k*d - Residue)/s, spaced <see cref="Dilation"/> apart.
/// </summary>
public sealed record AxisPhase(long Residue, IReadOnlyList<PhaseTap> Taps, long MinOffset, long MaxOffset, long Dilation)
{
    public int TapCount => Taps.Count;
    public bool IsEmpty => Taps.Count == 0;

    /// <summary>Kernel length of this phase as its own (dilated) Conv; an empty phase is one zero tap.</summary>
    public long Length => IsEmpty ? 1 : (MaxOffset - MinOffset) / Dilation + 1;

    /// <summary>Conv pad at the begin when this phase runs as its own Conv producing rows from <see cref="AxisPlan.RowStart"/>.</summary>
    public long ConvPadBegin(AxisPlan axis) => MaxOffset - axis.RowStart;

    /// <summary>Conv pad at the end when this phase runs as its own Conv (same row count as every other phase).</summary>
    public long ConvPadEnd(AxisPlan axis) => axis.ExtraEnd - MinOffset;

    /// <summary>Index into this phase's own Conv kernel of a tap at <paramref name="offset"/> (the kernel is flipped).</summary>
    public long KernelIndex(long offset) => (MaxOffset - offset) / Dilation;
}

/// <summary>
/// One spatial axis of the plan. Phase rows q run from <see cref="RowStart"/> for <c>I + ExtraEnd - RowStart</c> rows;
/// after interleaving, position u is full-output position <c>t = s*RowStart + u</c>, and the result is
/// <c>[CropBegin, length - CropEnd)</c>. Every quantity except the input length is independent of the input length,
/// so the lowering works for dynamic sizes (unless the geometry came from output_shape).
/// </summary>
public sealed record AxisPlan
{
    public required AxisGeometry Geometry { get; init; }
    public required IReadOnlyList<AxisPhase> Phases { get; init; }
    public long Stride => Geometry.Stride;

    /// <summary>First phase row computed (&lt;= pb div s, and &lt;= every phase's largest offset so no Conv pad is negative).</summary>
    public required long RowStart { get; init; }
    /// <summary>Rows computed beyond the input length: rows = I + ExtraEnd - RowStart.</summary>
    public required long ExtraEnd { get; init; }

    /// <summary>Largest tap offset over every phase (the smallest is always 0: k = 0 is phase 0 at offset 0).</summary>
    public long MaxOffset => Phases.Max(p => p.IsEmpty ? 0 : p.MaxOffset);

    /// <summary>Common tap spacing when all phases share one Conv: gcd of every offset.</summary>
    public required long CombinedDilation { get; init; }
    public long CombinedLength => MaxOffset / CombinedDilation + 1;
    public long CombinedPadBegin => MaxOffset - RowStart;
    public long CombinedPadEnd => ExtraEnd;
    public long CombinedKernelIndex(long offset) => (MaxOffset - offset) / CombinedDilation;

    /// <summary>Elements dropped at the begin of the interleaved axis: pb - s*RowStart.</summary>
    public long CropBegin => Geometry.PadBegin - Stride * RowStart;
    /// <summary>Elements dropped at the end of the interleaved axis; independent of the input length.</summary>
    public long CropEnd => Stride * (Geometry.Input + ExtraEnd) - Geometry.PadBegin - Geometry.Output;

    /// <summary>Phase rows for a given input length (the Conv output length on this axis).</summary>
    public long Rows(long input) => input + ExtraEnd - RowStart;
    public long Rows() => Rows(Geometry.Input);
}

/// <summary>
/// The canonical description of a transposed convolution as a bank of stride-1 correlations on the original input
/// (DESIGN.md §1): per axis the phases with their taps, the rows to compute and the crop; channels, groups and bias.
/// Plain data: the portable lowering, the plugin kernel and the pattern matchers all share it.
/// </summary>
public sealed record TransposedConvPlan
{
    public required ConvTransposeGeometry Geometry { get; init; }
    public required IReadOnlyList<AxisPlan> Axes { get; init; }
    public required bool HasBias { get; init; }
    /// <summary>True when the resolved pads came from output_shape and so hold only for the static input size.</summary>
    public required bool DependsOnStaticInputSize { get; init; }

    public int Rank => Axes.Count;
    public long Group => Geometry.Group;
    public long InChannels => Geometry.InChannels;
    public long OutChannels => Geometry.OutChannels;

    /// <summary>Number of phases in all dims: prod(s).</summary>
    public long PhaseCount => Axes.Aggregate(1L, (p, a) => p * a.Stride);
    public long[] Strides => Axes.Select(a => a.Stride).ToArray();

    /// <summary>Every phase has the same tap count and offsets on a common grid: one Conv wastes nothing but edge rows.</summary>
    public bool PhasesEqual => Axes.All(a => a.Phases.All(p => p.Length == a.CombinedLength && p.TapCount == a.CombinedLength));

    /// <summary>Multiply-adds ONNX Runtime's ConvTranspose does (useful ones only).</summary>
    public long UsefulMacs => Geometry.UsefulMacs;

    private long MacsPerTap => checked(Geometry.Batch * Geometry.InChannelsPerGroup * OutChannels
        * Axes.Aggregate(1L, (p, a) => p * a.Rows()));

    /// <summary>Multiply-adds of one Conv with Cout*prod(s) channels holding every phase (zero taps included).</summary>
    public long CombinedMacs => checked(MacsPerTap * PhaseCount * Axes.Aggregate(1L, (p, a) => p * a.CombinedLength));

    /// <summary>Multiply-adds of one Conv per phase combination, each with its own kernel (empty phases: one zero tap).</summary>
    public long PerPhaseMacs
    {
        get
        {
            // sum over phase combinations of prod(len) == prod over axes of sum(len): the sum factorises per axis.
            long taps = Axes.Aggregate(1L, (p, a) => p * a.Phases.Sum(ph => ph.Length));
            return checked(MacsPerTap * taps);
        }
    }

    /// <summary>All phase combinations in row-major order (first axis slowest): index = ((r0*s1)+r1)*s2+r2...</summary>
    public IEnumerable<AxisPhase[]> PhaseCombinations()
    {
        var idx = new int[Rank];
        long total = PhaseCount;
        for (long n = 0; n < total; n++)
        {
            yield return Axes.Select((a, i) => a.Phases[idx[i]]).ToArray();
            for (int i = Rank - 1; i >= 0; i--)
            {
                if (++idx[i] < Axes[i].Phases.Count) break;
                idx[i] = 0;
            }
        }
    }
}

/// <summary>Builds a <see cref="TransposedConvPlan"/> from a resolved geometry.</summary>
public static class TransposedConvPlanBuilder
{
    /// <summary>Most sub-convolutions (product of the strides) a plan is built for.</summary>
    public const long MaxPhases = PhaseDecomposition.MaxPhases;

    /// <param name="geometry">The resolved ConvTranspose.</param>
    /// <param name="hasBias">Whether the node has a bias input.</param>
    /// <param name="padsFromOutputShape">True when the node's pads were derived from output_shape (then they hold for the static input size only).</param>
    public static TransposedConvPlan Build(ConvTransposeGeometry geometry, bool hasBias, bool padsFromOutputShape)
    {
        var phases = new PhaseDecomposition(geometry); // refuses more than MaxPhases phases
        return new TransposedConvPlan
        {
            Geometry = geometry,
            Axes = phases.Axes.Select(BuildAxis).ToArray(),
            HasBias = hasBias,
            DependsOnStaticInputSize = padsFromOutputShape,
        };
    }

    private static AxisPlan BuildAxis(AxisDecomposition decomposition)
    {
        var a = decomposition.Axis;
        long s = a.Stride;
        var taps = decomposition.Phases.Select(p => p.Taps.Select(t => new PhaseTap(t.Kernel, t.Offset)).ToList()).ToArray();

        // Row range: the first full-output row needed is pb div s; no phase may need a negative Conv pad at the begin,
        // so start no later than the smallest per-phase largest offset.
        long firstNeeded = a.PadBegin / s;
        long rowStart = firstNeeded;
        foreach (var p in decomposition.Phases)
            if (!p.IsEmpty) rowStart = Math.Min(rowStart, p.MaxOffset);

        var phases = new AxisPhase[s];
        for (long r = 0; r < s; r++)
        {
            var p = decomposition.Phases[(int)r];
            var list = taps[r];
            if (p.IsEmpty)
            {
                // An empty phase (gcd(d, s) > 1) is only bias; as its own Conv it is one zero tap with offset rowStart.
                phases[r] = new AxisPhase(r, list, rowStart, rowStart, 1);
                continue;
            }
            long dil = 0;
            foreach (var t in p.Taps) dil = Gcd(dil, t.Offset - p.MinOffset);
            phases[r] = new AxisPhase(r, list, p.MinOffset, p.MaxOffset, dil == 0 ? 1 : dil);
        }

        // Last full-output row needed: (pb + O - 1) div s = I - 1 + floor((op + d(K-1) - pe) / s); rows past the
        // input are zero padding of the Conv. Every per-phase Conv pad at the end must be >= 0 too.
        long extraEnd = Math.Max(0, FloorDiv(a.OutputPadding + a.Dilation * (a.Kernel - 1) - a.PadEnd, s));
        foreach (var p in phases) extraEnd = Math.Max(extraEnd, p.MinOffset);

        long combinedDil = 0;
        foreach (var p in decomposition.Phases)
            foreach (var t in p.Taps) combinedDil = Gcd(combinedDil, t.Offset);

        var plan = new AxisPlan
        {
            Geometry = a,
            Phases = phases,
            RowStart = rowStart,
            ExtraEnd = extraEnd,
            CombinedDilation = combinedDil == 0 ? 1 : combinedDil,
        };
        if (plan.CropBegin < 0 || plan.CropEnd < 0)
            throw new InvalidOperationException($"plan invariant broken: crop {plan.CropBegin}/{plan.CropEnd} for axis {a}");
        return plan;
    }

    private static long FloorDiv(long a, long b) => a >= 0 ? a / b : -((-a + b - 1) / b);

    private static long Gcd(long a, long b)
    {
        a = Math.Abs(a); b = Math.Abs(b);
        while (b != 0) (a, b) = (b, a % b);
        return a;
    }
}
