namespace OnnxDeconv.Geometry;

/// <summary>One kernel tap of an axis phase: kernel index <see cref="Kernel"/> reads input <c>x[m - Offset]</c>.</summary>
public readonly record struct AxisTap(long Kernel, long Offset);

/// <summary>
/// One output phase of one axis (DESIGN.md §1). With <c>t = o + pb</c> the full-output position of output o, the phase
/// holds the outputs with <c>t mod s == Residue</c>: <c>o = FirstOutput + q*s</c> for q in [0, Count). Output q reads
/// <c>x[FirstInput + q - tap.Offset]</c> through the taps k with <c>k*d mod s == Residue</c>,
/// <c>Offset = (k*d - Residue)/s</c> (k ascending): a dense stride-1 correlation over the original input. Reads outside
/// [0, I) are zero padding.
/// </summary>
public sealed record OutputPhase(long Residue, AxisTap[] Taps, long FirstOutput, long Count, long FirstInput)
{
    public int TapCount => Taps.Length;
    /// <summary>No tap lands here (gcd(d, s) &gt; 1): the outputs are bias only.</summary>
    public bool IsEmpty => Taps.Length == 0;
    public long MinOffset => Taps.Length == 0 ? 0 : Taps[0].Offset;
    public long MaxOffset => Taps.Length == 0 ? 0 : Taps[^1].Offset;

    /// <summary>Input index read by phase output <paramref name="q"/> through <paramref name="tap"/> (may be outside the input).</summary>
    public long InputIndex(long q, AxisTap tap) => FirstInput + q - tap.Offset;
}

/// <summary>The s output phases of one axis, indexed by residue.</summary>
public sealed class AxisDecomposition
{
    public AxisGeometry Axis { get; }
    public long Stride => Axis.Stride;
    /// <summary>Indexed by residue r = (o + pb) mod s.</summary>
    public IReadOnlyList<OutputPhase> Phases { get; }
    /// <summary>Largest tap count of one phase.</summary>
    public int MaxTaps { get; }

    internal AxisDecomposition(AxisGeometry a)
    {
        Axis = a;
        long s = a.Stride, d = a.Dilation, pb = a.PadBegin;
        var taps = new List<AxisTap>[s];
        for (long r = 0; r < s; r++) taps[r] = [];
        // k ascending, so each list's offsets ascend too (offset = (k*d - r)/s grows with k).
        for (long k = 0; k < a.Kernel; k++)
        {
            long t = checked(k * d);
            taps[t % s].Add(new AxisTap(k, t / s));
        }
        var phases = new OutputPhase[s];
        for (long r = 0; r < s; r++)
        {
            long o0 = FloorMod(r - pb, s);
            long count = o0 < a.Output ? (a.Output - 1 - o0) / s + 1 : 0;
            phases[r] = new OutputPhase(r, [.. taps[r]], o0, count, (o0 + pb - r) / s);
            MaxTaps = Math.Max(MaxTaps, taps[r].Count);
        }
        Phases = phases;
    }

    /// <summary>Residue of output <paramref name="o"/>: the phase that computes it.</summary>
    public long ResidueOf(long o) => FloorMod(o + Axis.PadBegin, Stride);

    /// <summary>Largest tap count of one phase, counted over the kernel (never over the stride, which a hostile model can make 2^31).</summary>
    public static long MaxTapsOf(AxisGeometry a)
    {
        var perResidue = new Dictionary<long, long>();
        long most = 0;
        for (long k = 0; k < a.Kernel; k++)
        {
            long r = k * a.Dilation % a.Stride;
            long n = perResidue.GetValueOrDefault(r) + 1;
            perResidue[r] = n;
            most = Math.Max(most, n);
        }
        return most;
    }

    internal static long FloorMod(long a, long m) => ((a % m) + m) % m;
}

/// <summary>
/// One phase of the whole layer: one <see cref="OutputPhase"/> per axis. Its taps are the product of the axes' taps and
/// its outputs the product of their grids, both in row-major order (last axis fastest).
/// </summary>
public sealed class PhaseCombination
{
    public int Index { get; }
    public IReadOnlyList<OutputPhase> Axes { get; }
    public long Taps { get; }
    public long Pixels { get; }

