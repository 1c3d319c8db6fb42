using System.Runtime.CompilerServices;

namespace OnnxDeconv.Kernels;

/// <summary>
/// The micro-kernel with phases as its rows, for one output channel: up to 6 phases that read the same panel rows
/// (same taps, same shifts) x up to 4 vectors of pixels stay in registers; phase j's weights start at
/// <c>w + j*phaseStride</c>, one float per (ci, tap) step (a one-channel block of the packed layout). Without it a
/// one-channel phase is a GEMV that loads a panel vector per FMA; with it each panel vector feeds every phase.
/// </summary>
internal static unsafe class PhaseRowsKernel<TS, TV> where TS : struct, ISimd<TV> where TV : unmanaged
{
    public const int MaxRows = 6;

    /// <param name="xb">The packed panel ([ci][shift][pixel]).</param>
    /// <param name="tapOff">Per tap: offset of its shift row inside one input channel's panel.</param>
    /// <param name="xs">Floats per input channel in the panel.</param>
    /// <param name="tile">Output: TMr rows of TNr*Lanes floats, one per phase.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run<TMr, TNr>(float* xb, int* tapOff, int taps, int cig, long xs, float* w, long phaseStride, float* tile, bool accumulate)
        where TMr : struct, IConst where TNr : struct, IConst
    {
        int l = TS.Lanes;
        int row = TNr.Value * l;
        TV a00 = default; TV a01 = default; TV a02 = default; TV a03 = default;
        TV a10 = default; TV a11 = default; TV a12 = default; TV a13 = default;
        TV a20 = default; TV a21 = default; TV a22 = default; TV a23 = default;
        TV a30 = default; TV a31 = default; TV a32 = default; TV a33 = default;
        TV a40 = default; TV a41 = default; TV a42 = default; TV a43 = default;
        TV a50 = default; TV a51 = default; TV a52 = default; TV a53 = default;
        float* w0 = w + 0 * phaseStride;
        float* w1 = w + 1 * phaseStride;
        float* w2 = w + 2 * phaseStride;
        float* w3 = w + 3 * phaseStride;
        float* w4 = w + 4 * phaseStride;
        float* w5 = w + 5 * phaseStride;
        if (accumulate)
        {
            { a00 = TS.Load(tile + 0 * row + 0 * l); if (TNr.Value > 1) a01 = TS.Load(tile + 0 * row + 1 * l); if (TNr.Value > 2) a02 = TS.Load(tile + 0 * row + 2 * l); if (TNr.Value > 3) a03 = TS.Load(tile + 0 * row + 3 * l); }
            if (TMr.Value > 1) { a10 = TS.Load(tile + 1 * row + 0 * l); if (TNr.Value > 1) a11 = TS.Load(tile + 1 * row + 1 * l); if (TNr.Value > 2) a12 = TS.Load(tile + 1 * row + 2 * l); if (TNr.Value > 3) a13 = TS.Load(tile + 1 * row + 3 * l); }
            if (TMr.Value > 2) { a20 = TS.Load(tile + 2 * row + 0 * l); if (TNr.Value > 1) a21 = TS.Load(tile + 2 * row + 1 * l); if (TNr.Value > 2) a22 = TS.Load(tile + 2 * row + 2 * l); if (TNr.Value > 3) a23 = TS.Load(tile + 2 * row + 3 * l); }
            if (TMr.Value > 3) { a30 = TS.Load(tile + 3 * row + 0 * l); if (TNr.Value > 1) a31 = TS.Load(tile + 3 * row + 1 * l); if (TNr.Value > 2) a32 = TS.Load(tile + 3 * row + 2 * l); if (TNr.Value > 3) a33 = TS.Load(tile + 3 * row + 3 * l); }
            if (TMr.Value > 4) { a40 = TS.Load(tile + 4 * row + 0 * l); if (TNr.Value > 1) a41 = TS.Load(tile + 4 * row + 1 * l); if (TNr.Value > 2) a42 = TS.Load(tile + 4 * row + 2 * l); if (TNr.Value > 3) a43 = TS.Load(tile + 4 * row + 3 * l); }
            if (TMr.Value > 5) { a50 = TS.Load(tile + 5 * row + 0 * l); if (TNr.Value > 1) a51 = TS.Load(tile + 5 * row + 1 * l); if (TNr.Value > 2) a52 = TS.Load(tile + 5 * row + 2 * l); if (TNr.Value > 3) a53 = TS.Load(tile + 5 * row + 3 * l); }
        }
        int k = 0;
        for (int ci = 0; ci < cig; ci++)
        {
            float* xc = xb + ci * xs;
            for (int t = 0; t < taps; t++, k++)
            {
                float* xp = xc + tapOff[t];
                TV x0 = TS.Load(xp);
                TV x1 = default, x2 = default, x3 = default;
                if (TNr.Value > 1) x1 = TS.Load(xp + 1 * l);
                if (TNr.Value > 2) x2 = TS.Load(xp + 2 * l);
                if (TNr.Value > 3) x3 = TS.Load(xp + 3 * l);
                TV wv;
                wv = TS.Splat(w0[k]);
                a00 = TS.MulAdd(wv, x0, a00);
                if (TNr.Value > 1) a01 = TS.MulAdd(wv, x1, a01);
                if (TNr.Value > 2) a02 = TS.MulAdd(wv, x2, a02);
                if (TNr.Value > 3) a03 = TS.MulAdd(wv, x3, a03);
                if (TMr.Value > 1)
                {
                    wv = TS.Splat(w1[k]);
                    a10 = TS.MulAdd(wv, x0, a10);
                    if (TNr.Value > 1) a11 = TS.MulAdd(wv, x1, a11);
                    if (TNr.Value > 2) a12 = TS.MulAdd(wv, x2, a12);
                    if (TNr.Value > 3) a13 = TS.MulAdd(wv, x3, a13);
                }
                if (TMr.Value > 2)
                {
                    wv = TS.Splat(w2[k]);
                    a20 = TS.MulAdd(wv, x0, a20);
                    if (TNr.Value > 1) a21 = TS.MulAdd(wv, x1, a21);
                    if (TNr.Value > 2) a22 = TS.MulAdd(wv, x2, a22);
                    if (TNr.Value > 3) a23 = TS.MulAdd(wv, x3, a23);
                }
                if (TMr.Value > 3)
                {
                    wv = TS.Splat(w3[k]);
                    a30 = TS.MulAdd(wv, x0, a30);
                    if (TNr.Value > 1) a31 = TS.MulAdd(wv, x1, a31);
                    if (TNr.Value > 2) a32 = TS.MulAdd(wv, x2, a32);
                    if (TNr.Value > 3) a33 = TS.MulAdd(wv, x3, a33);
                }
                if (TMr.Value > 4)
                {
                    wv = TS.Splat(w4[k]);
                    a40 = TS.MulAdd(wv, x0, a40);
                    if (TNr.Value > 1) a41 = TS.MulAdd(wv, x1, a41);
                    if (TNr.Value > 2) a42 = TS.MulAdd(wv, x2, a42);
                    if (TNr.Value > 3) a43 = TS.MulAdd(wv, x3, a43);
                }
                if (TMr.Value > 5)
                {
                    wv = TS.Splat(w5[k]);
                    a50 = TS.MulAdd(wv, x0, a50);
                    if (TNr.Value > 1) a51 = TS.MulAdd(wv, x1, a51);
                    if (TNr.Value > 2) a52 = TS.MulAdd(wv, x2, a52);
                    if (TNr.Value > 3) a53 = TS.MulAdd(wv, x3, a53);
                }
            }
        }
        { TS.Store(tile + 0 * row + 0 * l, a00); if (TNr.Value > 1) TS.Store(tile + 0 * row + 1 * l, a01); if (TNr.Value > 2) TS.Store(tile + 0 * row + 2 * l, a02); if (TNr.Value > 3) TS.Store(tile + 0 * row + 3 * l, a03); }
        if (TMr.Value > 1) { TS.Store(tile + 1 * row + 0 * l, a10); if (TNr.Value > 1) TS.Store(tile + 1 * row + 1 * l, a11); if (TNr.Value > 2) TS.Store(tile + 1 * row + 2 * l, a12); if (TNr.Value > 3) TS.Store(tile + 1 * row + 3 * l, a13); }
        if (TMr.Value > 2) { TS.Store(tile + 2 * row + 0 * l, a20); if (TNr.Value > 1) TS.Store(tile + 2 * row + 1 * l, a21); if (TNr.Value > 2) TS.Store(tile + 2 * row + 2 * l, a22); if (TNr.Value > 3) TS.Store(tile + 2 * row + 3 * l, a23); }
        if (TMr.Value > 3) { TS.Store(tile + 3 * row + 0 * l, a30); if (TNr.Value > 1) TS.Store(tile + 3 * row + 1 * l, a31); if (TNr.Value > 2) TS.Store(tile + 3 * row + 2 * l, a32); if (TNr.Value > 3) TS.Store(tile + 3 * row + 3 * l, a33); }
        if (TMr.Value > 4) { TS.Store(tile + 4 * row + 0 * l, a40); if (TNr.Value > 1) TS.Store(tile + 4 * row + 1 * l, a41); if (TNr.Value > 2) TS.Store(tile + 4 * row + 2 * l, a42); if (TNr.Value > 3) TS.Store(tile + 4 * row + 3 * l, a43); }
        if (TMr.Value > 5) { TS.Store(tile + 5 * row + 0 * l, a50); if (TNr.Value > 1) TS.Store(tile + 5 * row + 1 * l, a51); if (TNr.Value > 2) TS.Store(tile + 5 * row + 2 * l, a52); if (TNr.Value > 3) TS.Store(tile + 5 * row + 3 * l, a53); }
    }

