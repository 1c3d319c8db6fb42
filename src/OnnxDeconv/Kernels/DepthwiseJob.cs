using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using OnnxDeconv.Geometry;

namespace OnnxDeconv.Kernels;

/// <summary>
/// Everything the depthwise path (one input channel per group, up to <see cref="DeconvPlan.ChannelBlock"/> output
/// channels per group) derives from a geometry. The input plane of a group is copied once per item into rows that are
/// zero-padded on the last axis (<see cref="RowLength"/> floats each, input index <see cref="MinIndex"/> first), so every
/// vector load of every phase reads in place with no border branches.
/// </summary>
internal sealed class DepthwiseLayout
{
    public int Rank { get; }
    public int Cog { get; }
    public int KernelSpatial { get; }
    public int InputRows { get; }
    public int InputLast { get; }
    public int OutputRows { get; }
    public int OutputLast { get; }
    public int Stride { get; }
    public int MinIndex { get; }
    public int RowLength { get; }
    /// <summary>Per axis, per residue value: kernel indices and input offsets c of its taps.</summary>
    public int[][][] TapK { get; }
    public int[][][] TapC { get; }
    /// <summary>Per last-axis output phase j (outputs j, j+s, ...): the residue value and the input index of q = 0.</summary>
    public int[] PhaseResidue { get; }
    public int[] PhaseM0 { get; }
    /// <summary>Per flat kernel index: offset of output channel 0's weight inside one group's packed block.</summary>
    public int[] KToPacked { get; }
    public long PlaneFloats { get; }
    /// <summary>Per output row, per last-axis phase j (and one end entry): first index into the term tables.</summary>
    public int[] RowStart { get; }
    /// <summary>Per term: plane offset of the input read by q = 0 of its phase, and the flat kernel index of its weight.</summary>
    public int[] TermOffset { get; }
    public int[] TermKernel { get; }
    public int TmpFloats { get; }
    public long FloatsNeeded { get; }

    public DepthwiseLayout(ConvTransposeGeometry g, PhaseDecomposition phases, Residue[] all, int cog, int lanes)
    {
        var axes = g.Axes;
        Rank = g.Rank;
        int last = Rank - 1;
        Cog = cog;
        KernelSpatial = (int)axes.Aggregate(1L, (p, a) => p * a.Kernel);
        InputRows = (int)axes.Take(last).Aggregate(1L, (p, a) => p * a.Input);
        OutputRows = (int)axes.Take(last).Aggregate(1L, (p, a) => p * a.Output);
        InputLast = (int)axes[last].Input;
        OutputLast = (int)axes[last].Output;
        Stride = (int)axes[last].Stride;
        TapK = phases.Axes.Select(ad => ad.Phases.Select(ph => ph.Taps.Select(t => (int)t.Kernel).ToArray()).ToArray()).ToArray();
        TapC = phases.Axes.Select(ad => ad.Phases.Select(ph => ph.Taps.Select(t => (int)t.Offset).ToArray()).ToArray()).ToArray();
        // Last axis: output o = j + q*s (phase j) has residue (j + pb) mod s and reads x[M0_j + q - c].
        var lastAxis = phases.Axes[last];
        int st = Stride;
        PhaseResidue = new int[st];
        PhaseM0 = new int[st];
        int qMax = 0;
        for (int j = 0; j < st; j++)
        {
            PhaseResidue[j] = (int)lastAxis.ResidueOf(j);
            PhaseM0[j] = (int)lastAxis.Phases[PhaseResidue[j]].FirstInput;
            if (j < OutputLast) qMax = Math.Max(qMax, (OutputLast - 1 - j) / st + 1);
        }
        // Every phase computes whole vectors up to qRound (tails are written selectively), so the rows cover those loads.
        int qRound = (qMax + lanes - 1) / lanes * lanes;
        int lo = int.MaxValue, hi = int.MinValue;
        for (int j = 0; j < st; j++)
            foreach (int c in TapC[last][PhaseResidue[j]])
            {
                lo = Math.Min(lo, PhaseM0[j] - c);
                hi = Math.Max(hi, PhaseM0[j] + qRound - 1 - c);
            }
        MinIndex = lo == int.MaxValue ? 0 : lo;
        RowLength = lo == int.MaxValue || qRound == 0 ? 0 : hi - lo + 1;
        KToPacked = new int[KernelSpatial];
        foreach (var res in all)
            for (int t = 0; t < res.Taps; t++) KToPacked[res.TapK[t]] = checked((int)res.WeightOffset + t * cog);
        PlaneFloats = (long)InputRows * RowLength;
        TmpFloats = st * lanes;
        // Weights of every output channel and the phase tile; then 16 floats of alignment slack.
        FloatsNeeded = PlaneFloats + (long)cog * KernelSpatial + TmpFloats + 16;
        (RowStart, TermOffset, TermKernel) = BuildTerms(g);
    }

