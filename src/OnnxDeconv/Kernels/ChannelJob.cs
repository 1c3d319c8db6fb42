using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using OnnxDeconv.Geometry;

namespace OnnxDeconv.Kernels;

/// <summary>
/// Everything the channel-vectorised path derives from a geometry: for many output channels and a long contraction
/// (DCGAN 512->256 at 4x4: 16 pixels per phase, K = 512 x 4 taps), vectors run over output channels (the packed
/// weights' channel block is contiguous per (ci, tap)) and input values are broadcast. Each unit (up to
/// <see cref="UnitPixels"/> pixels of one phase) is gathered once per slice of input channels into a zero-padded panel
/// [pixel tile][ci][tap][NP pixels].
/// </summary>
internal sealed class ChannelLayout
{
    /// <summary>Output-channel vectors per register tile (x <see cref="Np"/> pixels).</summary>
    public const int Nv = 3;
    /// <summary>Pixels per register tile: 8 on AVX-512 (3 x 8 = 24 of 32 registers), 4 elsewhere (12 of 16).</summary>
    public int Np { get; }
    /// <summary>Per unit: pixel count rounded up to <see cref="Np"/>.</summary>
    public int[] Padded { get; }
    /// <summary>Per unit: [piece * 3] (tile, first pixel in the tile, length) of the gather's pieces.</summary>
    public int[][] Pieces { get; }
    /// <summary>
    /// Per unit: [(tap * pieces + piece) * 3] (start, j0, j1): the piece's valid pixels are [j0, j1) and its
    /// pixel j reads start + j (one contiguous copy with zero fill).
    /// </summary>
    public int[][] Runs { get; }
    /// <summary>Per unit: output offset of each pixel inside one channel plane.</summary>
    public int[][] OutOffset { get; }
    public int MaxPadded { get; }
    /// <summary>Extra floats per tile row, so rows of power-of-two channel counts do not all map to the same cache sets.</summary>
    public const int TileSkew = 16;
    /// <summary>Input channels per panel slice.</summary>
    public int CiSlice { get; }
    public long PanelFloats { get; }
    public long TileFloats { get; }
    /// <summary>Per-thread scratch (panel + tile + 16 floats of alignment slack).</summary>
    public long FloatsNeeded => PanelFloats + TileFloats + 16;

    /// <summary>Per unit (a range of at most <see cref="UnitPixels"/> pixels of one phase: one work item per channel split): its index in the plan's work list.</summary>
    public int[] UnitPhase { get; }
    /// <summary>Most pixels per unit: bounds the tile and the panel for large images.</summary>
    public const int UnitPixels = 256;

