using System.Runtime.CompilerServices;

namespace OnnxDeconv.Kernels;

/// <summary>Per-thread scratch (pixel panel, result tile, index tables): grown on first use, then reused by every call.</summary>
internal sealed class Scratch
{
    [ThreadStatic] private static Scratch? t_current;

    public float[] Floats = [];
    public int[] Ints = [];

    public static Scratch For(DeconvPlan p, out int intsNeeded)
    {
        var s = t_current ??= new Scratch();
        intsNeeded = checked(p.MaxTaps * p.PixelBlock + p.MaxTaps + 2 * p.PixelBlock + p.Rank + 3 * p.MaxTaps + p.FusedPhases * p.MaxTaps + 2 * p.PixelBlock
            + (p.Padded ? (p.PadRows + 2) * p.FusedPhases * p.MaxTaps : 0));
        // 16 floats of slack so the panel can start on a 64-byte boundary.
        long floats = p.ScratchFloats + 16;
        if (s.Floats.Length < floats) s.Floats = new float[checked((int)floats)];
        if (s.Ints.Length < intsNeeded) s.Ints = new int[intsNeeded];
        return s;
    }
}

/// <summary>
/// One <see cref="DeconvKernel.Run"/> call's arguments plus a cached delegate, so handing work to
/// <see cref="IParallelFor"/> allocates nothing. Jobs are pooled per plan; each item writes a disjoint set of outputs
/// (one image, one group, one pixel block of every phase, one range of whole output-channel blocks).
/// </summary>
internal abstract unsafe class DeconvJob
{
    public readonly Action<int> Body;
    public DeconvPlan Plan = null!;
    public Epilogue Epilogue;
    public float* X, W, B, Y;
    /// <summary>End of X's buffer: reads of whole vectors that may overrun a run stay inside it.</summary>
    public float* XEnd;

    protected DeconvJob() => Body = Execute;

    public abstract void Execute(int item);

    public static DeconvJob Create(KernelIsa isa, DeconvPlan plan) => plan.OnePixel is not null ? isa switch
    {
        KernelIsa.Avx512 => new OnePixelJob<Avx512Ops, System.Runtime.Intrinsics.Vector512<float>>(),
        KernelIsa.Avx2 => new OnePixelJob<Avx2Ops, System.Runtime.Intrinsics.Vector256<float>>(),
        KernelIsa.Vector => new OnePixelJob<VectorOps, System.Numerics.Vector<float>>(),
        _ => new OnePixelJob<ScalarOps, float>(),
    } : plan.Gemm is not null ? isa switch
    {
        KernelIsa.Avx512 => new PhaseGemmJob<Avx512Ops, System.Runtime.Intrinsics.Vector512<float>>(),
        KernelIsa.Avx2 => new PhaseGemmJob<Avx2Ops, System.Runtime.Intrinsics.Vector256<float>>(),
        KernelIsa.Vector => new PhaseGemmJob<VectorOps, System.Numerics.Vector<float>>(),
        _ => new PhaseGemmJob<ScalarOps, float>(),
    } : plan.Channel is not null ? isa switch
    {
        KernelIsa.Avx512 => new ChannelJob<Avx512Ops, System.Runtime.Intrinsics.Vector512<float>>(),
        KernelIsa.Avx2 => new ChannelJob<Avx2Ops, System.Runtime.Intrinsics.Vector256<float>>(),
        KernelIsa.Vector => new ChannelJob<VectorOps, System.Numerics.Vector<float>>(),
        _ => new ChannelJob<ScalarOps, float>(),
    } : (isa, plan.Depthwise) switch
    {
        (KernelIsa.Avx512, false) => new DeconvJob<Avx512Ops, System.Runtime.Intrinsics.Vector512<float>>(),
        (KernelIsa.Avx2, false) => new DeconvJob<Avx2Ops, System.Runtime.Intrinsics.Vector256<float>>(),
        (KernelIsa.Vector, false) => new DeconvJob<VectorOps, System.Numerics.Vector<float>>(),
        (_, false) => new DeconvJob<ScalarOps, float>(),
        (KernelIsa.Avx512, true) => new DepthwiseJob<Avx512Ops, System.Runtime.Intrinsics.Vector512<float>>(),
        (KernelIsa.Avx2, true) => new DepthwiseJob<Avx2Ops, System.Runtime.Intrinsics.Vector256<float>>(),
        (KernelIsa.Vector, true) => new DepthwiseJob<VectorOps, System.Numerics.Vector<float>>(),
        (_, true) => new DepthwiseJob<ScalarOps, float>(),
    };
}