    /// <summary>Per-thread scratch in floats.</summary>
    public long ScratchFloats => FloatsNeeded;

    /// <summary>Ints of the per-row term tables (shared by all threads, built once per plan like the packed weights).</summary>
    public static long TableInts(ConvTransposeGeometry g) =>
        g.Axes.Take(g.Rank - 1).Aggregate(1L, (p, a) => p * a.Output) * (g.Axes[^1].Stride + 1 + 2 * g.Axes.Aggregate(1L, (p, a) => p * a.Kernel));

    /// <summary>
    /// The terms of every output row: the product of the outer axes' in-range taps (input rows) times the last-axis taps
    /// of each phase. Computed once, so a row costs nothing to set up.
    /// </summary>
    private (int[] RowStart, int[] Offset, int[] Kernel) BuildTerms(ConvTransposeGeometry g)
    {
        int last = Rank - 1, st = Stride;
        var rowStart = new int[OutputRows * (st + 1)];
        var offsets = new List<int>();
        var kernels = new List<int>();
        var rows = new List<(int Row, int K)>();
        var next = new List<(int Row, int K)>();
        var oc = new int[Math.Max(1, last)];
        for (int ro = 0; ro < OutputRows; ro++)
        {
            int rem = ro;
            for (int a = last - 1; a >= 0; a--)
            {
                int oa = (int)g.Axes[a].Output;
                oc[a] = rem % oa;
                rem /= oa;
            }
            rows.Clear();
            rows.Add((0, 0));
            int kStride = KernelSpatial;
            for (int a = 0; a < last; a++)
            {
                var ax = g.Axes[a];
                int s = (int)ax.Stride, inA = (int)ax.Input;
                kStride /= (int)ax.Kernel;
                int o = oc[a] + (int)ax.PadBegin;
                int rv = o % s, m = (o - rv) / s;
                next.Clear();
                foreach (var (row, k) in rows)
                    for (int t = 0; t < TapK[a][rv].Length; t++)
                    {
                        int ia = m - TapC[a][rv][t];
                        if ((uint)ia < (uint)inA) next.Add((row * inA + ia, k + TapK[a][rv][t] * kStride));
                    }
                (rows, next) = (next, rows);
            }
            for (int j = 0; j < st; j++)
            {
                rowStart[ro * (st + 1) + j] = offsets.Count;
                int[] tk = TapK[last][PhaseResidue[j]], tc = TapC[last][PhaseResidue[j]];
                foreach (var (row, k) in rows)
                    for (int t = 0; t < tk.Length; t++)
                    {
                        offsets.Add(checked(row * RowLength + PhaseM0[j] - tc[t] - MinIndex));
                        kernels.Add(k + tk[t]);
                    }
            }
            rowStart[ro * (st + 1) + st] = offsets.Count;
        }
        return (rowStart, offsets.ToArray(), kernels.ToArray());
    }
}