    /// <summary>Runtime (phases, vectors) to the matching specialisation.</summary>
    public static void Dispatch(int mr, int nr, float* xb, int* tapOff, int taps, int cig, long xs, float* w, long phaseStride, float* tile, bool accumulate)
    {
        switch (nr)
        {
            case 1: ByMr<C1>(mr, xb, tapOff, taps, cig, xs, w, phaseStride, tile, accumulate); break;
            case 2: ByMr<C2>(mr, xb, tapOff, taps, cig, xs, w, phaseStride, tile, accumulate); break;
            case 3: ByMr<C3>(mr, xb, tapOff, taps, cig, xs, w, phaseStride, tile, accumulate); break;
            case 4: ByMr<C4>(mr, xb, tapOff, taps, cig, xs, w, phaseStride, tile, accumulate); break;
            default: throw new ArgumentOutOfRangeException(nameof(nr), nr, "1..4 vectors");
        }
    }

    private static void ByMr<TNr>(int mr, float* xb, int* tapOff, int taps, int cig, long xs, float* w, long phaseStride, float* tile, bool accumulate)
        where TNr : struct, IConst
    {
        switch (mr)
        {
            case 1: Run<C1, TNr>(xb, tapOff, taps, cig, xs, w, phaseStride, tile, accumulate); break;
            case 2: Run<C2, TNr>(xb, tapOff, taps, cig, xs, w, phaseStride, tile, accumulate); break;
            case 3: Run<C3, TNr>(xb, tapOff, taps, cig, xs, w, phaseStride, tile, accumulate); break;
            case 4: Run<C4, TNr>(xb, tapOff, taps, cig, xs, w, phaseStride, tile, accumulate); break;
            case 5: Run<C5, TNr>(xb, tapOff, taps, cig, xs, w, phaseStride, tile, accumulate); break;
            case 6: Run<C6, TNr>(xb, tapOff, taps, cig, xs, w, phaseStride, tile, accumulate); break;
            default: throw new ArgumentOutOfRangeException(nameof(mr), mr, "1..6 phases");
        }
    }
}