internal sealed unsafe class DeconvJob<TS, TV> : DeconvJob where TS : struct, ISimd<TV> where TV : unmanaged
{
    /// <summary>Pointers and tables for one work item (kept in a struct so helpers take it by reference).</summary>
    private struct Item
    {
        public Residue Res;
        public float* Xg, Yg, Wg, Bg, Panel, Tile;
        public int* Gidx, TapOff, OutOff, Pend, M, RunStart;
        public int CbStart, CbEnd;
        /// <summary>Direct chunks: output j is at OutBase + j*OutStep (no offset table lookups); -1 = use OutOff.</summary>
        public int OutBase, OutStep;
        /// <summary>Fused last-axis phases (<see cref="DeconvPlan.FusedGroups"/>): the group; Lead computes its direct chunks.</summary>
        public FusedGroup? Group;
        public bool Lead;
        /// <summary>The group's packed weights (every phase's <see cref="Residue.WeightOffset"/> is relative to it).</summary>
        public float* WBase;
        /// <summary>Fused: per phase of the group, MaxTaps tap offsets.</summary>
        public int* FusedTapOff;
        /// <summary>Fused chunk: output offset (and, for whole-row chunks, input offset) of each row segment.</summary>
        public int* SegOut, SegIn;
        public int SegCount;
        /// <summary>Pixels per row segment of a fused chunk (segment sg's tile values start at sg * SegLen).</summary>
        public int SegLen;
        /// <summary>Padded chunks: [row * shifts + shift] input offset of the row segment's first pixel (may be negative), or <see cref="Outside"/>.</summary>
        public int* PadBase;
    }

    public override void Execute(int item)
    {
        var p = Plan;
        var g = p.Geometry;
        int perIg = p.ItemsPerImageGroup;
        int ig = item / perIg, rem = item - ig * perIg;
        long n = ig / g.Group, grp = ig % g.Group;
        int split = rem % p.ChannelSplits;
        rem /= p.ChannelSplits;
        int block = rem;
        int px0 = block * p.ItemPixels;
        if (p.FusedGroups is { } groups)
        {
            // The phases of a group have the same pixel grid: the lead computes the shared interior chunks of all of
            // them, then each phase (lead included) computes only its own border pixels.
            foreach (var group in groups)
            {
                var phases = group.Phases;
                if (px0 >= phases[0].Pixels) continue;
                for (int k = 0; k < phases.Length; k++)
                    Phase(phases[k], n, grp, split, px0, Math.Min(px0 + p.ItemPixels, phases[0].Pixels), group, k == 0);
            }
            return;
        }
        foreach (var res in p.Work)
        {
            if (px0 >= res.Pixels) continue;
            Phase(res, n, grp, split, px0, Math.Min(px0 + p.ItemPixels, res.Pixels));
        }
    }

    private void Phase(Residue res, long n, long grp, int split, int px0, int px1, FusedGroup? group = null, bool lead = false)
    {
        var p = Plan;
        var g = p.Geometry;
        var it = new Item
        {
            Res = res,
            Xg = X + (n * g.InChannels + grp * p.Cig) * p.InSpatial,
            Yg = Y + (n * g.OutChannels + grp * p.Cog) * p.OutSpatial,
            WBase = W + grp * (long)p.Cog * p.Cig * p.KernelSpatial,
            Wg = W + grp * (long)p.Cog * p.Cig * p.KernelSpatial + res.WeightOffset,
            Group = group,
            Lead = lead,
            Bg = B == null ? null : B + grp * p.Cog,
            CbStart = split * p.BlocksPerSplit * p.Block,
            CbEnd = Math.Min(p.Cog, (split + 1) * p.BlocksPerSplit * p.Block),
        };
        if (res.Taps == 0)
        {
            BiasOnly(ref it, px0, px1);
            return;
        }

        var scratch = Scratch.For(p, out _);
        int nb = p.PixelBlock, mt = p.MaxTaps;
        fixed (float* fs = scratch.Floats)
        fixed (int* ints = scratch.Ints)
        {
            float* aligned = (float*)(((nint)fs + 63) & ~(nint)63);
            it.Panel = aligned;
            it.Tile = aligned + p.PanelFloats;
            it.Gidx = ints;
            it.TapOff = ints + mt * nb;
            it.OutOff = it.TapOff + mt;
            it.Pend = it.OutOff + nb;
            it.M = it.Pend + nb;
            it.RunStart = it.M + p.Rank;
            it.FusedTapOff = it.RunStart + 3 * mt;
            it.SegOut = it.FusedTapOff + p.FusedPhases * mt;
            it.SegIn = it.SegOut + nb;
            it.PadBase = it.SegIn + nb;
            it.OutStep = -1;
            if (p.Padded) { if (lead) PaddedWalk(ref it, px0, px1); }
            else Walk(ref it, px0, px1);
        }
    }

