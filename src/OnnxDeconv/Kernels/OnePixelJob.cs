using OnnxDeconv.Geometry;

namespace OnnxDeconv.Kernels;

/// <summary>
/// The one-pixel-input path's layout (<see cref="OnePixelJob{TS, TV}"/>): on a 1x1 (1x1x1, length-1) input every output
/// pixel sees at most one tap (o = k*d - pb), so the whole layer is one GEMM [images x Cin/group] x [Cin/group x
/// taps*Cout/group] whose right-hand side is the packed weight itself, read once in place: each (phase, channel block)
/// of the packed layout is [ci][tap][channel in block], a row-major [Cig x taps*block] matrix. The images are the
/// micro-kernel's rows (inputs broadcast), the packed weight's columns its vectors; the weight streams once for every
/// image (memory-bound at batch 1, compute-bound at batch 8). DCGAN's generator z layer (100->1024 k4 s1 on 1x1).
/// </summary>
internal sealed class OnePixelLayout
{
    /// <summary>Work units per group: (residue index into <see cref="Phases"/>, first output channel of the block).</summary>
    public (int Phase, int Cb)[] Units { get; }
    public Residue[] Phases { get; }
    /// <summary>[phase][tap]: output offset in one channel plane of the pixel the tap writes, or -1 (outside the output).</summary>
    public int[][] TapOut { get; }
    /// <summary>[phase]: output offsets of the phase's pixels no tap writes (bias only).</summary>
    public int[][] Unhit { get; }
    /// <summary>Images per micro-kernel call (its rows) and vectors of weight columns per call.</summary>
    public int Rows { get; }
    public int Vectors { get; }
    /// <summary>Input channels per pass over a block's columns (few images: short sequential streams through the weight).</summary>
    public int KSlice { get; }
    public int MaxColumns { get; }
    public long ScratchFloats { get; }

    private OnePixelLayout(Residue[] phases, int[][] tapOut, int[][] unhit, (int, int)[] units, int rows, int vectors, int kslice, int maxColumns, long scratch)
    {
        Phases = phases; TapOut = tapOut; Unhit = unhit; Units = units;
        Rows = rows; Vectors = vectors; KSlice = kslice; MaxColumns = maxColumns; ScratchFloats = scratch;
    }

    /// <summary>The layout when the input is one pixel (and the workspace stays within the output), else null.</summary>
    public static OnePixelLayout? TryCreate(ConvTransposeGeometry g, Residue[] all, int[] outStride, int cig, int cog, int block, KernelIsa isa, int lanes)
    {
        if (g.Axes.Any(a => a.Input != 1) || cig < 4) return null;
        var phases = all.Where(r => r.Pixels > 0).ToArray();
        if (phases.Length == 0) return null;
        int rank = g.Rank;
        var tapOut = new int[phases.Length][];
        var unhit = new int[phases.Length][];
        for (int p = 0; p < phases.Length; p++)
        {
            var res = phases[p];
            tapOut[p] = new int[res.Taps];
            var hit = new HashSet<int>();
            for (int t = 0; t < res.Taps; t++)
            {
                // The tap reads x[m - c] with m = M0 + q: only grid position q = c - M0 reads the one input pixel.
                int off = 0;
                bool inside = true;
                for (int a = 0; a < rank; a++)
                {
                    int q = res.TapC[t * rank + a] - res.M0[a];
                    if (q < 0 || q >= res.Q[a]) { inside = false; break; }
                    off += (res.O0[a] + q * (int)g.Axes[a].Stride) * outStride[a];
                }
                tapOut[p][t] = inside ? off : -1;
                if (inside) hit.Add(off);
            }
            var rest = new List<int>();
            for (int px = 0; px < res.Pixels; px++)
            {
                int rem = px, off = 0;
                for (int a = rank - 1; a >= 0; a--)
                {
                    int q = rem % res.Q[a];
                    rem /= res.Q[a];
                    off += (res.O0[a] + q * (int)g.Axes[a].Stride) * outStride[a];
                }
                if (!hit.Contains(off)) rest.Add(off);
            }
            unhit[p] = [.. rest];
        }
        var units = new List<(int, int)>();
        for (int p = 0; p < phases.Length; p++)
            for (int cb = 0; cb < cog; cb += block) units.Add((p, cb));
        // Accumulators: 24 of AVX-512's 32 registers, 12 of AVX2's 16; images as rows (up to 8), the rest as vectors.
        int budget = isa == KernelIsa.Avx512 ? 24 : 12;
        int rows = (int)Math.Min(g.Batch, isa == KernelIsa.Avx512 ? 8 : 6);
        int vectors = Math.Clamp(budget / rows, 1, 4);
        int maxColumns = phases.Max(r => r.Taps) * Math.Min(block, cog);
        // Few images: slices of 8 input channels keep the weight reads to 8 sequential streams (measured DCGAN z batch 1
        // 0.60 vs 0.47 ms for all 100 at once, batch 8 1.70 vs 1.65: noise-level); more images: one pass.
        int kslice = rows <= 2 ? Math.Min(cig, 8) : cig;
        long outputFloats = g.Batch * g.OutChannels * g.Axes.Aggregate(1L, (s, a) => s * a.Output);
        long scratch = (long)cig * rows + maxColumns + lanes + 16 + (long)rows * ((maxColumns + lanes - 1) / lanes * lanes + (long)vectors * lanes) + 16;
        if (scratch > Math.Max(outputFloats, 1 << 14)) return null;
        return new OnePixelLayout(phases, tapOut, unhit, [.. units], rows, vectors, kslice, maxColumns, scratch);
    }
}

