using System.Diagnostics;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace OnnxDeconv.GraphRewrite.Timing;

/// <summary>The machine's FP32 FMA peak, measured with a register-only loop (no memory traffic).</summary>
public static class FmaPeak
{
    public static double GflopsPerSecond(int threads, TimeSpan duration)
    {
        var results = new double[threads];
        var ts = Enumerable.Range(0, threads).Select(i => new Thread(() => results[i] = OneThread(duration))).ToArray();
        foreach (var t in ts) t.Start();
        foreach (var t in ts) t.Join();
        return results.Sum();
    }

    private static double OneThread(TimeSpan duration)
    {
        double best = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < duration)
        {
            long t0 = Stopwatch.GetTimestamp();
            const long iters = 2_000_000;
            float sink = Vector512.IsHardwareAccelerated && Avx512F.IsSupported ? Loop512(iters) : Loop256(iters);
            double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            int lanes = Vector512.IsHardwareAccelerated && Avx512F.IsSupported ? 16 : 8;
            best = Math.Max(best, iters * 12.0 * lanes * 2 / s / 1e9);
            if (sink == 12345.678f) Console.Write(""); // keep the result alive
        }
        return best;
    }

    private static float Loop512(long iters)
    {
        var m = Vector512.Create(0.999999f);
        var c = Vector512.Create(1e-7f);
        Vector512<float> a0 = Vector512.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (long i = 0; i < iters; i++)
        {
            a0 = Avx512F.FusedMultiplyAdd(a0, m, c); a1 = Avx512F.FusedMultiplyAdd(a1, m, c);
            a2 = Avx512F.FusedMultiplyAdd(a2, m, c); a3 = Avx512F.FusedMultiplyAdd(a3, m, c);
            a4 = Avx512F.FusedMultiplyAdd(a4, m, c); a5 = Avx512F.FusedMultiplyAdd(a5, m, c);
            a6 = Avx512F.FusedMultiplyAdd(a6, m, c); a7 = Avx512F.FusedMultiplyAdd(a7, m, c);
            a8 = Avx512F.FusedMultiplyAdd(a8, m, c); a9 = Avx512F.FusedMultiplyAdd(a9, m, c);
            a10 = Avx512F.FusedMultiplyAdd(a10, m, c); a11 = Avx512F.FusedMultiplyAdd(a11, m, c);
        }
        return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    private static float Loop256(long iters)
    {
        var m = Vector256.Create(0.999999f);
        var c = Vector256.Create(1e-7f);
        Vector256<float> a0 = Vector256.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (long i = 0; i < iters; i++)
        {
            a0 = Fma.MultiplyAdd(a0, m, c); a1 = Fma.MultiplyAdd(a1, m, c); a2 = Fma.MultiplyAdd(a2, m, c); a3 = Fma.MultiplyAdd(a3, m, c);
            a4 = Fma.MultiplyAdd(a4, m, c); a5 = Fma.MultiplyAdd(a5, m, c); a6 = Fma.MultiplyAdd(a6, m, c); a7 = Fma.MultiplyAdd(a7, m, c);
            a8 = Fma.MultiplyAdd(a8, m, c); a9 = Fma.MultiplyAdd(a9, m, c); a10 = Fma.MultiplyAdd(a10, m, c); a11 = Fma.MultiplyAdd(a11, m, c);
        }
        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }
}