    public ChannelLayout(ConvTransposeGeometry g, Residue[] work, int[] inStride, int[] outStride, int cig, int channelRange, KernelIsa isa)
    {
        Np = isa == KernelIsa.Avx512 ? 8 : 4;
        int r = g.Rank;
        var axes = g.Axes;
        var units = new List<(int Phase, int P0, int P1)>();
        for (int i = 0; i < work.Length; i++)
        {
            // Equal units (a whole number of register tiles each) rather than full ones plus a small remainder.
            int px = work[i].Pixels, count = Math.Max(1, (px + UnitPixels - 1) / UnitPixels);
            int size = Math.Max(Np, ((px + count - 1) / count + Np - 1) / Np * Np);
            for (int a0 = 0; a0 < px || a0 == 0; a0 += size) units.Add((i, a0, Math.Min(px, a0 + size)));
        }
        int nu = units.Count;
        UnitPhase = units.Select(u => u.Phase).ToArray();
        Padded = new int[nu];
        OutOffset = new int[nu][];
        Runs = new int[nu][];
        Pieces = new int[nu][];
        int maxTaps = 1;
        var m = new int[r];
        for (int i = 0; i < nu; i++)
        {
            var res = work[units[i].Phase];
            int u0 = units[i].P0, upx = units[i].P1 - u0;
            int pp = (upx + Np - 1) / Np * Np;
            Padded[i] = pp;
            maxTaps = Math.Max(maxTaps, res.Taps);
            var src = new int[res.Taps * pp];
            Array.Fill(src, -1);
            var outOff = new int[upx];
            for (int j = 0; j < upx; j++)
            {
                int rem = u0 + j, o = 0;
                for (int a = r - 1; a >= 0; a--)
                {
                    int qa = rem % res.Q[a];
                    rem /= res.Q[a];
                    m[a] = res.M0[a] + qa;
                    o += (res.O0[a] + qa * (int)axes[a].Stride) * outStride[a];
                }
                outOff[j] = o;
                for (int t = 0; t < res.Taps; t++)
                {
                    int idx = 0;
                    for (int a = 0; a < r; a++)
                    {
                        int ia = m[a] - res.TapC[t * r + a];
                        if ((uint)ia >= (uint)axes[a].Input) { idx = -1; break; }
                        idx += ia * inStride[a];
                    }
                    src[t * pp + j] = idx;
                }
            }
            OutOffset[i] = outOff;
            // Pieces: the padded pixel range cut at tile boundaries, row starts (last axis) and the padding, so each
            // piece of each tap reads one contiguous run of a row (zeros around it where taps fall outside).
            var pieces = new List<int>();
            int ql = res.Q[r - 1];
            for (int a0 = 0; a0 < pp;)
            {
                int b0 = Math.Min(pp, (a0 / Np + 1) * Np);
                if (a0 < upx) b0 = Math.Min(b0, Math.Min(upx, ((u0 + a0) / ql + 1) * ql - u0));
                pieces.AddRange([a0 / Np, a0 % Np, b0 - a0]);
                a0 = b0;
            }
            int pc = pieces.Count / 3;
            var runs = new int[res.Taps * pc * 3];
            for (int t = 0; t < res.Taps; t++)
                for (int k = 0; k < pc; k++)
                {
                    int len = pieces[k * 3 + 2], b = t * pp + pieces[k * 3] * Np + pieces[k * 3 + 1], j0 = 0;
                    while (j0 < len && src[b + j0] < 0) j0++;
                    int j1 = j0;
                    while (j1 < len && src[b + j1] == src[b + j0] + (j1 - j0)) j1++;
                    int j2 = j1;
                    while (j2 < len && src[b + j2] < 0) j2++;
                    // A piece lies in one row, so each tap reads a contiguous, in-range stretch of that row.
                    if (j2 != len) throw new InvalidOperationException($"gather piece {k} of tap {t} is not one contiguous run");
                    int e = (t * pc + k) * 3;
                    runs[e] = j0 < len ? src[b + j0] - j0 : 0;
                    runs[e + 1] = j0;
                    runs[e + 2] = j1;
                }
            Pieces[i] = pieces.ToArray();
            Runs[i] = runs;
        }
        MaxPadded = Padded.Length == 0 ? Np : Padded.Max();
        TileFloats = (long)(channelRange + TileSkew) * MaxPadded;
        // The panel stays within 128 KB (L2-resident while every channel block streams over it) and, with the tile,
        // within the output's size (the workspace target).
        long outputFloats = g.Batch * g.OutChannels * axes.Aggregate(1L, (p, a) => p * a.Output);
        long perCi = (long)maxTaps * MaxPadded;
        long budget = Math.Min(32768, outputFloats - TileFloats);
        CiSlice = (int)Math.Clamp(budget / perCi, 1, cig);
        PanelFloats = CiSlice * perCi;
    }
}

/// <summary>Per-thread scratch of the channel-vectorised path, grown on first use and reused by every call.</summary>
internal sealed class ChannelScratch
{
    [ThreadStatic] private static ChannelScratch? t_current;

    public float[] Floats = [];

    public static ChannelScratch For(ChannelLayout c)
    {
        var s = t_current ??= new ChannelScratch();
        if (s.Floats.Length < c.FloatsNeeded) s.Floats = new float[checked((int)c.FloatsNeeded)];
        return s;
    }
}