    /// <summary>
    /// Visits the item's pixels row by row (rows of the residue grid along the last axis). Runs where every tap is in
    /// range read x in place (direct); the rest (borders, short rows) are gathered NB at a time into a zero-padded panel.
    /// </summary>
    private void Walk(ref Item it, int px0, int px1)
    {
        var p = Plan;
        var res = it.Res;
        var axes = p.Geometry.Axes;
        int r = p.Rank, last = r - 1, nb = p.PixelBlock;
        int ql = res.Q[last];
        int inLast = (int)axes[last].Input, sLast = (int)axes[last].Stride;
        int pending = 0;
        int px = px0;
        if (p.FusedRows > 1 && it.Group is not null)
        {
            // Whole-row chunks (px0 is a multiple of the block, so chunks start on a row); the rest goes through the panel.
            for (; px + nb <= px1; px += nb)
                if (it.Lead) FusedRowChunk(ref it, px / ql);
            for (; px < px1; px++) Pend(ref it, ref pending, px);
            if (pending > 0) Panel(ref it, pending);
            return;
        }
        while (px < px1)
        {
            int qStart = px % ql, rowStart = px - qStart;
            int segEnd = Math.Min(rowStart + ql, px1);
            int qEnd = qStart + (segEnd - px);
            if ((p.Direct || it.Group is not null) && qEnd - qStart >= nb)
            {
                int rowIdx = px / ql;
                bool inside = true;
                int inBase = 0, outBase = 0;
                for (int a = last - 1; a >= 0; a--)
                {
                    int qa = rowIdx % res.Q[a];
                    rowIdx /= res.Q[a];
                    int m = res.M0[a] + qa;
                    if (m - res.CMax[a] < 0 || m - res.CMin[a] >= axes[a].Input) inside = false;
                    inBase += m * p.InStride[a];
                    outBase += (res.O0[a] + qa * (int)axes[a].Stride) * p.OutStride[a];
                }
                int lo = Math.Max(qStart, res.CMax[last] - res.M0[last]);
                int hi = Math.Min(qEnd, inLast + res.CMin[last] - res.M0[last]);
                if (it.Group is { } grp)
                {
                    // Fused: the chunks every phase of the group can read in place (same range on every pass).
                    foreach (var sib in grp.Phases)
                    {
                        lo = Math.Max(lo, sib.CMax[last] - sib.M0[last]);
                        hi = Math.Min(hi, inLast + sib.CMin[last] - sib.M0[last]);
                    }
                }
                if (inside && hi - lo >= nb && it.Group is not null)
                {
                    for (int q = qStart; q < lo; q++) Pend(ref it, ref pending, rowStart + q);
                    if (it.Lead) FusedChunks(ref it, inBase, outBase, lo, hi);
                    for (int q = hi; q < qEnd; q++) Pend(ref it, ref pending, rowStart + q);
                    px = segEnd;
                    continue;
                }
                if (inside && hi - lo >= nb)
                {
                    for (int q = qStart; q < lo; q++) Pend(ref it, ref pending, rowStart + q);
                    int qd = lo;
                    for (bool tail = false; qd < hi; qd += nb)
                    {
                        // The interior's remainder: one more chunk ending exactly at hi, overlapping the previous one
                        // (those outputs are recomputed and rewritten with the same values) instead of the slow panel.
                        if (qd + nb > hi)
                        {
                            if (tail) break;
                            qd = hi - nb;
                            tail = true;
                        }
                        int x0 = inBase + res.M0[last] + qd;
                        for (int t = 0; t < res.Taps; t++) it.TapOff[t] = x0 - res.TapInOffset[t];
                        it.OutBase = outBase + res.O0[last] + qd * sLast;
                        it.OutStep = sLast;
                        for (int c0 = 0; c0 < p.Cig; c0 += p.DirectSlice)
                            Compute(ref it, it.Xg + c0 * p.InSpatial, p.InSpatial, nb, c0, Math.Min(p.DirectSlice, p.Cig - c0));
                        it.OutStep = -1;
                    }
                    for (int q = qd; q < qEnd; q++) Pend(ref it, ref pending, rowStart + q);
                    px = segEnd;
                    continue;
                }
            }
            for (int q = qStart; q < qEnd; q++) Pend(ref it, ref pending, rowStart + q);
            px = segEnd;
        }
        if (pending > 0) Panel(ref it, pending);
    }

    /// <summary>
    /// Lead phase of a fused group: chunks of NB pixels over [lo, hi) of one row for every phase of the group (the last
    /// chunk overlaps the previous one rather than leaving a remainder, as in <see cref="Walk"/>). The chunk's input
    /// (every shift any tap reads) is copied once per slice of input channels into the panel, contiguous and unaliased.
    /// </summary>
    private void FusedChunks(ref Item it, int inBase, int outBase, int lo, int hi)
    {
        var p = Plan;
        var fg = it.Group!;
        int nb = p.PixelBlock, mt = p.MaxTaps, s = fg.Phases.Length, shifts = fg.Shifts.Length, l = TS.Lanes;
        for (int k = 0; k < s; k++)
            for (int t = 0; t < fg.Phases[k].Taps; t++) it.FusedTapOff[k * mt + t] = fg.TapShift[k][t] * nb;
        it.SegCount = 1;
        it.SegLen = nb;
        for (int qd = lo; qd < hi; qd += nb)
        {
            if (qd + nb > hi) qd = hi - nb;
            // Lane k of the group sits at output O0 = k, so pixel q of every phase fills the run [q*s, q*s + s).
            it.SegOut[0] = outBase + qd * s;
            float* x0 = it.Xg + inBase + qd;
            for (int c0 = 0; c0 < p.Cig; c0 += p.PackSlice)
            {
                int cc = Math.Min(p.PackSlice, p.Cig - c0);
                float* dst = it.Panel;
                for (int ci = 0; ci < cc; ci++)
                {
                    float* xc = x0 + (c0 + ci) * p.InSpatial;
                    for (int d = 0; d < shifts; d++, dst += nb)
                    {
                        float* src = xc + fg.Shifts[d];
                        for (int j = 0; j < nb; j += l) TS.Store(dst + j, TS.Load(src + j));
                    }
                }
                ComputeFused(ref it, it.Panel, (long)shifts * nb, c0, cc);
            }
        }
    }

