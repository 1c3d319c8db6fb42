namespace OnnxDeconv.Kernels;

/// <summary>Per-thread scratch of the phase-GEMM path, grown on first use and reused by every call.</summary>
internal sealed class PhaseGemmScratch
{
    [ThreadStatic] private static PhaseGemmScratch? t_current;

    public float[] Floats = [];
    public int[] Ints = [];

    public static PhaseGemmScratch For(PhaseGemmLayout l)
    {
        var s = t_current ??= new PhaseGemmScratch();
        if (s.Floats.Length < l.ScratchFloats) s.Floats = new float[checked((int)l.ScratchFloats)];
        if (s.Ints.Length < l.IntsNeeded) s.Ints = new int[l.IntsNeeded];
        return s;
    }
}

/// <summary>
/// The phase-GEMM path (<see cref="PhaseGemmLayout"/>). One item = one (image, group, pixel block of one stack). Per
/// slice of input channels the block's input is packed once, zero-padded, as [ci][shift][pixel]; every phase of the
/// stack then runs the micro-kernel over it for each block of output channels (its taps select shifts), and the tile
/// is stored through the interleave (output = phase origin + pixel offset) with bias and epilogue.
/// </summary>
internal sealed unsafe class PhaseGemmJob<TS, TV> : DeconvJob where TS : struct, ISimd<TV> where TV : unmanaged
{
    public override void Execute(int item)
    {
        var p = Plan;
        var l = p.Gemm!;
        var g = p.Geometry;
        int perIg = l.ItemsPerImageGroup;
        int ig = item / perIg, blockIndex = item - ig * perIg;
        long n = ig / g.Group, grp = ig % g.Group;
        var stack = l.Stacks[0];
        foreach (var s in l.Stacks)
            if (blockIndex >= s.FirstBlock && blockIndex < s.FirstBlock + s.Blocks) { stack = s; break; }
        int nb = l.PixelBlock;
        int px0 = (blockIndex - stack.FirstBlock) * nb, count = Math.Min(nb, stack.Pixels - px0);

        var scratch = PhaseGemmScratch.For(l);
        fixed (float* fs = scratch.Floats)
        fixed (int* ints = scratch.Ints)
        {
            float* panel = (float*)(((nint)fs + 63) & ~(nint)63);
            float* tile = panel + l.PanelFloats;
            int* outPix = ints, segStart = ints + nb, segQ = segStart + nb + 1, shiftOff = segQ + nb * p.Rank, tapOff = shiftOff + l.MaxShifts;
            int segs = Segments(p, stack, px0, count, outPix, segStart, segQ);
            float* xg = X + (n * g.InChannels + grp * p.Cig) * p.InSpatial;
            float* yg = Y + (n * g.OutChannels + grp * p.Cog) * p.OutSpatial;
            float* wg = W + grp * (long)p.Cog * p.Cig * p.KernelSpatial;
            float* bg = B == null ? null : B + grp * p.Cog;
            int shifts = stack.ShiftCount;
            // A block inside one row whose every shift reads inside the input is read from x in place (no packing).
            bool direct = segs == 1 && Direct(p, stack, segQ, count, shiftOff)
                && xg + (p.Cig - 1) * p.InSpatial + MaxOffset(shiftOff, shifts) + nb <= XEnd;
            long xs = direct ? p.InSpatial : (long)shifts * nb;
            if (!direct)
                for (int d = 0; d < shifts; d++) shiftOff[d] = d * nb;
            for (int c0 = 0; c0 < p.Cig; c0 += l.CiSlice)
            {
                int cc = Math.Min(l.CiSlice, p.Cig - c0);
                float* xb = direct ? xg + c0 * p.InSpatial : panel;
                if (!direct) Pack(p, stack, xg + c0 * p.InSpatial, cc, panel, segs, segStart, segQ, nb);
                bool last = c0 + cc == p.Cig;
                if (l.PhaseRows)
                {
                    // One output channel: phases are the rows; the tile holds one row per phase.
                    foreach (var (first, cnt) in stack.Runs)
                    {
                        var res = stack.Phases[first];
                        float* t0 = tile + (long)first * nb;
                        if (res.Taps == 0) { new Span<float>(t0, cnt * nb).Clear(); continue; }
                        for (int t = 0; t < res.Taps; t++) tapOff[t] = shiftOff[stack.TapShift[first][t]];
                        PhaseRowsKernel<TS, TV>.Dispatch(cnt, l.Nr, xb, tapOff, res.Taps, cc, xs,
                            wg + res.WeightOffset + (long)c0 * res.Taps, (long)res.Taps * p.Cig, t0, c0 > 0);
                    }
                    if (last) StoreAll(p, stack, tile, nb, yg, bg, outPix, segs, segStart, count);
                    continue;
                }
                long tileStride = (long)p.Cog * nb;
                if (stack.RowGroups is { } groups)
                {
                    // A row group's s tiles side by side, stored interleaved (every output line written once).
                    foreach (var grpPhases in groups)
                    {
                        for (int k = 0; k < grpPhases.Length; k++)
                        {
                            int ph = grpPhases[k];
                            ComputePhase(p, l, stack, ph, xb, xs, tapOff, shiftOff, wg, c0, cc, l.TileAllPhases ? tile + ph * tileStride : tile + k * tileStride);
                        }
                        if (last) StoreGroup(p, stack, grpPhases, tile, l.TileAllPhases ? -1 : tileStride, tileStride, yg, bg, outPix, segs, segStart, count);
                    }
                    continue;
                }
                for (int ph = 0; ph < stack.Phases.Length; ph++)
                {
                    float* t0 = l.TileAllPhases ? tile + ph * tileStride : tile;
                    ComputePhase(p, l, stack, ph, xb, xs, tapOff, shiftOff, wg, c0, cc, t0);
                    if (last) Store(p, stack, ph, t0, yg, bg, outPix, count, nb);
                }
            }
        }
    }

