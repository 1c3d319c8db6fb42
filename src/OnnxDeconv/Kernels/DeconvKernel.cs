using OnnxDeconv.Geometry;

namespace OnnxDeconv.Kernels;

/// <summary>Activation fused into the kernel's epilogue (applied once per output element after bias).</summary>
public enum Activation { None = 0, Relu = 1, LeakyRelu = 2, Clip = 3, Sigmoid = 4, Tanh = 5 }

/// <summary>The fused epilogue: <see cref="Alpha"/> is LeakyRelu's slope; <see cref="Min"/>/<see cref="Max"/> are Clip's bounds.</summary>
public readonly record struct Epilogue(Activation Kind, float Alpha = 0.01f, float Min = float.NegativeInfinity, float Max = float.PositiveInfinity)
{
    public static Epilogue None => new(Activation.None);

    public float Apply(float v) => Kind switch
    {
        Activation.None => v,
        Activation.Relu => v > 0 ? v : 0f,
        Activation.LeakyRelu => v >= 0 ? v : v * Alpha,
        Activation.Clip => Math.Min(Math.Max(v, Min), Max),
        Activation.Sigmoid => 1f / (1f + MathF.Exp(-v)),
        Activation.Tanh => MathF.Tanh(v),
        _ => throw new ArgumentOutOfRangeException(nameof(Kind), Kind, "unknown activation"),
    };
}

/// <summary>Runs <c>count</c> independent work items, possibly in parallel (ONNX Runtime's intra-op pool in the plugin).</summary>
public interface IParallelFor
{
    void For(int count, Action<int> body);
}

/// <summary>Runs work items one after another.</summary>
public sealed class SerialFor : IParallelFor
{
    public static readonly SerialFor Instance = new();
    public void For(int count, Action<int> body) { for (int i = 0; i < count; i++) body(i); }
}

/// <summary>
/// The zero-free ConvTranspose kernel behind the plugin op. Weights are packed once, offline, by
/// <see cref="PackWeights"/> (the rewriter stores the packed tensor as the custom node's initializer);
/// <see cref="Run"/> reads exactly that layout. Never touches an inserted zero.
/// </summary>
public static class DeconvKernel
{
    /// <summary>Number of floats of the packed weight for <paramref name="g"/> (depends on channels, group, kernel, strides, dilations only).</summary>
    public static long PackedWeightLength(ConvTransposeGeometry g) =>
        g.InChannels * g.OutChannelsPerGroup * g.Axes.Aggregate(1L, (p, a) => p * a.Kernel);

    /// <summary>Packs ONNX-layout weights [Cin, Cout/group, K...] into the kernel's layout.</summary>
    public static void PackWeights(ConvTransposeGeometry g, ReadOnlySpan<float> onnxWeights, Span<float> packed)
    {
        long n = PackedWeightLength(g);
        if (onnxWeights.Length != n) throw new ArgumentException($"W has {onnxWeights.Length} values; geometry needs {n}");
        if (packed.Length != n) throw new ArgumentException($"packed W has {packed.Length} values; geometry needs {n}");
        onnxWeights.CopyTo(packed);
    }

    /// <summary>Bytes of scratch memory <see cref="Run"/> uses besides the output (reported by the benchmark).</summary>
    public static long WorkspaceBytes(ConvTransposeGeometry g) => 0;

    /// <summary>
    /// y = epilogue(ConvTranspose(x, W) + b). Direct scatter: each input element is multiplied into the output
    /// positions it reaches; work is split over (batch, output channel) so writers never overlap.
    /// </summary>
    public static void Run(ConvTransposeGeometry g, Epilogue epilogue, ReadOnlySpan<float> x, ReadOnlySpan<float> packedW,
        ReadOnlySpan<float> bias, Span<float> y, IParallelFor? parallel = null)
    {
        long inSpatial = g.Axes.Aggregate(1L, (p, a) => p * a.Input);
        long outSpatial = g.Axes.Aggregate(1L, (p, a) => p * a.Output);
        if (x.Length != g.Batch * g.InChannels * inSpatial) throw new ArgumentException("X size does not match the geometry");
        if (packedW.Length != PackedWeightLength(g)) throw new ArgumentException("packed W size does not match the geometry");
        if (bias.Length != 0 && bias.Length != g.OutChannels) throw new ArgumentException("B must be empty or have Cout values");
        if (y.Length != g.Batch * g.OutChannels * outSpatial) throw new ArgumentException("Y size does not match the geometry");
        unsafe
        {
            fixed (float* px = x, pw = packedW, pb = bias, py = y)
            {
                var job = new ScatterJob(g, epilogue, px, pw, bias.Length == 0 ? null : pb, py, inSpatial, outSpatial);
                int items = checked((int)(g.Batch * g.OutChannels));
                (parallel ?? SerialFor.Instance).For(items, job.Execute);
            }
        }
    }

    private sealed unsafe class ScatterJob(ConvTransposeGeometry g, Epilogue ep, float* x, float* w, float* b, float* y, long inSpatial, long outSpatial)
    {
        public void Execute(int item)
        {
            long n = item / g.OutChannels, co = item % g.OutChannels;
            long cog = g.OutChannelsPerGroup, cig = g.InChannelsPerGroup;
            long grp = co / cog, oc = co % cog;
            int r = g.Rank;
            long kSpatial = g.Axes.Aggregate(1L, (p, a) => p * a.Kernel);
            float* yc = y + (n * g.OutChannels + co) * outSpatial;
            float bv = b is null ? 0f : b[co];
            for (long o = 0; o < outSpatial; o++) yc[o] = bv;
            Span<long> iIdx = stackalloc long[r];
            Span<long> kIdx = stackalloc long[r];
            for (long ic = 0; ic < cig; ic++)
            {
                long ci = grp * cig + ic;
                float* xc = x + (n * g.InChannels + ci) * inSpatial;
                float* wc = w + (ci * cog + oc) * kSpatial;
                for (long kk = 0; kk < kSpatial; kk++)
                {
                    float wv = wc[kk];
                    Unflatten(kk, kIdx, useInput: false);
                    for (long ii = 0; ii < inSpatial; ii++)
                    {
                        Unflatten(ii, iIdx, useInput: true);
                        long flat = 0;
                        bool inside = true;
                        for (int a = 0; a < r; a++)
                        {
                            var ax = g.Axes[a];
                            long o = iIdx[a] * ax.Stride + kIdx[a] * ax.Dilation - ax.PadBegin;
                            if ((ulong)o >= (ulong)ax.Output) { inside = false; break; }
                            flat = flat * ax.Output + o;
                        }
                        if (inside) yc[flat] += xc[ii] * wv;
                    }
                }
            }
            if (ep.Kind != Activation.None)
                for (long o = 0; o < outSpatial; o++) yc[o] = ep.Apply(yc[o]);
        }

        private void Unflatten(long flat, Span<long> idx, bool useInput)
        {
            for (int a = g.Rank - 1; a >= 0; a--)
            {
                long size = useInput ? g.Axes[a].Input : g.Axes[a].Kernel;
                idx[a] = flat % size;
                flat /= size;
            }
        }
    }
}
