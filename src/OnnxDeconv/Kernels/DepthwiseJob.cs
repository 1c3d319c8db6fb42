namespace OnnxDeconv.Kernels;

/// <summary>
/// The dedicated depthwise path (one input and one output channel per group). There is nothing to block over
/// channels, so each item takes one (image, channel) and walks each phase grid row by row: interior runs keep
/// 4 vectors of outputs in registers across all taps (x read in place), border pixels take the scalar route.
/// </summary>
internal sealed unsafe class DepthwiseJob<TS, TV> : DeconvJob where TS : struct, ISimd<TV> where TV : unmanaged
{
    private const int Outside = int.MinValue;

    public override void Execute(int item)
    {
        // One item = one (image, channel): its phases run back to back, so the channel's output lines stay in cache
        // between the phases that interleave into them.
        foreach (var res in Plan.Work) Phase(item, res);
    }

    private void Phase(int ig, Residue res)
    {
        var p = Plan;
        var g = p.Geometry;
        long n = ig / g.Group, c = ig % g.Group;
        float* xc = X + (n * g.InChannels + c) * p.InSpatial;
        float* yc = Y + (n * g.OutChannels + c) * p.OutSpatial;
        float* w = W + c * (long)p.KernelSpatial + res.WeightOffset;
        float bias = B == null ? 0f : B[c];
        var ep = Epilogue;
        var axes = g.Axes;
        int r = p.Rank, last = r - 1, taps = res.Taps;
        int ql = res.Q[last];
        int rows = res.Pixels / Math.Max(1, ql);
        int inLast = (int)axes[last].Input, sLast = (int)axes[last].Stride;
        int m0 = res.M0[last], o0 = res.O0[last];
        int l = TS.Lanes;
        // Interior of the last axis: every tap's input index in range.
        int lo = Math.Clamp(res.CMax[last] - m0, 0, ql), hi = Math.Clamp(inLast + res.CMin[last] - m0, lo, ql);

        var scratch = Scratch.For(p, out _);
        fixed (int* ints = scratch.Ints)
        fixed (float* fs = scratch.Floats)
        {
            int* rowIn = ints;          // per tap: input offset of q = 0 in this row (may be negative), or Outside
            int* lastOff = ints + taps; // per tap: last-axis input index of q = 0
            float* tmp = fs;            // one vector block on its way to the strided output
            for (int t = 0; t < taps; t++) lastOff[t] = m0 - res.TapC[t * r + last];
            for (int row = 0; row < rows; row++)
            {
                int rem = row, outBase = 0;
                for (int t = 0; t < taps; t++) rowIn[t] = 0;
                for (int a = last - 1; a >= 0; a--)
                {
                    int qa = rem % res.Q[a];
                    rem /= res.Q[a];
                    int m = res.M0[a] + qa;
                    outBase += (res.O0[a] + qa * (int)axes[a].Stride) * p.OutStride[a];
                    for (int t = 0; t < taps; t++)
                    {
                        if (rowIn[t] == Outside) continue;
                        int i = m - res.TapC[t * r + a];
                        rowIn[t] = (uint)i < (uint)axes[a].Input ? rowIn[t] + i * p.InStride[a] : Outside;
                    }
                }
                for (int t = 0; t < taps; t++)
                    if (rowIn[t] != Outside) rowIn[t] += lastOff[t];
                float* yr = yc + outBase + o0;

                for (int q = 0; q < lo; q++) yr[q * sLast] = ep.Apply(Scalar(xc, w, rowIn, lastOff, taps, q, inLast, bias));
                int qv = lo;
                for (; qv + 4 * l <= hi; qv += 4 * l)
                {
                    TV bv = TS.Splat(bias);
                    TV a0 = bv, a1 = bv, a2 = bv, a3 = bv;
                    for (int t = 0; t < taps; t++)
                    {
                        if (rowIn[t] == Outside) continue;
                        float* xp = xc + rowIn[t] + qv;
                        TV wt = TS.Splat(w[t]);
                        a0 = TS.MulAdd(wt, TS.Load(xp), a0);
                        a1 = TS.MulAdd(wt, TS.Load(xp + l), a1);
                        a2 = TS.MulAdd(wt, TS.Load(xp + 2 * l), a2);
                        a3 = TS.MulAdd(wt, TS.Load(xp + 3 * l), a3);
                    }
                    TS.Store(tmp, a0); TS.Store(tmp + l, a1); TS.Store(tmp + 2 * l, a2); TS.Store(tmp + 3 * l, a3);
                    StoreRun(yr + qv * sLast, sLast, tmp, 4 * l, ep);
                }
                // The interior's tail: one last vector ending exactly at hi (overlapping outputs are just rewritten).
                if (qv < hi && hi - lo >= l) qv = Math.Min(qv, hi - l);
                for (; qv + l <= hi; qv += l)
                {
                    TV a0 = TS.Splat(bias);
                    for (int t = 0; t < taps; t++)
                        if (rowIn[t] != Outside) a0 = TS.MulAdd(TS.Splat(w[t]), TS.Load(xc + rowIn[t] + qv), a0);
                    TS.Store(tmp, a0);
                    StoreRun(yr + qv * sLast, sLast, tmp, l, ep);
                }
                for (int q = qv; q < ql; q++) yr[q * sLast] = ep.Apply(Scalar(xc, w, rowIn, lastOff, taps, q, inLast, bias));
            }
        }
    }

    /// <summary>One border output: only taps whose last-axis input index is in range contribute.</summary>
    private static float Scalar(float* xc, float* w, int* rowIn, int* lastOff, int taps, int q, int inLast, float bias)
    {
        float acc = bias;
        for (int t = 0; t < taps; t++)
        {
            if (rowIn[t] == Outside || (uint)(lastOff[t] + q) >= (uint)inLast) continue;
            acc += w[t] * xc[rowIn[t] + q];
        }
        return acc;
    }

    private static void StoreRun(float* y, int stride, float* v, int count, Epilogue ep)
    {
        switch (ep.Kind)
        {
            case Activation.None:
                for (int j = 0; j < count; j++) y[j * stride] = v[j];
                break;
            case Activation.Relu:
                for (int j = 0; j < count; j++) y[j * stride] = v[j] > 0 ? v[j] : 0f;
                break;
            default:
                for (int j = 0; j < count; j++) y[j * stride] = ep.Apply(v[j]);
                break;
        }
    }
}