    /// <summary>
    /// Lead phase of a fused group whose rows are interior end to end: one chunk of <see cref="DeconvPlan.FusedRows"/>
    /// whole rows from <paramref name="row0"/>, packed side by side into the panel and stored row by row.
    /// </summary>
    private void FusedRowChunk(ref Item it, int row0)
    {
        var p = Plan;
        var fg = it.Group!;
        var res = it.Res;
        var axes = p.Geometry.Axes;
        int last = p.Rank - 1, nb = p.PixelBlock, mt = p.MaxTaps, s = fg.Phases.Length, shifts = fg.Shifts.Length, l = TS.Lanes;
        int rows = p.FusedRows, ql = res.Q[last];
        for (int k = 0; k < s; k++)
            for (int t = 0; t < fg.Phases[k].Taps; t++) it.FusedTapOff[k * mt + t] = fg.TapShift[k][t] * nb;
        for (int i = 0; i < rows; i++)
        {
            int rowIdx = row0 + i, inBase = 0, outBase = 0;
            for (int a = last - 1; a >= 0; a--)
            {
                int qa = rowIdx % res.Q[a];
                rowIdx /= res.Q[a];
                inBase += (res.M0[a] + qa) * p.InStride[a];
                outBase += (res.O0[a] + qa * (int)axes[a].Stride) * p.OutStride[a];
            }
            it.SegIn[i] = inBase;
            it.SegOut[i] = outBase;
        }
        it.SegCount = rows;
        it.SegLen = ql;
        for (int c0 = 0; c0 < p.Cig; c0 += p.PackSlice)
        {
            int cc = Math.Min(p.PackSlice, p.Cig - c0);
            float* dst = it.Panel;
            for (int ci = 0; ci < cc; ci++)
            {
                float* xc = it.Xg + (c0 + ci) * p.InSpatial;
                for (int d = 0; d < shifts; d++, dst += nb)
                    for (int i = 0; i < rows; i++)
                    {
                        float* src = xc + it.SegIn[i] + fg.Shifts[d];
                        for (int j = 0; j < ql; j += l) TS.Store(dst + i * ql + j, TS.Load(src + j));
                    }
            }
            ComputeFused(ref it, it.Panel, (long)shifts * nb, c0, cc);
        }
    }

    /// <summary>
    /// Padded mode (<see cref="DeconvPlan.Padded"/>): the item's rows [px0, px1) (whole rows) in chunks of
    /// <see cref="DeconvPlan.PadRows"/> rows, or of one block inside longer rows (the last one overlapping the previous).
    /// </summary>
    /// <summary>Marks a padded chunk row whose leading-axis input position is outside x (read as zeros).</summary>
    private const int Outside = int.MinValue;

    private void PaddedWalk(ref Item it, int px0, int px1)
    {
        var p = Plan;
        int ql = it.Res.Q[p.Rank - 1], nb = p.PixelBlock;
        int row0 = px0 / ql, row1 = (px1 + ql - 1) / ql;
        if (ql <= nb)
        {
            for (int row = row0; row < row1; row += p.PadRows) PaddedChunk(ref it, row, Math.Min(p.PadRows, row1 - row), 0);
            return;
        }
        for (int row = row0; row < row1; row++)
            for (int qd = 0; qd < ql; qd += nb)
                PaddedChunk(ref it, row, 1, Math.Min(qd, ql - nb));
    }