    /// <summary>One phase's tile (all output channels x the block) from the slice c0..c0+cc of the panel or x.</summary>
    private static void ComputePhase(DeconvPlan p, PhaseGemmLayout l, PhaseStack stack, int ph, float* xb, long xs, int* tapOff, int* shiftOff,
        float* wg, int c0, int cc, float* t0)
    {
        int nb = l.PixelBlock;
        var res = stack.Phases[ph];
        if (res.Taps == 0)
        {
            new Span<float>(t0, p.Cog * nb).Clear();
            return;
        }
        for (int t = 0; t < res.Taps; t++) tapOff[t] = shiftOff[stack.TapShift[ph][t]];
        float* wph = wg + res.WeightOffset;
        for (int cb = 0; cb < p.Cog; cb += p.Block)
        {
            int bw = Math.Min(p.Block, p.Cog - cb);
            float* wb = wph + (long)cb * p.Cig * res.Taps + (long)c0 * res.Taps * bw;
            for (int j = 0; j < bw; j += l.Mr)
            {
                int mr = Math.Min(l.Mr, bw - j);
                MicroKernel<TS, TV>.Dispatch(mr, l.Nr, xb, tapOff, res.Taps, cc, xs, wb + j, bw,
                    t0 + (long)(cb + j) * nb, c0 > 0 && l.TileAllPhases);
            }
        }
    }

    /// <summary>One output channel: every phase's tile row (at ph * nb), by row groups when the stack has them.</summary>
    private void StoreAll(DeconvPlan p, PhaseStack stack, float* tile, int nb, float* yg, float* bg, int* outPix, int segs, int* segStart, int count)
    {
        if (stack.RowGroups is { } groups)
            foreach (var grpPhases in groups) StoreGroup(p, stack, grpPhases, tile, -1, nb, yg, bg, outPix, segs, segStart, count);
        else
            for (int ph = 0; ph < stack.Phases.Length; ph++) Store(p, stack, ph, tile + (long)ph * nb, yg, bg, outPix, count, nb);
    }

    /// <summary>
    /// Bias and epilogue on the group's tiles, then the s tiles interleaved into each row segment's contiguous output
    /// run. Member k's tile is at tile + k * memberStride, or (memberStride -1) at tile + phase * phaseStride.
    /// </summary>
    private void StoreGroup(DeconvPlan p, PhaseStack stack, int[] members, float* tile, long memberStride, long phaseStride,
        float* yg, float* bg, int* outPix, int segs, int* segStart, int count)
    {
        int s = members.Length, nb = p.Gemm!.PixelBlock, lanes = TS.Lanes;
        float** t = stackalloc float*[s];
        for (int k = 0; k < s; k++) t[k] = memberStride < 0 ? tile + members[k] * phaseStride : tile + k * memberStride;
        var ep = Epilogue;
        float* yp = yg + stack.PhaseOut[members[0]];
        int n = (count + lanes - 1) / lanes * lanes;
        for (int co = 0; co < p.Cog; co++)
        {
            long rowOff = (long)co * nb;
            TV b = TS.Splat(bg == null ? 0f : bg[co]);
            for (int k = 0; k < s; k++)
            {
                float* row = t[k] + rowOff;
                for (int j = 0; j < n; j += lanes) TS.Store(row + j, TS.Add(TS.Load(row + j), b));
                ep.ApplyInPlace(new Span<float>(row, count));
            }
            float* yc = yp + (long)co * p.OutSpatial;
            for (int sg = 0; sg < segs; sg++)
            {
                int j0 = segStart[sg], j1 = segStart[sg + 1];
                float* yo = yc + outPix[j0];
                int j = j0;
                if (s == 2)
                {
                    float* r0 = t[0] + rowOff, r1 = t[1] + rowOff;
                    for (; j + lanes <= j1; j += lanes)
                        TS.StoreInterleaved2(yo + 2 * (j - j0), yo + 2 * (j - j0) + lanes, TS.Load(r0 + j), TS.Load(r1 + j));
                }
                for (; j < j1; j++)
                    for (int k = 0; k < s; k++) yo[(j - j0) * s + k] = t[k][rowOff + j];
            }
        }
    }