/// <summary>Per-thread depthwise scratch, grown on first use and reused by every call.</summary>
internal sealed class DepthwiseScratch
{
    [ThreadStatic] private static DepthwiseScratch? t_current;

    public float[] Floats = [];

    public static DepthwiseScratch For(DepthwiseLayout d)
    {
        var s = t_current ??= new DepthwiseScratch();
        if (s.Floats.Length < d.FloatsNeeded) s.Floats = new float[checked((int)d.FloatsNeeded)];
        return s;
    }
}

/// <summary>
/// The depthwise path: one item = one (image, group). Each output row (all axes but the last fixed) is computed whole:
/// per vector of q, the s last-axis phases (outputs j + q*s) are accumulated in registers over the row's taps (input rows
/// read in place from the zero-padded plane copy, weights broadcast), then interleaved into contiguous output vectors
/// (s = 2: unpack + lane permute on AVX2/AVX-512, cross-platform shuffles for Vector&lt;T&gt; of 4 or 8 lanes; s = 1 stores
/// directly; other strides go through a small tile).
/// </summary>
internal sealed unsafe class DepthwiseJob<TS, TV> : DeconvJob where TS : struct, ISimd<TV> where TV : unmanaged
{
    public override void Execute(int item)
    {
        var p = Plan;
        var d = p.Dw!;
        var g = p.Geometry;
        long n = item / g.Group, grp = item % g.Group;
        int cog = d.Cog, ks = d.KernelSpatial, st = d.Stride, outLast = d.OutputLast;
        var ep = Epilogue;
        bool exponentialActivation = ep.Kind is Activation.Sigmoid or Activation.Tanh; // not in Act: applied per row
        var scratch = DepthwiseScratch.For(d);
        fixed (float* fs = scratch.Floats)
        {
            float* plane = (float*)(((nint)fs + 63) & ~(nint)63);
            float* wk = plane + d.PlaneFloats;
            float* tmp = wk + (long)cog * ks;

            CopyPlane(X + (n * g.InChannels + grp) * p.InSpatial, plane, d);
            float* wg = W + grp * (long)cog * ks;
            for (int i = 0; i < cog; i++)
                for (int k = 0; k < ks; k++) wk[i * ks + k] = wg[d.KToPacked[k] + i];

            fixed (int* rowStart = d.RowStart, termOff = d.TermOffset, termK = d.TermKernel)
            for (int ro = 0; ro < d.OutputRows; ro++)
            {
                int* start = rowStart + ro * (st + 1);
                for (int i = 0; i < cog; i++)
                {
                    long co = grp * cog + i;
                    float* yr = Y + (n * g.OutChannels + co) * p.OutSpatial + (long)ro * outLast;
                    float bias = B == null ? 0f : B[co];
                    Row(plane, termOff, termK, wk + i * ks, start, st, outLast, bias, yr, tmp, ep);
                    if (exponentialActivation) ep.ApplyInPlace(new Span<float>(yr, outLast));
                }
            }
        }
    }

    /// <summary>Copies the group's input plane into rows zero-padded on the last axis (input index MinIndex at column 0).</summary>
    private static void CopyPlane(float* x, float* plane, DepthwiseLayout d)
    {
        int len = d.RowLength, il = d.InputLast;
        if (len == 0) return;
        int b0 = Math.Clamp(-d.MinIndex, 0, len), b1 = Math.Clamp(il - d.MinIndex, b0, len);
        for (int r = 0; r < d.InputRows; r++)
        {
            float* dst = plane + (long)r * len;
            float* src = x + (long)r * il + d.MinIndex;
            // Inline loops: the pads are a few elements and the rows short, so call overhead would dominate.
            int b = 0;
            for (; b < b0; b++) dst[b] = 0f;
            for (; b + TS.Lanes <= b1; b += TS.Lanes) TS.Store(dst + b, TS.Load(src + b));
            for (; b < b1; b++) dst[b] = src[b];
            for (; b + TS.Lanes <= len; b += TS.Lanes) TS.Store(dst + b, TS.Splat(0f));
            for (; b < len; b++) dst[b] = 0f;
        }
    }