    /// <summary>
    /// One padded chunk: <paramref name="rows"/> rows from <paramref name="row0"/>, pixels [q0, q0 + PadLen) of each,
    /// packed per input channel slice as [ci][shift][pixel] with zeros wherever a shift reads outside x, then computed and
    /// stored like a fused interior chunk.
    /// </summary>
    private void PaddedChunk(ref Item it, int row0, int rows, int q0)
    {
        var p = Plan;
        var fg = it.Group!;
        var res = it.Res;
        var axes = p.Geometry.Axes;
        int last = p.Rank - 1, nb = p.PixelBlock, mt = p.MaxTaps, s = fg.Phases.Length, shifts = fg.Shifts.Length, l = TS.Lanes;
        int len = p.PadLen, inLast = (int)axes[last].Input;
        for (int k = 0; k < s; k++)
            for (int t = 0; t < fg.Phases[k].Taps; t++) it.FusedTapOff[k * mt + t] = fg.TapShift[k][t] * nb;
        for (int i = 0; i < rows; i++)
        {
            int rowIdx = row0 + i, outBase = 0;
            int* pb = it.PadBase + i * shifts;
            for (int d = 0; d < shifts; d++) pb[d] = 0;
            for (int a = last - 1; a >= 0; a--)
            {
                int qa = rowIdx % res.Q[a];
                rowIdx /= res.Q[a];
                int m = res.M0[a] + qa;
                outBase += (res.O0[a] + qa * (int)axes[a].Stride) * p.OutStride[a];
                for (int d = 0; d < shifts; d++)
                {
                    if (pb[d] == Outside) continue;
                    int ia = m - fg.ShiftLead[d * last + a];
                    pb[d] = (uint)ia < (uint)axes[a].Input ? pb[d] + ia * p.InStride[a] : Outside;
                }
            }
            it.SegOut[i] = outBase + q0 * s;
        }
        it.SegCount = rows;
        it.SegLen = len;
        if (p.RowPanel)
        {
            RowPanelChunk(ref it, q0);
            return;
        }
        // Per (row, shift): source offset of the segment (rows outside x: Outside) and its valid pixels [jlo, jhi), the same
        // for every input channel; a whole-vector in-range segment is a plain copy.
        int* lo = it.PadBase + rows * shifts, hi = lo + shifts;
        bool allFull = true;
        for (int d = 0; d < shifts; d++)
        {
            int x0 = q0 + fg.ShiftLast[d];
            lo[d] = Math.Clamp(-x0, 0, len);
            hi[d] = Math.Clamp(inLast - x0, lo[d], len);
            if (lo[d] != 0 || hi[d] != len) allFull = false;
            for (int i = 0; i < rows; i++)
            {
                int* b = it.PadBase + i * shifts + d;
                if (*b != Outside) *b += x0;
                else allFull = false;
            }
        }
        bool fast = allFull && len % l == 0;
        int* pbase = it.PadBase;
        int tail = nb - rows * len;
        for (int c0 = 0; c0 < p.Cig; c0 += p.PackSlice)
        {
            int cc = Math.Min(p.PackSlice, p.Cig - c0);
            float* dst = it.Panel;
            for (int ci = 0; ci < cc; ci++)
            {
                float* xc = it.Xg + (c0 + ci) * p.InSpatial;
                for (int d = 0; d < shifts; d++, dst += nb)
                {
                    if (fast)
                    {
                        int* pbd = pbase + d;
                        float* dr = dst;
                        for (int i = 0; i < rows; i++, pbd += shifts, dr += len)
                        {
                            float* src = xc + *pbd;
                            for (int jj = 0; jj < len; jj += l) TS.Store(dr + jj, TS.Load(src + jj));
                        }
                    }
                    else
                    {
                        for (int i = 0; i < rows; i++)
                        {
                            int b = it.PadBase[i * shifts + d];
                            CopyBordered(dst + i * len, b == Outside ? null : xc + b, lo[d], hi[d], len);
                        }
                    }
                    for (int j = nb - tail; j < nb; j++) dst[j] = 0f;
                }
            }
            ComputeFused(ref it, it.Panel, (long)shifts * nb, c0, cc);
        }
    }

    /// <summary>
    /// <see cref="DeconvPlan.RowPanel"/>: the chunk is pixels [q0, q0 + block) of one row. Per input channel, each input
    /// row a tap reads (<see cref="PadBase"/> holds their leading-axis offsets, or <see cref="Outside"/>) is copied once
    /// over [q0 + MinShiftLast, + block + spread) with zeros outside x; shift d reads its row at column ShiftLast - MinShiftLast.
    /// </summary>
    private void RowPanelChunk(ref Item it, int q0)
    {
        var p = Plan;
        var fg = it.Group!;
        int nb = p.PixelBlock, mt = p.MaxTaps, s = fg.Phases.Length, l = TS.Lanes, nRows = fg.LeadShift.Length;
        int w = nb + fg.ShiftLastSpread, inLast = (int)p.Geometry.Axes[p.Rank - 1].Input;
        long xs = (long)nRows * w;
        for (int k = 0; k < s; k++)
            for (int t = 0; t < fg.Phases[k].Taps; t++)
            {
                int d = fg.TapShift[k][t];
                it.FusedTapOff[k * mt + t] = fg.LeadIndex[d] * w + fg.ShiftLast[d] - fg.MinShiftLast;
            }
        int x0 = q0 + fg.MinShiftLast;
        int clo = Math.Clamp(-x0, 0, w), chi = Math.Clamp(inLast - x0, clo, w);
        // Per row: source of column 0, or Outside (a row of zeros).
        int* rowSrc = it.PadBase + fg.Shifts.Length;
        for (int u = 0; u < nRows; u++)
        {
            int b = it.PadBase[fg.LeadShift[u]];
            rowSrc[u] = b == Outside ? Outside : b + x0;
        }
        for (int c0 = 0; c0 < p.Cig; c0 += p.PackSlice)
        {
            int cc = Math.Min(p.PackSlice, p.Cig - c0);
            float* dst = it.Panel;
            for (int ci = 0; ci < cc; ci++)
            {
                float* xc = it.Xg + (c0 + ci) * p.InSpatial;
                for (int u = 0; u < nRows; u++, dst += w)
                    CopyBordered(dst, rowSrc[u] == Outside ? null : xc + rowSrc[u], clo, chi, w);
            }
            ComputeFused(ref it, it.Panel, xs, c0, cc);
        }
    }