/// <summary>
/// One item = one (group, phase, block of output channels) for every image: the block's packed weight [ci][tap*block]
/// is multiplied by the images' input channels (transposed into [ci][image] so the micro-kernel broadcasts them), one
/// pass of input-channel slices over all columns, accumulating in a tile; then each column (tap, channel) is stored to
/// its output pixel with bias and epilogue, and the pixels no tap writes get the bias.
/// </summary>
internal sealed unsafe class OnePixelJob<TS, TV> : DeconvJob where TS : struct, ISimd<TV> where TV : unmanaged
{
    [ThreadStatic] private static float[]? t_scratch;

    public override void Execute(int item)
    {
        var p = Plan;
        var l = p.OnePixel!;
        var g = p.Geometry;
        int perGroup = l.Units.Length;
        int grp = item / perGroup;
        var (ph, cb) = l.Units[item - grp * perGroup];
        var res = l.Phases[ph];
        int cig = p.Cig, cog = p.Cog, mr = Math.Min(p.Block, cog - cb), taps = res.Taps;
        long batch = g.Batch, outSpatial = p.OutSpatial;
        var ep = Epilogue;
        float* bg = B == null ? null : B + grp * cog;
        int[] unhit = l.Unhit[ph];
        if (unhit.Length > 0)
            for (long n = 0; n < batch; n++)
                for (int c = cb; c < cb + mr; c++)
                {
                    float v = ep.Apply(bg == null ? 0f : bg[c]);
                    float* yc = Y + (n * g.OutChannels + grp * cog + c) * outSpatial;
                    foreach (int off in unhit) yc[off] = v;
                }
        if (taps == 0) return;

        int cols = taps * mr, ln = TS.Lanes, full = cols / ln * ln, chunk = l.Vectors * ln;
        float* wb = W + grp * (long)cog * cig * p.KernelSpatial + res.WeightOffset + (long)cb * cig * taps;
        int[] tapOut = l.TapOut[ph];
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < l.ScratchFloats) t_scratch = scratch = new float[checked((int)l.ScratchFloats)];
        int zero = 0;
        fixed (float* fs = scratch)
        {
            float* xt = (float*)(((nint)fs + 63) & ~(nint)63);
            float* biasRow = xt + (long)cig * l.Rows;
            float* tile = biasRow + ((l.MaxColumns + ln - 1) / ln * ln + 15) / 16 * 16;
            if (bg != null)
                for (int c = 0; c < full; c++) biasRow[c] = bg[cb + c % mr];
            for (long n0 = 0; n0 < batch; n0 += l.Rows)
            {
                int rows = (int)Math.Min(l.Rows, batch - n0);
                for (int r = 0; r < rows; r++)
                {
                    float* xn = X + ((n0 + r) * g.InChannels + (long)grp * cig);
                    for (int ci = 0; ci < cig; ci++) xt[ci * rows + r] = xn[ci];
                }
                // Whole vectors of columns: slices of input channels outside, column chunks inside, so each slice reads
                // its rows of the weight front to back; a chunk's tile is [rows][its vectors].
                for (int k0 = 0; k0 < cig; k0 += l.KSlice)
                {
                    int kc = Math.Min(l.KSlice, cig - k0);
                    for (int c0 = 0; c0 < full; c0 += chunk)
                    {
                        int nv = Math.Min(l.Vectors, (full - c0) / ln);
                        MicroKernel<TS, TV>.Dispatch(rows, nv, wb + (long)k0 * cols + c0, &zero, 1, kc, cols,
                            xt + (long)k0 * rows, rows, tile + (long)c0 * rows, accumulate: k0 > 0);
                    }
                }
                for (int c0 = 0; c0 < full; c0 += chunk)
                {
                    int w = Math.Min(l.Vectors, (full - c0) / ln) * ln;
                    float* tc = tile + (long)c0 * rows;
                    // Bias (per column: channel c % mr) a vector at a time, the epilogue over the whole chunk, then
                    // plain scattered stores (a per-element epilogue call cost more than the GEMM: 131K outputs at batch 8).
                    if (bg != null)
                        for (int r = 0; r < rows; r++)
                            for (int j = 0; j < w; j += ln) TS.Store(tc + r * w + j, TS.Add(TS.Load(tc + r * w + j), TS.Load(biasRow + c0 + j)));
                    ep.ApplyInPlace(new Span<float>(tc, rows * w));
                    for (int r = 0; r < rows; r++)
                    {
                        float* yn = Y + ((n0 + r) * g.OutChannels + (long)grp * cog + cb) * outSpatial;
                        float* tr = tc + r * w;
                        int t = c0 / mr, ch = c0 - t * mr;
                        for (int j = 0; j < w; j++)
                        {
                            int off = tapOut[t];
                            if (off >= 0) yn[ch * outSpatial + off] = tr[j];
                            if (++ch == mr) { ch = 0; t++; }
                        }
                    }
                }
                // The last columns (fewer than a vector): scalar dot products.
                for (int c = full; c < cols; c++)
                    for (int r = 0; r < rows; r++)
                    {
                        float s = 0f;
                        for (int ci = 0; ci < cig; ci++) s += xt[ci * rows + r] * wb[(long)ci * cols + c];
                        int t = c / mr, ch = c - t * mr;
                        if (tapOut[t] < 0) continue;
                        Y[((n0 + r) * g.OutChannels + grp * cog + cb + ch) * outSpatial + tapOut[t]] = ep.Apply(s + (bg == null ? 0f : bg[cb + ch]));
                    }
            }
        }
    }
}