/// <summary>
/// The channel-vectorised path: one item = (image, group, unit of a phase, range of whole channel blocks). Per slice of
/// input channels the unit's pixels are gathered into the panel; then per channel block (contiguous per (ci, tap) in the
/// packed weights) a register tile of 3 channel vectors x NP pixels contracts over (ci, tap), weights loaded as vectors
/// and input values broadcast. Partial sums wait in a [pixel][channel] tile; the last slice transposes them to NCHW
/// with bias and the activation. Channels past the block's last whole vector run through the same micro-kernel with
/// scalar "vectors" (one channel each).
/// </summary>
internal sealed unsafe class ChannelJob<TS, TV> : DeconvJob where TS : struct, ISimd<TV> where TV : unmanaged
{
    public override void Execute(int item)
    {
        var p = Plan;
        var cl = p.Channel!;
        var g = p.Geometry;
        int perIg = p.ItemsPerImageGroup;
        int ig = item / perIg, rem = item - ig * perIg;
        int split = rem % p.ChannelSplits, wi = rem / p.ChannelSplits;
        long n = ig / g.Group, grp = ig % g.Group;
        var res = p.Work[cl.UnitPhase[wi]];
        int cig = p.Cig, cog = p.Cog, block = p.Block;
        int c0 = split * p.BlocksPerSplit * block, c1 = Math.Min(cog, (split + 1) * p.BlocksPerSplit * block);
        float* xg = X + (n * g.InChannels + grp * cig) * p.InSpatial;
        float* yg = Y + (n * g.OutChannels + grp * cog) * p.OutSpatial;
        float* bg = B == null ? null : B + grp * cog;
        var ep = Epilogue;
        int[] outOff = cl.OutOffset[wi];
        if (res.Taps == 0)
        {
            // Stride larger than the dilated kernel's reach: these outputs only get the bias.
            for (int c = c0; c < c1; c++)
            {
                float v = ep.Apply(bg == null ? 0f : bg[c]);
                float* yc = yg + c * p.OutSpatial;
                foreach (int o in outOff) yc[o] = v;
            }
            return;
        }
        float* wph = W + grp * (long)cog * cig * p.KernelSpatial + res.WeightOffset;
        int np = cl.Np, pp = cl.Padded[wi], tiles = pp / np, taps = res.Taps, l = TS.Lanes, ldt = c1 - c0 + ChannelLayout.TileSkew;
        var scratch = ChannelScratch.For(cl);
        fixed (float* fs = scratch.Floats)
        fixed (int* runs = cl.Runs[wi], pieces = cl.Pieces[wi])
        {
            float* panel = (float*)(((nint)fs + 63) & ~(nint)63);
            float* tile = panel + cl.PanelFloats;
            for (int s0 = 0; s0 < cig; s0 += cl.CiSlice)
            {
                int sc = Math.Min(cl.CiSlice, cig - s0), kc = sc * taps;
                Gather(xg + (long)s0 * p.InSpatial, p.InSpatial, pieces, cl.Pieces[wi].Length / 3, runs, panel, sc, taps, np);
                bool acc = s0 > 0;
                for (int cb = c0; cb < c1; cb += block)
                {
                    int bw = Math.Min(block, cog - cb);
                    float* wb = wph + (long)cb * cig * taps + (long)s0 * taps * bw;
                    float* tb = tile + (cb - c0);
                    int fv = bw / l;
                    for (int v0 = 0; v0 < fv; v0 += ChannelLayout.Nv)
                    {
                        int nv = Math.Min(ChannelLayout.Nv, fv - v0);
                        for (int jt = 0; jt < tiles; jt++)
                            ChannelMicroKernel<TS, TV>.Dispatch(nv, np, wb + v0 * l, bw, panel + (long)jt * kc * np, kc, tb + (long)jt * np * ldt + v0 * l, ldt, acc);
                    }
                    for (int ch = fv * l; ch < bw; ch += ChannelLayout.Nv)
                    {
                        int nv = Math.Min(ChannelLayout.Nv, bw - ch);
                        for (int jt = 0; jt < tiles; jt++)
                            ChannelMicroKernel<ScalarOps, float>.Dispatch(nv, np, wb + ch, bw, panel + (long)jt * kc * np, kc, tb + (long)jt * np * ldt + ch, ldt, acc);
                    }
                }
            }
            // Transposing store: tile [pixel][channel] -> y[channel][pixel position], bias and activation once per output.
            // A vector of channels at a time over all pixels: the tile is read along its rows, and the lines written
            // (one output row per channel of the vector) spread over many cache sets, where a whole channel range at
            // one pixel would hit a few sets only (output planes of 1 KB multiples, e.g. 1D 512->256 k16 s8).
            int pixels = outOff.Length;
            long os = p.OutSpatial;
            bool relu = ep.Kind == Activation.Relu, otherEp = ep.Kind is not (Activation.None or Activation.Relu);
            int cv = c0;
            for (; cv + l <= c1; cv += l)
            {
                TV bv = bg == null ? default : TS.Load(bg + cv);
                float* yc = yg + cv * os;
                for (int j = 0; j < pixels; j++)
                {
                    float* tr = tile + (long)j * ldt + (cv - c0);
                    TV v = TS.Add(TS.Load(tr), bv);
                    if (relu) v = TS.Relu(v);
                    TS.Store(tr, v);
                    float* yo = yc + outOff[j];
                    // The tile row is scratch: the other activations in place on its vector of channels (vectorised).
                    if (otherEp) ep.ApplyInPlace(new Span<float>(tr, l));
                    for (int i = 0; i < l; i++) yo[i * os] = tr[i];
                }
            }
            for (int c = cv; c < c1; c++)
            {
                float bs = bg == null ? 0f : bg[c];
                float* yc = yg + c * os;
                for (int j = 0; j < pixels; j++) yc[outOff[j]] = ep.Apply(tile[(long)j * ldt + (c - c0)] + bs);
            }
        }
    }