    /// <summary>One output row: phase j's outputs are yr[j + q*s] = bias + sum_t w[kernel[t]] * plane[offset[t] + q].</summary>
    private static void Row(float* plane, int* offset, int* kernel, float* w, int* start, int st, int outLast, float bias, float* yr,
        float* tmp, Epilogue ep)
    {
        int l = TS.Lanes;
        int nq = outLast / st; // q with every phase's output inside the row
        int q = 0;
        if (st == 1)
        {
            int t0 = start[0], t1 = start[1];
            for (; q + 4 * l <= nq; q += 4 * l)
            {
                TV a0 = TS.Splat(bias), a1 = a0, a2 = a0, a3 = a0;
                for (int t = t0; t < t1; t++)
                {
                    float* xp = plane + offset[t] + q;
                    TV wv = TS.Splat(w[kernel[t]]);
                    a0 = TS.MulAdd(wv, TS.Load(xp), a0);
                    a1 = TS.MulAdd(wv, TS.Load(xp + l), a1);
                    a2 = TS.MulAdd(wv, TS.Load(xp + 2 * l), a2);
                    a3 = TS.MulAdd(wv, TS.Load(xp + 3 * l), a3);
                }
                TS.Store(yr + q, Act(a0, ep));
                TS.Store(yr + q + l, Act(a1, ep));
                TS.Store(yr + q + 2 * l, Act(a2, ep));
                TS.Store(yr + q + 3 * l, Act(a3, ep));
            }
            for (; q + l <= nq; q += l)
            {
                TV a0 = TS.Splat(bias);
                for (int t = t0; t < t1; t++) a0 = TS.MulAdd(TS.Splat(w[kernel[t]]), TS.Load(plane + offset[t] + q), a0);
                TS.Store(yr + q, Act(a0, ep));
            }
        }
        else if (st == 2 && CanInterleave2)
        {
            int t0 = start[0], t1 = start[1], t2 = start[2];
            // 4 vectors per phase: the per-term overhead (offset, weight index, broadcast) is shared by 4 FMAs.
            for (; q + 4 * l <= nq; q += 4 * l)
            {
                TV a0 = TS.Splat(bias), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
                for (int t = t0; t < t1; t++)
                {
                    float* xp = plane + offset[t] + q;
                    TV wv = TS.Splat(w[kernel[t]]);
                    a0 = TS.MulAdd(wv, TS.Load(xp), a0);
                    a1 = TS.MulAdd(wv, TS.Load(xp + l), a1);
                    a2 = TS.MulAdd(wv, TS.Load(xp + 2 * l), a2);
                    a3 = TS.MulAdd(wv, TS.Load(xp + 3 * l), a3);
                }
                for (int t = t1; t < t2; t++)
                {
                    float* xp = plane + offset[t] + q;
                    TV wv = TS.Splat(w[kernel[t]]);
                    b0 = TS.MulAdd(wv, TS.Load(xp), b0);
                    b1 = TS.MulAdd(wv, TS.Load(xp + l), b1);
                    b2 = TS.MulAdd(wv, TS.Load(xp + 2 * l), b2);
                    b3 = TS.MulAdd(wv, TS.Load(xp + 3 * l), b3);
                }
                Interleave2(Act(a0, ep), Act(b0, ep), yr + 2 * q);
                Interleave2(Act(a1, ep), Act(b1, ep), yr + 2 * q + 2 * l);
                Interleave2(Act(a2, ep), Act(b2, ep), yr + 2 * q + 4 * l);
                Interleave2(Act(a3, ep), Act(b3, ep), yr + 2 * q + 6 * l);
            }
            for (; q + l <= nq; q += l)
            {
                TV a0 = TS.Splat(bias), b0 = a0;
                for (int t = t0; t < t1; t++) a0 = TS.MulAdd(TS.Splat(w[kernel[t]]), TS.Load(plane + offset[t] + q), a0);
                for (int t = t1; t < t2; t++) b0 = TS.MulAdd(TS.Splat(w[kernel[t]]), TS.Load(plane + offset[t] + q), b0);
                Interleave2(Act(a0, ep), Act(b0, ep), yr + 2 * q);
            }
        }
        // Remaining vectors of q (any stride): every phase into the tile, then interleaved; past nq only outputs inside the row.
        int qEnd = (outLast + st - 1) / st;
        for (; q < qEnd; q += l)
        {
            for (int j = 0; j < st; j++)
            {
                TV acc = TS.Splat(bias);
                for (int t = start[j]; t < start[j + 1]; t++)
                    acc = TS.MulAdd(TS.Splat(w[kernel[t]]), TS.Load(plane + offset[t] + q), acc);
                TS.Store(tmp + j * l, Act(acc, ep));
            }
            float* yo = yr + q * st;
            if (q + l <= nq)
            {
                for (int e = 0; e < l; e++)
                    for (int j = 0; j < st; j++) yo[e * st + j] = tmp[j * l + e];
            }
            else
            {
                int count = outLast - q * st;
                for (int o = 0; o < count; o++) yo[o] = tmp[(o % st) * l + o / st];
            }
        }
    }

