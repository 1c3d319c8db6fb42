using System.Buffers;
using System.Numerics.Tensors;
using OnnxDeconv.Kernels;
using S = OnnxDeconv.Plugin.TransposedConvSchema;

namespace OnnxDeconv.Plugin;

/// <summary>
/// The float16 kernel of TransposedConv: the kernel computes in float32; the conversion happens here, at the op
/// boundary. X is widened into a pooled buffer, Y computed in float32 and narrowed (round to nearest even) into the
/// float16 output. Constant W and B (initializers, as the rewrite emits them) are widened once when the kernel is
/// created; a W or B fed at run time is widened per call. The result equals the float32 op on the widened values,
/// rounded once to float16 - what ONNX Runtime does around a float ConvTranspose for a float16 model, without the
/// Cast nodes.
/// </summary>
internal static unsafe partial class TransposedConvOp
{
    private static void ConvertConstantHalfInputs(OrtApi api, IntPtr info, KernelState state)
    {
        state.ConstantW = WidenConstant(api, api.KernelInfoConstantInput(info, S.InputW));
        state.ConstantB = WidenConstant(api, api.KernelInfoConstantInput(info, S.InputB));
    }

    private static float[]? WidenConstant(OrtApi api, IntPtr value)
    {
        if (value == IntPtr.Zero) return null;
        var (type, dims) = api.TensorTypeAndShape(value);
        if (type != ElementFloat16) return null; // Compute reports the type mismatch with the input's name
        long n = 1;
        foreach (var d in dims) n = checked(n * d);
        if (n > int.MaxValue) return null;
        var widened = new float[n];
        TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(api.TensorData(value), (int)n), widened);
        return widened;
    }

    private static void RunHalf(KernelState state, DeconvPlan plan, OrtApi api, IntPtr xv, IntPtr wv, IntPtr bv, IntPtr yv,
        long xCount, long wCount, long bCount, long yCount, IParallelFor parallel)
    {
        var pool = ArrayPool<float>.Shared;
        float[]? x = null, w = null, b = null, y = null;
        try
        {
            x = pool.Rent((int)xCount);
            TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(api.TensorData(xv), (int)xCount), x.AsSpan(0, (int)xCount));
            ReadOnlySpan<float> weights = state.ConstantW is { } cw && cw.Length == wCount ? cw : Widen(api, wv, (int)wCount, pool, ref w);
            ReadOnlySpan<float> bias = bCount == 0 ? ReadOnlySpan<float>.Empty
                : state.ConstantB is { } cb && cb.Length == bCount ? cb : Widen(api, bv, (int)bCount, pool, ref b);
            y = pool.Rent((int)yCount);
            DeconvKernel.Run(plan, state.Attributes.Epilogue, x.AsSpan(0, (int)xCount), weights, bias, y.AsSpan(0, (int)yCount), parallel);
            TensorPrimitives.ConvertToHalf(y.AsSpan(0, (int)yCount), new Span<Half>(api.TensorData(yv), (int)yCount));
        }
        finally
        {
            if (x is not null) pool.Return(x);
            if (w is not null) pool.Return(w);
            if (b is not null) pool.Return(b);
            if (y is not null) pool.Return(y);
        }
    }

    private static ReadOnlySpan<float> Widen(OrtApi api, IntPtr value, int count, ArrayPool<float> pool, ref float[]? rented)
    {
        rented = pool.Rent(count);
        var dst = rented.AsSpan(0, count);
        TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(api.TensorData(value), count), dst);
        return dst;
    }
}
