using System.Globalization;
using System.Numerics;
using OnnxDeconv.Geometry;

namespace OnnxDeconv.Explain;

/// <summary>One kernel tap of a phase: output y[s*m + r] adds w[Tap] * x[m + InputOffset].</summary>
public sealed record PhaseTap(long Tap, long InputOffset);

/// <summary>
/// One output phase of an axis: the outputs o with o mod s == <see cref="Residue"/> (<see cref="Outputs"/> of them)
/// are a stride-1 correlation of the original input with <see cref="TapCount"/> taps (listed up to a bound).
/// </summary>
public sealed record Phase(long Residue, long Outputs, long TapCount, IReadOnlyList<PhaseTap> Taps);

/// <summary>
/// How one axis is computed three ways (DESIGN.md section 1, "Cost of the three ways"): the polyphase phases and their
/// multiply-adds, GEMM + col2im (I*k products, a column of k*I values), zero insertion (O*k products on a grown input).
/// </summary>
public sealed record AxisCompute(
    IReadOnlyList<Phase> Phases, long PhaseCount, BigInteger PolyphaseMacs, bool PolyphaseExact,
    BigInteger GemmMacs, BigInteger ColumnLength, BigInteger ZeroInsertionMacs, long GrownLength);

/// <summary>A method's cost for the whole layer: multiply-adds and the extra buffer it needs (floats), with what that buffer is.</summary>
public sealed record LayerCost(string Method, BigInteger Macs, BigInteger ExtraFloats, string Extra);

/// <summary>Pure functions from an axis or a whole geometry to the compute views `explain` prints.</summary>
public static class ComputeViews
{
    /// <summary>Phases and taps listed in full up to these counts (a stride of 2^20 has 2^20 phases).</summary>
    public const int MaxListedPhases = 8, MaxListedTaps = 8;

    /// <summary>Taps counted one by one up to this many; beyond, the polyphase MACs are given as K*O/s (approximate).</summary>
    private const long MaxCountedTaps = 2_000_000;

    public static AxisCompute Axis(AxisGeometry a)
    {
        long s = a.Stride, k = a.Kernel, d = a.Dilation, pb = a.PadBegin, o = a.Output;
        long shown = Math.Min(s, MaxListedPhases);
        var phases = new List<Phase>();
        for (long r = 0; r < shown; r++)
        {
            // y[o] sums taps j with j*d == o + pb (mod s); for o = s*m + r the input index is m + (r + pb - j*d)/s.
            long first = FirstTap(r, a);
            var taps = new List<PhaseTap>();
            long count = first < 0 ? 0 : TapsFrom(first, a);
            for (long j = first; j >= 0 && j < k && taps.Count < MaxListedTaps; j += s / Gcd(d % s, s))
                taps.Add(new PhaseTap(j, FloorDiv(r + pb - j * d, s)));
            phases.Add(new Phase(r, Outputs(r, a), count, [.. taps.OrderBy(t => t.InputOffset)]));
        }
        // Sum over taps of the outputs of the tap's phase: exact when the kernel can be walked, else K*O/s.
        BigInteger poly;
        bool exact = k <= MaxCountedTaps;
        if (exact)
        {
            poly = 0;
            for (long j = 0; j < k; j++) poly += Outputs(Mod(j * d - pb, s), a);
        }
        else poly = new BigInteger(k) * o / s;
        long grown = a.ZeroInsertedLength + a.ImplicitPadBegin + a.ImplicitPadEnd;
        return new AxisCompute(phases, s, poly, exact, new BigInteger(a.Input) * k, new BigInteger(a.Input) * k, new BigInteger(o) * k, grown);
    }

    /// <summary>The three methods for the whole layer (batch and channels included).</summary>
    public static IReadOnlyList<LayerCost> Layer(ConvTransposeGeometry g, IReadOnlyList<AxisCompute> axes)
    {
        BigInteger channels = new BigInteger(g.Batch) * g.InChannelsPerGroup * g.OutChannels;
        BigInteger Product(Func<int, BigInteger> f) => Enumerable.Range(0, axes.Count).Aggregate(BigInteger.One, (p, i) => p * f(i));
        BigInteger kernel = Product(i => g.Axes[i].Kernel), input = Product(i => g.Axes[i].Input);
        return
        [
            new("polyphase", channels * Product(i => axes[i].PolyphaseMacs), 0, "none: every phase reads the original input"),
            new("GEMM + col2im", channels * kernel * input, new BigInteger(g.OutChannels / g.Group) * kernel * input,
                "column buffer (Cout/group)*k*I, then a scatter-add (col2im)"),
            new("zero insertion", channels * kernel * Product(i => g.Axes[i].Output), new BigInteger(g.InputShape[1]) * Product(i => axes[i].GrownLength),
                "the zero-inserted, padded input Cin*L"),
        ];
    }

    /// <summary>"floor((28 + 0 - 5) / 2) + 1 = 12": the Conv output length for <paramref name="length"/>, with the floor written out.</summary>
    public static string ConvFloor(long length, long kernel, long stride, long padBegin, long padEnd, long dilation) =>
        string.Create(CultureInfo.InvariantCulture,
            $"floor(({length} + {padBegin + padEnd} - {dilation * (kernel - 1) + 1}) / {stride}) + 1");

    /// <summary>Number of outputs o in [0, O) with o mod s == r.</summary>
    private static long Outputs(long r, AxisGeometry a) => r >= a.Output ? 0 : (a.Output - r + a.Stride - 1) / a.Stride;

    /// <summary>Smallest tap j in [0, k) with j*d == r + pb (mod s), or -1 (solved, not searched: s may be 2^33).</summary>
    private static long FirstTap(long r, AxisGeometry a)
    {
        long s = a.Stride, d = Mod(a.Dilation, s), want = Mod(r + a.PadBegin, s);
        long g = Gcd(d, s);
        if (want % g != 0) return -1;
        long period = s / g;
        // j = (want/g) * inverse(d/g) mod (s/g)
        var j = period == 1 ? BigInteger.Zero
            : BigInteger.Remainder(new BigInteger(want / g) * Inverse(d / g, period), period);
        return j < a.Kernel ? (long)j : -1;
    }

    /// <summary>x^-1 modulo m (x and m coprime), by the extended Euclidean algorithm.</summary>
    private static BigInteger Inverse(long x, long m)
    {
        BigInteger r0 = m, r1 = x, t0 = 0, t1 = 1;
        while (r1 != 0)
        {
            var q = r0 / r1;
            (r0, r1) = (r1, r0 - q * r1);
            (t0, t1) = (t1, t0 - q * t1);
        }
        return ((t0 % m) + m) % m;
    }

    /// <summary>Taps j in [first, k) congruent to <paramref name="first"/> modulo the residue period.</summary>
    private static long TapsFrom(long first, AxisGeometry a)
    {
        long period = a.Stride / Gcd(a.Dilation % a.Stride, a.Stride);
        return (a.Kernel - 1 - first) / period + 1;
    }

    private static long Gcd(long x, long y) => y == 0 ? Math.Max(x, 1) : Gcd(y, x % y);
    private static long Mod(long x, long m) => ((x % m) + m) % m;
    private static long FloorDiv(long x, long m) => (x - Mod(x, m)) / m;
}