    /// <summary>
    /// One zero-bordered row segment of a padded panel: dst[j] = src[j] for j in [lo, hi), zero elsewhere in [0, len);
    /// <paramref name="src"/> null (a row outside x) writes zeros only. Whole vectors inside [lo, hi) (the last one
    /// overlapping), scalars only when the run is shorter than a vector.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyBordered(float* dst, float* src, int lo, int hi, int len)
    {
        int l = TS.Lanes;
        if (src == null)
        {
            for (int j = 0; j < len; j++) dst[j] = 0f;
            return;
        }
        if (hi - lo >= l)
        {
            int j = lo;
            for (; j + l < hi; j += l) TS.Store(dst + j, TS.Load(src + j));
            TS.Store(dst + hi - l, TS.Load(src + hi - l));
        }
        else
            for (int j = lo; j < hi; j++) dst[j] = src[j];
        for (int j = 0; j < lo; j++) dst[j] = 0f;
        for (int j = hi; j < len; j++) dst[j] = 0f;
    }

    /// <summary>As <see cref="Compute"/> for one direct chunk of every phase of the group: a tile per phase, stored interleaved.</summary>
    private void ComputeFused(ref Item it, float* xb, long xs, int c0, int cc)
    {
        var p = Plan;
        var grp = it.Group!.Phases;
        int cog = p.Cog, cig = p.Cig, nr = p.VectorsPerBlock, msub = p.ChannelSubBlock, nb = p.PixelBlock, mt = p.MaxTaps, s = grp.Length;
        bool sliced = cc != cig, last = c0 + cc == cig;
        for (int cb = it.CbStart; cb < it.CbEnd; cb += p.Block)
        {
            int mr = Math.Min(p.Block, cog - cb);
            for (int sub = 0; sub < mr; sub += msub)
            {
                int ms = Math.Min(msub, mr - sub);
                long rowOff = sliced ? (long)(cb + sub) * nb : 0;
                for (int k = 0; k < s; k++)
                {
                    var sib = grp[k];
                    int taps = sib.Taps;
                    float* wb = it.WBase + sib.WeightOffset + (long)cb * cig * taps + (long)c0 * taps * mr;
                    float* tile = it.Tile + k * Plan.TileFloats + rowOff;
                    MicroKernel<TS, TV>.Dispatch(ms, nr, xb, it.FusedTapOff + k * mt, taps, cc, xs, wb + sub, mr, tile, accumulate: c0 > 0);
                }
                if (last) StoreFused(ref it, ms, cb + sub, rowOff);
            }
        }
    }

