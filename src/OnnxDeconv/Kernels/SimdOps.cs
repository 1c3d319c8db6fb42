using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace OnnxDeconv.Kernels;

/// <summary>A compile-time integer for generic specialisation (the JIT folds <see cref="Value"/> per struct).</summary>
internal interface IConst { static abstract int Value { get; } }
internal readonly struct C1 : IConst { public static int Value => 1; }
internal readonly struct C2 : IConst { public static int Value => 2; }
internal readonly struct C3 : IConst { public static int Value => 3; }
internal readonly struct C4 : IConst { public static int Value => 4; }
internal readonly struct C5 : IConst { public static int Value => 5; }
internal readonly struct C6 : IConst { public static int Value => 6; }
internal readonly struct C7 : IConst { public static int Value => 7; }
internal readonly struct C8 : IConst { public static int Value => 8; }
internal readonly struct C12 : IConst { public static int Value => 12; }
internal readonly struct C11 : IConst { public static int Value => 11; }
internal readonly struct C10 : IConst { public static int Value => 10; }
internal readonly struct C9 : IConst { public static int Value => 9; }

/// <summary>
/// The handful of vector operations the kernel needs, one implementation per ISA. Implementations are structs with
/// static members so every use is resolved and inlined at JIT time (no virtual calls in the hot loop).
/// </summary>
internal unsafe interface ISimd<TV> where TV : unmanaged
{
    static abstract int Lanes { get; }
    static abstract TV Load(float* p);
    static abstract void Store(float* p, TV v);
    static abstract TV Splat(float v);
    /// <summary>a*b + c (fused where the ISA has FMA).</summary>
    static abstract TV MulAdd(TV a, TV b, TV c);
    static abstract TV Add(TV a, TV b);
    /// <summary>v &gt; 0 ? v : 0 per lane (NaN gives 0, as the scalar epilogue does).</summary>
    static abstract TV Relu(TV v);
    /// <summary>
    /// Interleaves two output phases of stride 2 (a[0] b[0] a[1] b[1] ...): the first Lanes floats go to <paramref name="lo"/>,
    /// the last Lanes to <paramref name="hi"/> (hi = lo + Lanes for one run; elsewhere when a vector spans two half-vector rows).
    /// </summary>
    static abstract void StoreInterleaved2(float* lo, float* hi, TV a, TV b);
}

internal readonly unsafe struct Avx512Ops : ISimd<Vector512<float>>
{
    public static int Lanes => 16;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* p) => Vector512.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, Vector512<float> v) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Splat(float v) => Vector512.Create(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> MulAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Avx512F.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Relu(Vector512<float> v) =>
        Vector512.ConditionalSelect(Vector512.GreaterThan(v, Vector512<float>.Zero), v, Vector512<float>.Zero);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreInterleaved2(float* lo, float* hi, Vector512<float> a, Vector512<float> b)
    {
        // vpermt2ps: index i < 16 picks a[i], 16 + i picks b[i].
        Avx512F.PermuteVar16x32x2(a, Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), b).Store(lo);
        Avx512F.PermuteVar16x32x2(a, Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), b).Store(hi);
    }
}

internal readonly unsafe struct Avx2Ops : ISimd<Vector256<float>>
{
    public static int Lanes => 8;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* p) => Vector256.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, Vector256<float> v) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Splat(float v) => Vector256.Create(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> MulAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Fma.MultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Relu(Vector256<float> v) =>
        Vector256.ConditionalSelect(Vector256.GreaterThan(v, Vector256<float>.Zero), v, Vector256<float>.Zero);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreInterleaved2(float* lo, float* hi, Vector256<float> a, Vector256<float> b)
    {
        // unpck interleaves within each 128-bit half (a0 b0 a1 b1 | a4 b4 a5 b5 and a2 b2 a3 b3 | a6 b6 a7 b7);
        // vperm2f128 then joins the low halves and the high halves.
        var l = Avx.UnpackLow(a, b);
        var h = Avx.UnpackHigh(a, b);
        Avx.Permute2x128(l, h, 0x20).Store(lo);
        Avx.Permute2x128(l, h, 0x31).Store(hi);
    }
}

/// <summary>Portable <see cref="Vector{T}"/>: multiply then add, because a software-emulated FMA would be far slower.</summary>
internal readonly unsafe struct VectorOps : ISimd<Vector<float>>
{
    public static int Lanes => Vector<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector<float> Load(float* p) => Unsafe.ReadUnaligned<Vector<float>>(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, Vector<float> v) => Unsafe.WriteUnaligned(p, v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector<float> Splat(float v) => new(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<float> MulAdd(Vector<float> a, Vector<float> b, Vector<float> c) => a * b + c;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector<float> Add(Vector<float> a, Vector<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<float> Relu(Vector<float> v) => Vector.ConditionalSelect(Vector.GreaterThan(v, Vector<float>.Zero), v, Vector<float>.Zero);
    /// <summary>Vector&lt;T&gt; has no portable lane shuffle: element by element (still one contiguous run per pair).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreInterleaved2(float* lo, float* hi, Vector<float> a, Vector<float> b)
    {
        int half = Vector<float>.Count / 2;
        for (int j = 0; j < half; j++) { lo[2 * j] = a[j]; lo[2 * j + 1] = b[j]; }
        for (int j = half; j < Vector<float>.Count; j++) { hi[2 * (j - half)] = a[j]; hi[2 * (j - half) + 1] = b[j]; }
    }
}

internal readonly unsafe struct ScalarOps : ISimd<float>
{
    public static int Lanes => 1;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Load(float* p) => *p;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, float v) => *p = v;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Splat(float v) => v;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MulAdd(float a, float b, float c) => a * b + c;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Add(float a, float b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Relu(float v) => v > 0 ? v : 0f;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreInterleaved2(float* lo, float* hi, float a, float b) { lo[0] = a; hi[0] = b; }
}