    /// <summary>
    /// Panel [pixel tile][ci][tap][np] of <paramref name="sc"/> input channels from <paramref name="xs"/>, piece by piece
    /// (<see cref="ChannelLayout.Pieces"/>), each piece for every channel in turn (its shape is the same for all). A run
    /// with zeros around it is one vector copy of the piece, masked to its valid pixels; the lanes outside the run read
    /// neighbouring inputs, so that is done only where the whole vector lies inside X's buffer (else per pixel).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Gather(float* xs, long plane, int* pieces, int pc, int* runs, float* panel, int sc, int taps, int np)
    {
        long tileStride = (long)sc * taps * np, step = (long)taps * np;
        for (int t = 0; t < taps; t++)
        {
            int* rt = runs + t * pc * 3;
            for (int k = 0; k < pc; k++, rt += 3)
            {
                int len = pieces[k * 3 + 2], j0 = rt[1], j1 = rt[2];
                float* d = panel + t * np + pieces[k * 3] * tileStride + pieces[k * 3 + 1];
                float* sp = xs + rt[0];
                if (j0 >= j1)
                    for (int ci = 0; ci < sc; ci++, d += step)
                        for (int j = 0; j < len; j++) d[j] = 0f;
                else if (len == 8 && sp >= X && sp + (sc - 1) * plane + 8 <= XEnd)
                {
                    if (j0 == 0 && j1 == 8)
                        for (int ci = 0; ci < sc; ci++, d += step, sp += plane) Vector256.Store(Vector256.Load(sp), d);
                    else
                    {
                        var lane = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7);
                        var m = Vector256.GreaterThanOrEqual(lane, Vector256.Create(j0)) & Vector256.LessThan(lane, Vector256.Create(j1));
                        for (int ci = 0; ci < sc; ci++, d += step, sp += plane)
                            Vector256.Store((Vector256.Load(sp).AsInt32() & m).AsSingle(), d);
                    }
                }
                else if (len == 4 && sp >= X && sp + (sc - 1) * plane + 4 <= XEnd)
                {
                    if (j0 == 0 && j1 == 4)
                        for (int ci = 0; ci < sc; ci++, d += step, sp += plane) Vector128.Store(Vector128.Load(sp), d);
                    else
                    {
                        var lane = Vector128.Create(0, 1, 2, 3);
                        var m = Vector128.GreaterThanOrEqual(lane, Vector128.Create(j0)) & Vector128.LessThan(lane, Vector128.Create(j1));
                        for (int ci = 0; ci < sc; ci++, d += step, sp += plane)
                            Vector128.Store((Vector128.Load(sp).AsInt32() & m).AsSingle(), d);
                    }
                }
                else
                    for (int ci = 0; ci < sc; ci++, d += step, sp += plane)
                    {
                        for (int j = 0; j < j0; j++) d[j] = 0f;
                        for (int j = j0; j < j1; j++) d[j] = sp[j];
                        for (int j = j1; j < len; j++) d[j] = 0f;
                    }
            }
        }
    }
}