    internal PhaseCombination(int index, OutputPhase[] axes)
    {
        Index = index;
        Axes = axes;
        Taps = axes.Aggregate(1L, (p, a) => checked(p * a.TapCount));
        Pixels = axes.Aggregate(1L, (p, a) => checked(p * a.Count));
    }

    /// <summary>The per-axis tap of flat tap <paramref name="tap"/> on <paramref name="axis"/> (last axis fastest).</summary>
    public AxisTap Tap(long tap, int axis)
    {
        for (int a = Axes.Count - 1; a > axis; a--) tap /= Axes[a].TapCount;
        return Axes[axis].Taps[tap % Axes[axis].TapCount];
    }

    /// <summary>Flat index into the ONNX kernel [k1..kr] of flat tap <paramref name="tap"/>.</summary>
    public long KernelIndex(long tap, IReadOnlyList<AxisGeometry> geometry)
    {
        long flat = 0, mul = 1;
        for (int a = Axes.Count - 1; a >= 0; a--)
        {
            var ph = Axes[a];
            flat += ph.Taps[tap % ph.TapCount].Kernel * mul;
            tap /= ph.TapCount;
            mul *= geometry[a].Kernel;
        }
        return flat;
    }
}

/// <summary>
/// The polyphase decomposition of a transposed convolution, computed once from its geometry: per axis the s output
/// phases (taps, input offsets, output grid), and their D-dimensional product. The plan, the kernel's packing and
/// paths, and the portable lowering all read it instead of enumerating residues themselves.
/// </summary>
public sealed class PhaseDecomposition
{
    /// <summary>Most phases (product of the strides) a decomposition is built for.</summary>
    public const long MaxPhases = 1 << 16;

    public ConvTransposeGeometry Geometry { get; }
    public IReadOnlyList<AxisDecomposition> Axes { get; }
    public int Rank => Axes.Count;
    /// <summary>Number of phase combinations: prod(s).</summary>
    public int PhaseCount { get; }
    /// <summary>Every combination, row-major (first axis slowest): index = ((r0*s1)+r1)*s2+r2...</summary>
    public IReadOnlyList<PhaseCombination> Combinations { get; }
    /// <summary>Largest tap count of one combination.</summary>
    public long MaxTaps { get; }

    public PhaseDecomposition(ConvTransposeGeometry g)
    {
        // One phase per stride position: a hostile stride (2^31-1 was found by tools/fuzz) must not allocate that many.
        if (PhaseCountOf(g) > MaxPhases)
            throw new GeometryException("strides",
                $"strides [{string.Join(",", g.Axes.Select(a => a.Stride))}] give more than {MaxPhases} phases; such a node is not rewritten");
        Geometry = g;
        var axes = g.Axes.Select(a => new AxisDecomposition(a)).ToArray();
        Axes = axes;
        PhaseCount = (int)axes.Aggregate(1L, (p, a) => p * a.Stride);
        var combos = new PhaseCombination[PhaseCount];
        var idx = new int[axes.Length];
        for (int n = 0; n < PhaseCount; n++)
        {
            combos[n] = new PhaseCombination(n, axes.Select((a, i) => a.Phases[idx[i]]).ToArray());
            for (int i = axes.Length - 1; i >= 0; i--)
            {
                if (++idx[i] < axes[i].Stride) break;
                idx[i] = 0;
            }
        }
        Combinations = combos;
        MaxTaps = axes.Aggregate(1L, (p, a) => p * a.MaxTaps);
    }

    /// <summary>prod(s), saturating just above <see cref="MaxPhases"/>.</summary>
    public static long PhaseCountOf(ConvTransposeGeometry g) =>
        g.Axes.Aggregate(1L, (p, a) => a.Stride > MaxPhases ? MaxPhases + 1 : Math.Min(p * a.Stride, MaxPhases + 1));

    /// <summary>Largest tap count of one phase combination without building the decomposition (any stride).</summary>
    public static long MaxTapsOf(ConvTransposeGeometry g) =>
        g.Axes.Aggregate(1L, (p, a) => checked(p * AxisDecomposition.MaxTapsOf(a)));
}