    /// <summary>Bias + activation of the group's tiles, written as contiguous runs of s outputs per pixel (one run per row segment).</summary>
    private void StoreFused(ref Item it, int channels, int co0, long rowOff)
    {
        var p = Plan;
        var ep = Epilogue;
        int nb = p.PixelBlock, s = it.Group!.Phases.Length, l = TS.Lanes;
        int segs = it.SegCount, seg = it.SegLen;
        bool relu = ep.Kind == Activation.Relu;
        for (int i = 0; i < channels; i++)
        {
            int co = co0 + i;
            TV b = TS.Splat(it.Bg == null ? 0f : it.Bg[co]);
            float* yc = it.Yg + co * p.OutSpatial;
            bool vectorRuns = s == 2 && (seg % l == 0 || 2 * seg == l);
            if (!vectorRuns)
            {
                // Other segment lengths: bias (+ Relu) a vector at a time over the tile rows (a row holds nb >= segs*seg
                // floats, a whole number of vectors), then branch-free interleaving copies below (a per-element Relu
                // branch mispredicts on real data).
                int n = (segs * seg + l - 1) / l * l;
                for (int k = 0; k < s; k++)
                {
                    float* tk = it.Tile + k * p.TileFloats + rowOff + i * nb;
                    if (relu) for (int j = 0; j < n; j += l) TS.Store(tk + j, TS.Relu(TS.Add(TS.Load(tk + j), b)));
                    else for (int j = 0; j < n; j += l) TS.Store(tk + j, TS.Add(TS.Load(tk + j), b));
                }
            }
            for (int sg = 0; sg < segs; sg++)
            {
                float* yo = yc + it.SegOut[sg];
                float* t0 = it.Tile + rowOff + i * nb + sg * seg;
                if (s == 2 && seg % l == 0)
                {
                    float* t1 = t0 + p.TileFloats;
                    for (int j = 0; j < seg; j += l)
                    {
                        TV a = TS.Add(TS.Load(t0 + j), b), c = TS.Add(TS.Load(t1 + j), b);
                        if (relu) { a = TS.Relu(a); c = TS.Relu(c); }
                        TS.StoreInterleaved2(yo + 2 * j, yo + 2 * j + l, a, c);
                    }
                }
                else if (vectorRuns && sg + 1 < segs)
                {
                    // Half-vector segments (padded chunks of rows of Lanes/2 pixels, e.g. 8-pixel rows on AVX-512): one
                    // vector holds two segments, whose interleaved halves go to their two output runs.
                    float* t1 = t0 + p.TileFloats;
                    TV a = TS.Add(TS.Load(t0), b), c = TS.Add(TS.Load(t1), b);
                    if (relu) { a = TS.Relu(a); c = TS.Relu(c); }
                    TS.StoreInterleaved2(yo, yc + it.SegOut[sg + 1], a, c);
                    if (ep.Kind != Activation.None && !relu)
                    {
                        ep.ApplyInPlace(new Span<float>(yo, seg * s));
                        yo = yc + it.SegOut[sg + 1];
                    }
                    sg++;
                }
                else if (vectorRuns)
                {
                    // The odd last half-vector segment: scalar, branch-free.
                    float bs = it.Bg == null ? 0f : it.Bg[co];
                    for (int j = 0; j < seg; j++)
                        for (int k = 0; k < 2; k++)
                        {
                            float v = t0[k * p.TileFloats + j] + bs;
                            yo[j * 2 + k] = relu && !(v > 0f) ? 0f : v;
                        }
                }
                else
                    for (int j = 0; j < seg; j++)
                        for (int k = 0; k < s; k++) yo[j * s + k] = t0[k * p.TileFloats + j];
                if (ep.Kind != Activation.None && !relu)
                    ep.ApplyInPlace(new Span<float>(yo, seg * s));
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Pend(ref Item it, ref int pending, int pixel)
    {
        it.Pend[pending++] = pixel;
        if (pending == Plan.PixelBlock)
        {
            Panel(ref it, pending);
            pending = 0;
        }
    }

    /// <summary>Gathers the pending pixels' inputs (zero where a tap falls outside x) into [ci][tap][NB] and computes them.</summary>
    private void Panel(ref Item it, int count)
    {
        var p = Plan;
        var res = it.Res;
        var axes = p.Geometry.Axes;
        int r = p.Rank, nb = p.PixelBlock, taps = res.Taps;
        int* m = it.M;
        for (int j = 0; j < nb; j++)
        {
            if (j >= count)
            {
                for (int t = 0; t < taps; t++) it.Gidx[t * nb + j] = -1;
                continue;
            }
            int rem = it.Pend[j], outOff = 0;
            for (int a = r - 1; a >= 0; a--)
            {
                int qa = rem % res.Q[a];
                rem /= res.Q[a];
                m[a] = res.M0[a] + qa;
                outOff += (res.O0[a] + qa * (int)axes[a].Stride) * p.OutStride[a];
            }
            it.OutOff[j] = outOff;
            for (int t = 0; t < taps; t++)
            {
                int idx = 0;
                for (int a = 0; a < r; a++)
                {
                    int i = m[a] - res.TapC[t * r + a];
                    if ((uint)i >= (uint)axes[a].Input) { idx = -1; break; }
                    idx += i * p.InStride[a];
                }
                it.Gidx[t * nb + j] = idx;
            }
        }
        // Per tap, recognise the common shape "invalid prefix, contiguous valid run, invalid suffix" (pixels from one
        // row): such taps are packed with zero fills and a vector copy instead of a per-pixel gather.
        int* runStart = it.RunStart, runEnd = it.RunStart + taps, runSrc = it.RunStart + 2 * taps;
        for (int t = 0; t < taps; t++)
        {
            int* gi = it.Gidx + t * nb;
            int j0 = 0;
            while (j0 < nb && gi[j0] < 0) j0++;
            int j1 = j0;
            while (j1 < nb && gi[j1] == gi[j0] + (j1 - j0)) j1++;
            int j2 = j1;
            while (j2 < nb && gi[j2] < 0) j2++;
            bool run = j2 == nb;
            runStart[t] = run ? j0 : -1;
            runEnd[t] = j1;
            runSrc[t] = j0 < nb ? gi[j0] : 0;
        }
        for (int t = 0; t < taps; t++) it.TapOff[t] = t * nb;
        int chunk = p.CiChunk;
        for (int c0 = 0; c0 < p.Cig; c0 += chunk)
        {
            int cc = Math.Min(chunk, p.Cig - c0);
            for (int ci = 0; ci < cc; ci++)
            {
                float* xc = it.Xg + (c0 + ci) * p.InSpatial;
                for (int t = 0; t < taps; t++)
                {
                    float* dst = it.Panel + ((long)ci * taps + t) * nb;
                    int j0 = runStart[t];
                    if (j0 >= 0)
                    {
                        int j1 = runEnd[t];
                        float* src = xc + runSrc[t] - j0;
                        int jj = 0;
                        for (; jj < j0; jj++) dst[jj] = 0f;
                        for (; jj + TS.Lanes <= j1; jj += TS.Lanes) TS.Store(dst + jj, TS.Load(src + jj));
                        for (; jj < j1; jj++) dst[jj] = src[jj];
                        for (; jj < nb; jj++) dst[jj] = 0f;
                        continue;
                    }
                    int* gi = it.Gidx + t * nb;
                    for (int j = 0; j < nb; j++)
                    {
                        int k = gi[j];
                        dst[j] = k >= 0 ? xc[k] : 0f;
                    }
                }
            }
            Compute(ref it, it.Panel, (long)taps * nb, count, c0, cc);
        }
    }

    /// <summary>
    /// Every output channel of the group for one block of NB pixels over input channels [c0, c0+cc): micro-kernel per
    /// channel sub-block; the last slice adds bias, applies the epilogue and stores.
    /// </summary>
    private void Compute(ref Item it, float* xb, long xs, int count, int c0 = 0, int cc = -1)
    {
        var p = Plan;
        int cog = p.Cog, cig = p.Cig, taps = it.Res.Taps, nr = p.VectorsPerBlock, msub = p.ChannelSubBlock, nb = p.PixelBlock;
        if (cc < 0) cc = cig;
        bool sliced = cc != cig, last = c0 + cc == cig;
        for (int cb = it.CbStart; cb < it.CbEnd; cb += p.Block)
        {
            int mr = Math.Min(p.Block, cog - cb);
            float* wb = it.Wg + (long)cb * cig * taps + (long)c0 * taps * mr;
            for (int sub = 0; sub < mr; sub += msub)
            {
                int ms = Math.Min(msub, mr - sub);
                // Sliced: each channel keeps its own tile row across slices; otherwise one sub-block tile is reused.
                float* tile = sliced ? it.Tile + (long)(cb + sub) * nb : it.Tile;
                MicroKernel<TS, TV>.Dispatch(ms, nr, xb, it.TapOff, taps, cc, xs, wb + sub, mr, tile, accumulate: c0 > 0);
                if (last) Store(ref it, ms, cb + sub, count, tile);
            }
        }
    }

    /// <summary>Bias + activation, written once to each output position (scattered by the output stride).</summary>
    private void Store(ref Item it, int channels, int co0, int count, float* tile)
    {
        var p = Plan;
        var ep = Epilogue;
        int nb = p.PixelBlock;
        int* off = it.OutOff;
        for (int i = 0; i < channels; i++)
        {
            int co = co0 + i;
            float bv = it.Bg == null ? 0f : it.Bg[co];
            float* yc = it.Yg + co * p.OutSpatial;
            float* tr = tile + i * nb;
            if (it.OutStep >= 0)
            {
                // Direct chunk: affine output positions, bias added a vector at a time, then strided stores.
                TV b = TS.Splat(bv);
                for (int j = 0; j < count; j += TS.Lanes) TS.Store(tr + j, TS.MulAdd(TS.Splat(1f), TS.Load(tr + j), b));
                float* yo = yc + it.OutBase;
                int step = it.OutStep;
                if (ep.Kind == Activation.None)
                    for (int j = 0; j < count; j++) yo[j * step] = tr[j];
                else if (ep.Kind == Activation.Relu)
                    for (int j = 0; j < count; j++) { float v = tr[j]; yo[j * step] = v > 0 ? v : 0f; }
                else
                {
                    ep.ApplyInPlace(new Span<float>(tr, count));
                    for (int j = 0; j < count; j++) yo[j * step] = tr[j];
                }
                continue;
            }
            switch (ep.Kind)
            {
                case Activation.None:
                    for (int j = 0; j < count; j++) yc[off[j]] = tr[j] + bv;
                    break;
                case Activation.Relu:
                    for (int j = 0; j < count; j++) { float v = tr[j] + bv; yc[off[j]] = v > 0 ? v : 0f; }
                    break;
                default:
                    // The tile row is scratch: bias and activation in place (vectorised), then the scatter.
                    for (int j = 0; j < count; j++) tr[j] += bv;
                    ep.ApplyInPlace(new Span<float>(tr, count));
                    for (int j = 0; j < count; j++) yc[off[j]] = tr[j];
                    break;
            }
        }
    }

    /// <summary>A residue with no taps (stride larger than the dilated kernel reach, or outputs past the end): bias only.</summary>
    private void BiasOnly(ref Item it, int px0, int px1)
    {
        var p = Plan;
        var res = it.Res;
        var axes = p.Geometry.Axes;
        for (int px = px0; px < px1; px++)
        {
            int rem = px, outOff = 0;
            for (int a = p.Rank - 1; a >= 0; a--)
            {
                int qa = rem % res.Q[a];
                rem /= res.Q[a];
                outOff += (res.O0[a] + qa * (int)axes[a].Stride) * p.OutStride[a];
            }
            for (int co = it.CbStart; co < it.CbEnd; co++)
                it.Yg[co * p.OutSpatial + outOff] = Epilogue.Apply(it.Bg == null ? 0f : it.Bg[co]);
        }
    }
}