    /// <summary>
    /// The block's pixels as row segments (consecutive grid positions along the last axis): start in the block and the
    /// grid position of its first pixel; and each pixel's output offset relative to the phase origin.
    /// </summary>
    private static int Segments(DeconvPlan p, PhaseStack stack, int px0, int count, int* outPix, int* segStart, int* segQ)
    {
        int r = p.Rank, last = r - 1, ql = stack.Q[last];
        var axes = p.Geometry.Axes;
        int segs = 0;
        for (int j = 0; j < count;)
        {
            int px = px0 + j, rem = px, off = 0;
            for (int a = last; a >= 0; a--)
            {
                int qa = rem % stack.Q[a];
                rem /= stack.Q[a];
                segQ[segs * r + a] = qa;
                off += qa * (int)axes[a].Stride * p.OutStride[a];
            }
            int len = Math.Min(count - j, ql - segQ[segs * r + last]);
            int step = (int)axes[last].Stride * p.OutStride[last];
            for (int i = 0; i < len; i++) outPix[j + i] = off + i * step;
            segStart[segs++] = j;
            j += len;
        }
        segStart[segs] = count;
        return segs;
    }

    /// <summary>Whether every shift of the one-segment block reads inside the input; fills each shift's offset into a channel of x.</summary>
    private static bool Direct(DeconvPlan p, PhaseStack stack, int* segQ, int count, int* shiftOff)
    {
        int r = p.Rank;
        var axes = p.Geometry.Axes;
        for (int d = 0; d < stack.ShiftCount; d++)
        {
            int off = 0;
            for (int a = 0; a < r; a++)
            {
                int i = segQ[a] + stack.Shift[d * r + a];
                int end = a == r - 1 ? i + count : i + 1;
                if (i < 0 || end > axes[a].Input) return false;
                off += i * p.InStride[a];
            }
            shiftOff[d] = off;
        }
        return true;
    }

    private static int MaxOffset(int* v, int n)
    {
        int m = 0;
        for (int i = 0; i < n; i++) m = Math.Max(m, v[i]);
        return m;
    }

    /// <summary>panel[ci][shift][pixel] = x[ci][grid position + shift], zero outside the input (and past the block's pixels).</summary>
    private static void Pack(DeconvPlan p, PhaseStack stack, float* xc, int cc, float* panel, int segs, int* segStart, int* segQ, int nb)
    {
        int r = p.Rank, last = r - 1, shifts = stack.ShiftCount;
        var axes = p.Geometry.Axes;
        int inLast = (int)axes[last].Input;
        new Span<float>(panel, cc * shifts * nb).Clear();
        for (int d = 0; d < shifts; d++)
            for (int sg = 0; sg < segs; sg++)
            {
                int baseIn = 0;
                bool inside = true;
                for (int a = 0; a < last; a++)
                {
                    int i = segQ[sg * r + a] + stack.Shift[d * r + a];
                    if ((uint)i >= (uint)axes[a].Input) { inside = false; break; }
                    baseIn += i * p.InStride[a];
                }
                if (!inside) continue;
                int j0 = segStart[sg], len = segStart[sg + 1] - j0;
                int i0 = segQ[sg * r + last] + stack.Shift[d * r + last];
                int lo = Math.Max(0, -i0), hi = Math.Min(len, inLast - i0);
                if (hi <= lo) continue;
                for (int ci = 0; ci < cc; ci++)
                {
                    float* src = xc + ci * p.InSpatial + baseIn + i0;
                    float* dst = panel + ((long)ci * shifts + d) * nb + j0;
                    new Span<float>(src + lo, hi - lo).CopyTo(new Span<float>(dst + lo, hi - lo));
                }
            }
    }

    private void Store(DeconvPlan p, PhaseStack stack, int ph, float* tile, float* yg, float* bg, int* outPix, int count, int nb)
    {
        var ep = Epilogue;
        float* yp = yg + stack.PhaseOut[ph];
        for (int co = 0; co < p.Cog; co++)
        {
            float* row = tile + (long)co * nb;
            float bias = bg == null ? 0f : bg[co];
            for (int j = 0; j < count; j++) row[j] += bias;
            ep.ApplyInPlace(new Span<float>(row, count));
            float* yc = yp + (long)co * p.OutSpatial;
            for (int j = 0; j < count; j++) yc[outPix[j]] = row[j];
        }
    }
}
