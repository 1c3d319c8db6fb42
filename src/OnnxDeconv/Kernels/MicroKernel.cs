using System.Runtime.CompilerServices;

namespace OnnxDeconv.Kernels;

/// <summary>
/// The register-blocked micro-kernel: up to 12 output channels x up to 4 vectors of output pixels stay in registers while
/// it streams the contraction (input channel x tap). <typeparamref name="TMr"/>/<typeparamref name="TNr"/> are
/// compile-time constants, so the JIT specialises each shape and drops the unused accumulators (no arrays, no spills).
/// Weights are read in <see cref="DeconvKernel.PackWeights"/> order: [ci][tap][channel of block].
/// </summary>
internal static unsafe class MicroKernel<TS, TV> where TS : struct, ISimd<TV> where TV : unmanaged
{
    /// <param name="xb">Base of the x source (input channel 0 of the group, or the packed panel).</param>
    /// <param name="tapOff">Per tap: offset of pixel 0 from the channel base.</param>
    /// <param name="xs">Stride between input channels in the x source.</param>
    /// <param name="w">First weight of this channel sub-block; <paramref name="wStride"/> floats per (ci, tap) step.</param>
    /// <param name="tile">Output: TMr rows of TNr*Lanes floats.</param>
    /// <param name="accumulate">Start from the tile's values (a later slice of input channels) instead of zero.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run<TMr, TNr>(float* xb, int* tapOff, int taps, int cig, long xs, float* w, int wStride, float* tile, bool accumulate)
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
        TV a60 = default; TV a61 = default; TV a62 = default; TV a63 = default;
        TV a70 = default; TV a71 = default; TV a72 = default; TV a73 = default;
        TV a80 = default; TV a81 = default; TV a82 = default; TV a83 = default;
        TV a90 = default; TV a91 = default; TV a92 = default; TV a93 = default;
        TV a100 = default; TV a101 = default; TV a102 = default; TV a103 = default;
        TV a110 = default; TV a111 = default; TV a112 = default; TV a113 = default;
        if (accumulate)
        {
            { a00 = TS.Load(tile + 0 * row + 0 * l); if (TNr.Value > 1) a01 = TS.Load(tile + 0 * row + 1 * l); if (TNr.Value > 2) a02 = TS.Load(tile + 0 * row + 2 * l); if (TNr.Value > 3) a03 = TS.Load(tile + 0 * row + 3 * l); }
            if (TMr.Value > 1) { a10 = TS.Load(tile + 1 * row + 0 * l); if (TNr.Value > 1) a11 = TS.Load(tile + 1 * row + 1 * l); if (TNr.Value > 2) a12 = TS.Load(tile + 1 * row + 2 * l); if (TNr.Value > 3) a13 = TS.Load(tile + 1 * row + 3 * l); }
            if (TMr.Value > 2) { a20 = TS.Load(tile + 2 * row + 0 * l); if (TNr.Value > 1) a21 = TS.Load(tile + 2 * row + 1 * l); if (TNr.Value > 2) a22 = TS.Load(tile + 2 * row + 2 * l); if (TNr.Value > 3) a23 = TS.Load(tile + 2 * row + 3 * l); }
            if (TMr.Value > 3) { a30 = TS.Load(tile + 3 * row + 0 * l); if (TNr.Value > 1) a31 = TS.Load(tile + 3 * row + 1 * l); if (TNr.Value > 2) a32 = TS.Load(tile + 3 * row + 2 * l); if (TNr.Value > 3) a33 = TS.Load(tile + 3 * row + 3 * l); }
            if (TMr.Value > 4) { a40 = TS.Load(tile + 4 * row + 0 * l); if (TNr.Value > 1) a41 = TS.Load(tile + 4 * row + 1 * l); if (TNr.Value > 2) a42 = TS.Load(tile + 4 * row + 2 * l); if (TNr.Value > 3) a43 = TS.Load(tile + 4 * row + 3 * l); }
            if (TMr.Value > 5) { a50 = TS.Load(tile + 5 * row + 0 * l); if (TNr.Value > 1) a51 = TS.Load(tile + 5 * row + 1 * l); if (TNr.Value > 2) a52 = TS.Load(tile + 5 * row + 2 * l); if (TNr.Value > 3) a53 = TS.Load(tile + 5 * row + 3 * l); }
            if (TMr.Value > 6) { a60 = TS.Load(tile + 6 * row + 0 * l); if (TNr.Value > 1) a61 = TS.Load(tile + 6 * row + 1 * l); if (TNr.Value > 2) a62 = TS.Load(tile + 6 * row + 2 * l); if (TNr.Value > 3) a63 = TS.Load(tile + 6 * row + 3 * l); }
            if (TMr.Value > 7) { a70 = TS.Load(tile + 7 * row + 0 * l); if (TNr.Value > 1) a71 = TS.Load(tile + 7 * row + 1 * l); if (TNr.Value > 2) a72 = TS.Load(tile + 7 * row + 2 * l); if (TNr.Value > 3) a73 = TS.Load(tile + 7 * row + 3 * l); }
            if (TMr.Value > 8) { a80 = TS.Load(tile + 8 * row + 0 * l); if (TNr.Value > 1) a81 = TS.Load(tile + 8 * row + 1 * l); if (TNr.Value > 2) a82 = TS.Load(tile + 8 * row + 2 * l); if (TNr.Value > 3) a83 = TS.Load(tile + 8 * row + 3 * l); }
            if (TMr.Value > 9) { a90 = TS.Load(tile + 9 * row + 0 * l); if (TNr.Value > 1) a91 = TS.Load(tile + 9 * row + 1 * l); if (TNr.Value > 2) a92 = TS.Load(tile + 9 * row + 2 * l); if (TNr.Value > 3) a93 = TS.Load(tile + 9 * row + 3 * l); }
            if (TMr.Value > 10) { a100 = TS.Load(tile + 10 * row + 0 * l); if (TNr.Value > 1) a101 = TS.Load(tile + 10 * row + 1 * l); if (TNr.Value > 2) a102 = TS.Load(tile + 10 * row + 2 * l); if (TNr.Value > 3) a103 = TS.Load(tile + 10 * row + 3 * l); }
            if (TMr.Value > 11) { a110 = TS.Load(tile + 11 * row + 0 * l); if (TNr.Value > 1) a111 = TS.Load(tile + 11 * row + 1 * l); if (TNr.Value > 2) a112 = TS.Load(tile + 11 * row + 2 * l); if (TNr.Value > 3) a113 = TS.Load(tile + 11 * row + 3 * l); }
        }
        for (int ci = 0; ci < cig; ci++)
        {
            float* xc = xb + ci * xs;
            for (int t = 0; t < taps; t++)
            {
                float* xp = xc + tapOff[t];
                TV x0 = TS.Load(xp);
                TV x1 = default, x2 = default, x3 = default;
                if (TNr.Value > 1) x1 = TS.Load(xp + 1 * l);
                if (TNr.Value > 2) x2 = TS.Load(xp + 2 * l);
                if (TNr.Value > 3) x3 = TS.Load(xp + 3 * l);
                TV wv;
                wv = TS.Splat(w[0]);
                a00 = TS.MulAdd(wv, x0, a00);
                if (TNr.Value > 1) a01 = TS.MulAdd(wv, x1, a01);
                if (TNr.Value > 2) a02 = TS.MulAdd(wv, x2, a02);
                if (TNr.Value > 3) a03 = TS.MulAdd(wv, x3, a03);
                if (TMr.Value > 1)
                {
                    wv = TS.Splat(w[1]);
                    a10 = TS.MulAdd(wv, x0, a10);
                    if (TNr.Value > 1) a11 = TS.MulAdd(wv, x1, a11);
                    if (TNr.Value > 2) a12 = TS.MulAdd(wv, x2, a12);
                    if (TNr.Value > 3) a13 = TS.MulAdd(wv, x3, a13);
                }
                if (TMr.Value > 2)
                {
                    wv = TS.Splat(w[2]);
                    a20 = TS.MulAdd(wv, x0, a20);
                    if (TNr.Value > 1) a21 = TS.MulAdd(wv, x1, a21);
                    if (TNr.Value > 2) a22 = TS.MulAdd(wv, x2, a22);
                    if (TNr.Value > 3) a23 = TS.MulAdd(wv, x3, a23);
                }
                if (TMr.Value > 3)
                {
                    wv = TS.Splat(w[3]);
                    a30 = TS.MulAdd(wv, x0, a30);
                    if (TNr.Value > 1) a31 = TS.MulAdd(wv, x1, a31);
                    if (TNr.Value > 2) a32 = TS.MulAdd(wv, x2, a32);
                    if (TNr.Value > 3) a33 = TS.MulAdd(wv, x3, a33);
                }
                if (TMr.Value > 4)
                {
                    wv = TS.Splat(w[4]);
                    a40 = TS.MulAdd(wv, x0, a40);
                    if (TNr.Value > 1) a41 = TS.MulAdd(wv, x1, a41);
                    if (TNr.Value > 2) a42 = TS.MulAdd(wv, x2, a42);
                    if (TNr.Value > 3) a43 = TS.MulAdd(wv, x3, a43);
                }
                if (TMr.Value > 5)
                {
                    wv = TS.Splat(w[5]);
                    a50 = TS.MulAdd(wv, x0, a50);
                    if (TNr.Value > 1) a51 = TS.MulAdd(wv, x1, a51);
                    if (TNr.Value > 2) a52 = TS.MulAdd(wv, x2, a52);
                    if (TNr.Value > 3) a53 = TS.MulAdd(wv, x3, a53);
                }
                if (TMr.Value > 6)
                {
                    wv = TS.Splat(w[6]);
                    a60 = TS.MulAdd(wv, x0, a60);
                    if (TNr.Value > 1) a61 = TS.MulAdd(wv, x1, a61);
                    if (TNr.Value > 2) a62 = TS.MulAdd(wv, x2, a62);
                    if (TNr.Value > 3) a63 = TS.MulAdd(wv, x3, a63);
                }
                if (TMr.Value > 7)
                {
                    wv = TS.Splat(w[7]);
                    a70 = TS.MulAdd(wv, x0, a70);
                    if (TNr.Value > 1) a71 = TS.MulAdd(wv, x1, a71);
                    if (TNr.Value > 2) a72 = TS.MulAdd(wv, x2, a72);
                    if (TNr.Value > 3) a73 = TS.MulAdd(wv, x3, a73);
                }
                if (TMr.Value > 8)
                {
                    wv = TS.Splat(w[8]);
                    a80 = TS.MulAdd(wv, x0, a80);
                    if (TNr.Value > 1) a81 = TS.MulAdd(wv, x1, a81);
                    if (TNr.Value > 2) a82 = TS.MulAdd(wv, x2, a82);
                    if (TNr.Value > 3) a83 = TS.MulAdd(wv, x3, a83);
                }
                if (TMr.Value > 9)
                {
                    wv = TS.Splat(w[9]);
                    a90 = TS.MulAdd(wv, x0, a90);
                    if (TNr.Value > 1) a91 = TS.MulAdd(wv, x1, a91);
                    if (TNr.Value > 2) a92 = TS.MulAdd(wv, x2, a92);
                    if (TNr.Value > 3) a93 = TS.MulAdd(wv, x3, a93);
                }
                if (TMr.Value > 10)
                {
                    wv = TS.Splat(w[10]);
                    a100 = TS.MulAdd(wv, x0, a100);
                    if (TNr.Value > 1) a101 = TS.MulAdd(wv, x1, a101);
                    if (TNr.Value > 2) a102 = TS.MulAdd(wv, x2, a102);
                    if (TNr.Value > 3) a103 = TS.MulAdd(wv, x3, a103);
                }
                if (TMr.Value > 11)
                {
                    wv = TS.Splat(w[11]);
                    a110 = TS.MulAdd(wv, x0, a110);
                    if (TNr.Value > 1) a111 = TS.MulAdd(wv, x1, a111);
                    if (TNr.Value > 2) a112 = TS.MulAdd(wv, x2, a112);
                    if (TNr.Value > 3) a113 = TS.MulAdd(wv, x3, a113);
                }
                w += wStride;
            }
        }
        { TS.Store(tile + 0 * row + 0 * l, a00); if (TNr.Value > 1) TS.Store(tile + 0 * row + 1 * l, a01); if (TNr.Value > 2) TS.Store(tile + 0 * row + 2 * l, a02); if (TNr.Value > 3) TS.Store(tile + 0 * row + 3 * l, a03); }
        if (TMr.Value > 1) { TS.Store(tile + 1 * row + 0 * l, a10); if (TNr.Value > 1) TS.Store(tile + 1 * row + 1 * l, a11); if (TNr.Value > 2) TS.Store(tile + 1 * row + 2 * l, a12); if (TNr.Value > 3) TS.Store(tile + 1 * row + 3 * l, a13); }
        if (TMr.Value > 2) { TS.Store(tile + 2 * row + 0 * l, a20); if (TNr.Value > 1) TS.Store(tile + 2 * row + 1 * l, a21); if (TNr.Value > 2) TS.Store(tile + 2 * row + 2 * l, a22); if (TNr.Value > 3) TS.Store(tile + 2 * row + 3 * l, a23); }
        if (TMr.Value > 3) { TS.Store(tile + 3 * row + 0 * l, a30); if (TNr.Value > 1) TS.Store(tile + 3 * row + 1 * l, a31); if (TNr.Value > 2) TS.Store(tile + 3 * row + 2 * l, a32); if (TNr.Value > 3) TS.Store(tile + 3 * row + 3 * l, a33); }
        if (TMr.Value > 4) { TS.Store(tile + 4 * row + 0 * l, a40); if (TNr.Value > 1) TS.Store(tile + 4 * row + 1 * l, a41); if (TNr.Value > 2) TS.Store(tile + 4 * row + 2 * l, a42); if (TNr.Value > 3) TS.Store(tile + 4 * row + 3 * l, a43); }
        if (TMr.Value > 5) { TS.Store(tile + 5 * row + 0 * l, a50); if (TNr.Value > 1) TS.Store(tile + 5 * row + 1 * l, a51); if (TNr.Value > 2) TS.Store(tile + 5 * row + 2 * l, a52); if (TNr.Value > 3) TS.Store(tile + 5 * row + 3 * l, a53); }
        if (TMr.Value > 6) { TS.Store(tile + 6 * row + 0 * l, a60); if (TNr.Value > 1) TS.Store(tile + 6 * row + 1 * l, a61); if (TNr.Value > 2) TS.Store(tile + 6 * row + 2 * l, a62); if (TNr.Value > 3) TS.Store(tile + 6 * row + 3 * l, a63); }
        if (TMr.Value > 7) { TS.Store(tile + 7 * row + 0 * l, a70); if (TNr.Value > 1) TS.Store(tile + 7 * row + 1 * l, a71); if (TNr.Value > 2) TS.Store(tile + 7 * row + 2 * l, a72); if (TNr.Value > 3) TS.Store(tile + 7 * row + 3 * l, a73); }
        if (TMr.Value > 8) { TS.Store(tile + 8 * row + 0 * l, a80); if (TNr.Value > 1) TS.Store(tile + 8 * row + 1 * l, a81); if (TNr.Value > 2) TS.Store(tile + 8 * row + 2 * l, a82); if (TNr.Value > 3) TS.Store(tile + 8 * row + 3 * l, a83); }
        if (TMr.Value > 9) { TS.Store(tile + 9 * row + 0 * l, a90); if (TNr.Value > 1) TS.Store(tile + 9 * row + 1 * l, a91); if (TNr.Value > 2) TS.Store(tile + 9 * row + 2 * l, a92); if (TNr.Value > 3) TS.Store(tile + 9 * row + 3 * l, a93); }
        if (TMr.Value > 10) { TS.Store(tile + 10 * row + 0 * l, a100); if (TNr.Value > 1) TS.Store(tile + 10 * row + 1 * l, a101); if (TNr.Value > 2) TS.Store(tile + 10 * row + 2 * l, a102); if (TNr.Value > 3) TS.Store(tile + 10 * row + 3 * l, a103); }
        if (TMr.Value > 11) { TS.Store(tile + 11 * row + 0 * l, a110); if (TNr.Value > 1) TS.Store(tile + 11 * row + 1 * l, a111); if (TNr.Value > 2) TS.Store(tile + 11 * row + 2 * l, a112); if (TNr.Value > 3) TS.Store(tile + 11 * row + 3 * l, a113); }
    }

    /// <summary>Runtime (channels, vectors) to the matching specialisation.</summary>
    public static void Dispatch(int mr, int nr, float* xb, int* tapOff, int taps, int cig, long xs, float* w, int wStride, float* tile, bool accumulate)
    {
        switch (nr)
        {
            case 1: ByMr<C1>(mr, xb, tapOff, taps, cig, xs, w, wStride, tile, accumulate); break;
            case 2: ByMr<C2>(mr, xb, tapOff, taps, cig, xs, w, wStride, tile, accumulate); break;
            case 3: ByMr<C3>(mr, xb, tapOff, taps, cig, xs, w, wStride, tile, accumulate); break;
            case 4: ByMr<C4>(mr, xb, tapOff, taps, cig, xs, w, wStride, tile, accumulate); break;
            default: throw new ArgumentOutOfRangeException(nameof(nr), nr, "1..4 vectors");
        }
    }

    private static void ByMr<TNr>(int mr, float* xb, int* tapOff, int taps, int cig, long xs, float* w, int wStride, float* tile, bool accumulate)
        where TNr : struct, IConst
    {
        switch (mr)
        {
            case 1: Run<C1, TNr>(xb, tapOff, taps, cig, xs, w, wStride, tile, accumulate); break;
            case 2: Run<C2, TNr>(xb, tapOff, taps, cig, xs, w, wStride, tile, accumulate); break;
            case 3: Run<C3, TNr>(xb, tapOff, taps, cig, xs, w, wStride, tile, accumulate); break;
            case 4: Run<C4, TNr>(xb, tapOff, taps, cig, xs, w, wStride, tile, accumulate); break;
            case 5: Run<C5, TNr>(xb, tapOff, taps, cig, xs, w, wStride, tile, accumulate); break;
            case 6: Run<C6, TNr>(xb, tapOff, taps, cig, xs, w, wStride, tile, accumulate); break;
            case 7: Run<C7, TNr>(xb, tapOff, taps, cig, xs, w, wStride, tile, accumulate); break;
            case 8: Run<C8, TNr>(xb, tapOff, taps, cig, xs, w, wStride, tile, accumulate); break;
            case 9: Run<C9, TNr>(xb, tapOff, taps, cig, xs, w, wStride, tile, accumulate); break;
            case 10: Run<C10, TNr>(xb, tapOff, taps, cig, xs, w, wStride, tile, accumulate); break;
            case 11: Run<C11, TNr>(xb, tapOff, taps, cig, xs, w, wStride, tile, accumulate); break;
            case 12: Run<C12, TNr>(xb, tapOff, taps, cig, xs, w, wStride, tile, accumulate); break;
            default: throw new ArgumentOutOfRangeException(nameof(mr), mr, "1..8 channels");
        }
    }
}