/// <summary>
/// Register tile of the channel-vectorised path: <typeparamref name="TNv"/> vectors of output channels x
/// <typeparamref name="TNp"/> pixels, contracting over k = (ci, tap): weights w[k*wStride + v*Lanes ..] as vectors,
/// inputs x[k*TNp + j] broadcast. Result (or sum with the tile's values) goes to tile[j*ldt + v*Lanes ..].
/// </summary>
internal static unsafe class ChannelMicroKernel<TS, TV> where TS : struct, ISimd<TV> where TV : unmanaged
{
    private const int PrefetchSteps = 64;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run<TNv, TNp>(float* w, int wStride, float* x, int k, float* tile, int ldt, bool accumulate)
        where TNv : struct, IConst where TNp : struct, IConst
    {
        int l = TS.Lanes;
        TV a00 = default, a01 = default, a02 = default, a03 = default, a04 = default, a05 = default, a06 = default, a07 = default;
        TV a10 = default, a11 = default, a12 = default, a13 = default, a14 = default, a15 = default, a16 = default, a17 = default;
        TV a20 = default, a21 = default, a22 = default, a23 = default, a24 = default, a25 = default, a26 = default, a27 = default;
        int np = TNp.Value;
        for (int i = 0; i < k; i++)
        {
            if (Sse.IsSupported)
            {
                // The weights are streamed once per call (a few MB: from memory when other work ran in between);
                // prefetching ~6 KB ahead keeps enough lines in flight for the FMAs to hide the memory latency.
                float* pf = w + PrefetchSteps * wStride;
                Sse.Prefetch0(pf);
                if (TNv.Value > 1) Sse.Prefetch0(pf + 16);
                if (TNv.Value > 2) Sse.Prefetch0(pf + 32);
            }
            TV w0 = TS.Load(w);
            TV w1 = TNv.Value > 1 ? TS.Load(w + l) : default;
            TV w2 = TNv.Value > 2 ? TS.Load(w + 2 * l) : default;
            TV xv;
            xv = TS.Splat(x[0]); a00 = TS.MulAdd(w0, xv, a00); if (TNv.Value > 1) a10 = TS.MulAdd(w1, xv, a10); if (TNv.Value > 2) a20 = TS.MulAdd(w2, xv, a20);
            xv = TS.Splat(x[1]); a01 = TS.MulAdd(w0, xv, a01); if (TNv.Value > 1) a11 = TS.MulAdd(w1, xv, a11); if (TNv.Value > 2) a21 = TS.MulAdd(w2, xv, a21);
            xv = TS.Splat(x[2]); a02 = TS.MulAdd(w0, xv, a02); if (TNv.Value > 1) a12 = TS.MulAdd(w1, xv, a12); if (TNv.Value > 2) a22 = TS.MulAdd(w2, xv, a22);
            xv = TS.Splat(x[3]); a03 = TS.MulAdd(w0, xv, a03); if (TNv.Value > 1) a13 = TS.MulAdd(w1, xv, a13); if (TNv.Value > 2) a23 = TS.MulAdd(w2, xv, a23);
            if (TNp.Value > 4)
            {
                xv = TS.Splat(x[4]); a04 = TS.MulAdd(w0, xv, a04); if (TNv.Value > 1) a14 = TS.MulAdd(w1, xv, a14); if (TNv.Value > 2) a24 = TS.MulAdd(w2, xv, a24);
                xv = TS.Splat(x[5]); a05 = TS.MulAdd(w0, xv, a05); if (TNv.Value > 1) a15 = TS.MulAdd(w1, xv, a15); if (TNv.Value > 2) a25 = TS.MulAdd(w2, xv, a25);
                xv = TS.Splat(x[6]); a06 = TS.MulAdd(w0, xv, a06); if (TNv.Value > 1) a16 = TS.MulAdd(w1, xv, a16); if (TNv.Value > 2) a26 = TS.MulAdd(w2, xv, a26);
                xv = TS.Splat(x[7]); a07 = TS.MulAdd(w0, xv, a07); if (TNv.Value > 1) a17 = TS.MulAdd(w1, xv, a17); if (TNv.Value > 2) a27 = TS.MulAdd(w2, xv, a27);
            }
            w += wStride;
            x += np;
        }
        Put<TNv>(tile + 0L * ldt, l, accumulate, a00, a10, a20);
        Put<TNv>(tile + 1L * ldt, l, accumulate, a01, a11, a21);
        Put<TNv>(tile + 2L * ldt, l, accumulate, a02, a12, a22);
        Put<TNv>(tile + 3L * ldt, l, accumulate, a03, a13, a23);
        if (TNp.Value > 4)
        {
            Put<TNv>(tile + 4L * ldt, l, accumulate, a04, a14, a24);
            Put<TNv>(tile + 5L * ldt, l, accumulate, a05, a15, a25);
            Put<TNv>(tile + 6L * ldt, l, accumulate, a06, a16, a26);
            Put<TNv>(tile + 7L * ldt, l, accumulate, a07, a17, a27);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put<TNv>(float* t, int l, bool accumulate, TV v0, TV v1, TV v2) where TNv : struct, IConst
    {
        if (accumulate)
        {
            v0 = TS.Add(v0, TS.Load(t));
            if (TNv.Value > 1) v1 = TS.Add(v1, TS.Load(t + l));
            if (TNv.Value > 2) v2 = TS.Add(v2, TS.Load(t + 2 * l));
        }
        TS.Store(t, v0);
        if (TNv.Value > 1) TS.Store(t + l, v1);
        if (TNv.Value > 2) TS.Store(t + 2 * l, v2);
    }

    /// <summary>Runtime (vectors, pixels) to the matching specialisation.</summary>
    public static void Dispatch(int nv, int np, float* w, int wStride, float* x, int k, float* tile, int ldt, bool accumulate)
    {
        if (np == 8) ByNv<C8>(nv, w, wStride, x, k, tile, ldt, accumulate);
        else if (np == 4) ByNv<C4>(nv, w, wStride, x, k, tile, ldt, accumulate);
        else throw new ArgumentOutOfRangeException(nameof(np), np, "4 or 8 pixels");
    }

    private static void ByNv<TNp>(int nv, float* w, int wStride, float* x, int k, float* tile, int ldt, bool accumulate) where TNp : struct, IConst
    {
        switch (nv)
        {
            case 1: Run<C1, TNp>(w, wStride, x, k, tile, ldt, accumulate); break;
            case 2: Run<C2, TNp>(w, wStride, x, k, tile, ldt, accumulate); break;
            case 3: Run<C3, TNp>(w, wStride, x, k, tile, ldt, accumulate); break;
            default: throw new ArgumentOutOfRangeException(nameof(nv), nv, "1..3 vectors");
        }
    }
}