    // AggressiveInlining on these small getters: the JIT inlines them anyway, but NativeAOT left them as calls in the
    // row loop (seen in a perf profile of libonnxdeconv-avx512.so: the depthwise layer ran 2-3x slower than in-process).
    private static bool CanInterleave2
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get =>
        typeof(TV) == typeof(Vector256<float>) || typeof(TV) == typeof(Vector512<float>) || typeof(TV) == typeof(float)
        || (typeof(TV) == typeof(Vector<float>) && Vector<float>.Count is 4 or 8);
    }

    /// <summary>Writes a0 b0 a1 b1 ... (2 vectors) to y.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Interleave2(TV a, TV b, float* y)
    {
        if (typeof(TV) == typeof(Vector256<float>))
        {
            var va = Unsafe.BitCast<TV, Vector256<float>>(a);
            var vb = Unsafe.BitCast<TV, Vector256<float>>(b);
            var lo = Avx.UnpackLow(va, vb);  // a0 b0 a1 b1 | a4 b4 a5 b5
            var hi = Avx.UnpackHigh(va, vb); // a2 b2 a3 b3 | a6 b6 a7 b7
            Avx.Permute2x128(lo, hi, 0x20).Store(y);
            Avx.Permute2x128(lo, hi, 0x31).Store(y + 8);
        }
        else if (typeof(TV) == typeof(Vector512<float>))
        {
            var va = Unsafe.BitCast<TV, Vector512<float>>(a);
            var vb = Unsafe.BitCast<TV, Vector512<float>>(b);
            Avx512F.PermuteVar16x32x2(va, Interleave512Low, vb).Store(y);
            Avx512F.PermuteVar16x32x2(va, Interleave512High, vb).Store(y + 16);
        }
        else if (typeof(TV) == typeof(Vector<float>) && Vector<float>.Count == 8)
        {
            // Portable: duplicate each lane with a cross-platform shuffle, then take a's copy in even and b's in odd lanes.
            var va = Unsafe.BitCast<TV, Vector<float>>(a).AsVector256();
            var vb = Unsafe.BitCast<TV, Vector<float>>(b).AsVector256();
            var odd = Vector256.Create(0, -1, 0, -1, 0, -1, 0, -1).AsSingle();
            var lo = Vector256.Create(0, 0, 1, 1, 2, 2, 3, 3);
            var hi = Vector256.Create(4, 4, 5, 5, 6, 6, 7, 7);
            Vector256.ConditionalSelect(odd, Vector256.Shuffle(vb, lo), Vector256.Shuffle(va, lo)).Store(y);
            Vector256.ConditionalSelect(odd, Vector256.Shuffle(vb, hi), Vector256.Shuffle(va, hi)).Store(y + 8);
        }
        else if (typeof(TV) == typeof(Vector<float>) && Vector<float>.Count == 4)
        {
            var va = Unsafe.BitCast<TV, Vector<float>>(a).AsVector128();
            var vb = Unsafe.BitCast<TV, Vector<float>>(b).AsVector128();
            var odd = Vector128.Create(0, -1, 0, -1).AsSingle();
            var lo = Vector128.Create(0, 0, 1, 1);
            var hi = Vector128.Create(2, 2, 3, 3);
            Vector128.ConditionalSelect(odd, Vector128.Shuffle(vb, lo), Vector128.Shuffle(va, lo)).Store(y);
            Vector128.ConditionalSelect(odd, Vector128.Shuffle(vb, hi), Vector128.Shuffle(va, hi)).Store(y + 4);
        }
        else
        {
            y[0] = Unsafe.BitCast<TV, float>(a);
            y[1] = Unsafe.BitCast<TV, float>(b);
        }
    }

    // Indices 0-15 pick from the first operand, 16-31 from the second.
    private static Vector512<int> Interleave512Low { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23); }
    private static Vector512<int> Interleave512High { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31); }

    /// <summary>The vectorisable activations in registers (same results as <see cref="Epilogue.Apply"/>); Sigmoid and Tanh
    /// pass through here and are applied to the whole row after it is written.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Act(TV v, Epilogue ep)
    {
        switch (ep.Kind)
        {
            case Activation.None:
            case Activation.Sigmoid:
            case Activation.Tanh:
                return v;
        }
        if (typeof(TV) == typeof(Vector256<float>))
        {
            var x = Unsafe.BitCast<TV, Vector256<float>>(v);
            x = ep.Kind switch
            {
                Activation.Relu => Avx.Max(x, Vector256<float>.Zero),
                Activation.LeakyRelu => Avx.BlendVariable(x * ep.Alpha, x, Avx.CompareGreaterThanOrEqual(x, Vector256<float>.Zero)),
                _ => Avx.Min(Avx.Max(x, Vector256.Create(ep.Min)), Vector256.Create(ep.Max)),
            };
            return Unsafe.BitCast<Vector256<float>, TV>(x);
        }
        if (typeof(TV) == typeof(Vector512<float>))
        {
            var x = Unsafe.BitCast<TV, Vector512<float>>(v);
            x = ep.Kind switch
            {
                Activation.Relu => Avx512F.Max(x, Vector512<float>.Zero),
                Activation.LeakyRelu => Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(x, Vector512<float>.Zero), x, x * ep.Alpha),
                _ => Avx512F.Min(Avx512F.Max(x, Vector512.Create(ep.Min)), Vector512.Create(ep.Max)),
            };
            return Unsafe.BitCast<Vector512<float>, TV>(x);
        }
        if (typeof(TV) == typeof(Vector<float>))
        {
            var x = Unsafe.BitCast<TV, Vector<float>>(v);
            x = ep.Kind switch
            {
                Activation.Relu => Vector.ConditionalSelect(Vector.GreaterThan(x, Vector<float>.Zero), x, Vector<float>.Zero),
                Activation.LeakyRelu => Vector.ConditionalSelect(Vector.GreaterThanOrEqual(x, Vector<float>.Zero), x, x * ep.Alpha),
                _ => Vector.Min(Vector.Max(x, new Vector<float>(ep.Min)), new Vector<float>(ep.Max)),
            };
            return Unsafe.BitCast<Vector<float>, TV>(x);
        }
        float f = Unsafe.BitCast<TV, float>(v);
        f = ep.Apply(f);
        return Unsafe.BitCast<float, TV>(f);
    }
}
