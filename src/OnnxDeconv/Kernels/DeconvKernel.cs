using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
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

    /// <summary>
    /// <see cref="Apply"/> over a contiguous run, in place and vectorised: the per-element call (a switch, and a scalar
    /// exp/tanh for Sigmoid/Tanh) cost more than the convolution itself on small-channel layers such as a generator's
    /// last 64->3 layer followed by Tanh. Relu/LeakyRelu/Clip give exactly <see cref="Apply"/>'s values (NaN included);
    /// Sigmoid/Tanh use <see cref="TensorPrimitives"/>, within a few ulp of MathF.
    /// </summary>
    public void ApplyInPlace(Span<float> values)
    {
        switch (Kind)
        {
            case Activation.None:
                return;
            case Activation.Sigmoid or Activation.Tanh when values.IsEmpty:
                return; // TensorPrimitives rejects an empty Sigmoid
            case Activation.Sigmoid:
                TensorPrimitives.Sigmoid(values, values);
                return;
            case Activation.Tanh:
                TensorPrimitives.Tanh(values, values);
                return;
        }
        int i = 0, l = Vector<float>.Count;
        if (Vector.IsHardwareAccelerated)
        {
            ref float r0 = ref MemoryMarshal.GetReference(values);
            var zero = Vector<float>.Zero;
            var alpha = new Vector<float>(Alpha);
            var lo = new Vector<float>(Min);
            var hi = new Vector<float>(Max);
            for (; i + l <= values.Length; i += l)
            {
                ref float ri = ref Unsafe.Add(ref r0, i);
                var v = Vector.LoadUnsafe(ref ri);
                v = Kind switch
                {
                    Activation.Relu => Vector.ConditionalSelect(Vector.GreaterThan(v, zero), v, zero),
                    Activation.LeakyRelu => Vector.ConditionalSelect(Vector.GreaterThanOrEqual(v, zero), v, v * alpha),
                    // Math.Max/Min keep NaN: compare-and-select leaves a NaN lane untouched by both bounds.
                    _ => ClampKeepNaN(v, lo, hi),
                };
                v.StoreUnsafe(ref ri);
            }
        }
        for (; i < values.Length; i++) values[i] = Apply(values[i]);
    }

    private static Vector<float> ClampKeepNaN(Vector<float> v, Vector<float> lo, Vector<float> hi)
    {
        v = Vector.ConditionalSelect(Vector.LessThan(v, lo), lo, v);
        return Vector.ConditionalSelect(Vector.GreaterThan(v, hi), hi, v);
    }
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
/// The zero-free ConvTranspose kernel behind the plugin op: a polyphase gather. Per axis, the outputs with
/// <c>(o + pb) mod s == r</c> only see the taps with <c>k*d mod s == r</c>, which read the original input at stride 1,
/// so each output phase is a dense small correlation (exact useful MACs, no inserted zeros, every output written once).
/// Each phase is computed as a register-blocked GEMM: up to 12 output channels x 1..4 vectors of output pixels in registers,
/// contracting over (input channel, tap) with weights pre-packed by <see cref="PackWeights"/> in exactly that order.
/// Interior pixel runs read x in place; border runs are gathered into a small zero-padded per-thread panel.
/// The ISA variant (AVX-512, AVX2+FMA, Vector&lt;T&gt;, scalar) is chosen by <see cref="KernelIsaSelector"/>.
/// </summary>
public static class DeconvKernel
{
    /// <summary>Number of floats of the packed weight for <paramref name="g"/> (depends on channels, group, kernel, strides, dilations only).</summary>
    public static long PackedWeightLength(ConvTransposeGeometry g) =>
        g.InChannels * g.OutChannelsPerGroup * g.Axes.Aggregate(1L, (p, a) => p * a.Kernel);

    /// <summary>
    /// Packs ONNX-layout weights [Cin, Cout/group, K...] into the kernel's layout:
    /// [group][phase (residue tuple, last axis fastest)][block of output channels][ci][tap][channel in block], blocks of
    /// 12 channels, or 48 with many output channels per group and several taps per phase (<see cref="DeconvPlan.BlockFor"/>;
    /// the last block may be narrower).
    /// The layout depends only on channels, group, kernel, strides and dilations (never on pads, image size or the ISA).
    /// </summary>
    public static void PackWeights(ConvTransposeGeometry g, ReadOnlySpan<float> onnxWeights, Span<float> packed)
    {
        long n = PackedWeightLength(g);
        if (packed.Length != n) throw new ArgumentException($"packed W has {packed.Length} values; geometry needs {n}");
        PackWeights(g, onnxWeights, 0, packed);
    }

    /// <summary>
    /// Values [<paramref name="first"/>, first + packed.Length) of what <see cref="PackWeights(ConvTransposeGeometry, ReadOnlySpan{float}, Span{float})"/>
    /// writes, so a large packed weight can be produced (and written out) slice by slice with the same layout code.
    /// Throws ArgumentException for a geometry the kernel refuses (also for an empty slice).
    /// </summary>
    public static void PackWeights(ConvTransposeGeometry g, ReadOnlySpan<float> onnxWeights, long first, Span<float> packed)
    {
        long n = PackedWeightLength(g);
        if (onnxWeights.Length != n) throw new ArgumentException($"W has {onnxWeights.Length} values; geometry needs {n}");
        if (first < 0 || first + packed.Length > n) throw new ArgumentException($"packed W slice [{first}, {first + packed.Length}) is outside its {n} values");
        var plan = GetPlan(g, KernelIsa.Scalar, null);
        int cig = plan.Cig, cog = plan.Cog, ks = plan.KernelSpatial;
        long end = first + packed.Length;
        long pos = 0; // packed index of the current block's first value
        int block = DeconvPlan.BlockFor(g);
        for (long grp = 0; grp < g.Group && pos < end; grp++)
        foreach (var res in plan.AllResidues)
        for (int cb = 0; cb < cog; cb += block)
        {
            int mr = Math.Min(block, cog - cb);
            long blockLength = (long)cig * res.Taps * mr;
            if (pos + blockLength <= first || pos >= end) { pos += blockLength; continue; }
            // Rows of mr channels, one per (ci, tap); only the rows overlapping the slice are visited.
            long row0 = Math.Max(0, first - pos) / mr, rows = Math.Min(blockLength, end - pos + mr - 1) / mr;
            for (long r = row0; r < rows; r++)
            {
                long ci = r / res.Taps, t = r % res.Taps, at = pos + r * mr;
                long src = ((grp * cig + ci) * cog + cb) * ks + res.TapK[t];
                for (int i = 0; i < mr; i++, at++)
                    if (at >= first && at < end) packed[(int)(at - first)] = onnxWeights[(int)(src + (long)i * ks)];
            }
            pos += blockLength;
        }
    }

    /// <summary>
    /// Bytes of scratch memory <see cref="Run"/> uses besides the output, per worker thread: the zero-padded pixel panel
    /// (input channels x taps x one pixel block) and the result tile. Allocated once per thread and reused.
    /// </summary>
    public static long WorkspaceBytes(ConvTransposeGeometry g) => GetPlan(g, KernelIsaSelector.Active, null).ScratchFloats * sizeof(float);

    /// <summary>
    /// y = epilogue(ConvTranspose(x, W) + b) with W packed by <see cref="PackWeights"/>. Work is split into items
    /// (image, group, phase, pixel range) that never write the same output; <paramref name="parallel"/> runs them.
    /// </summary>
    public static void Run(ConvTransposeGeometry g, Epilogue epilogue, ReadOnlySpan<float> x, ReadOnlySpan<float> packedW,
        ReadOnlySpan<float> bias, Span<float> y, IParallelFor? parallel = null) =>
        Run(g, epilogue, x, packedW, bias, y, parallel, KernelIsaSelector.Active, null);

    /// <summary>As <see cref="Run(ConvTransposeGeometry, Epilogue, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, IParallelFor?)"/>
    /// with an explicit ISA variant and, for tests and benchmarks, a forced choice of direct reads and of the
    /// channel-vectorised path (null = heuristic).</summary>
    internal static void Run(ConvTransposeGeometry g, Epilogue epilogue, ReadOnlySpan<float> x, ReadOnlySpan<float> packedW,
        ReadOnlySpan<float> bias, Span<float> y, IParallelFor? parallel, KernelIsa isa, bool? direct, bool? channel = null)
    {
        long inSpatial = g.Axes.Aggregate(1L, (p, a) => p * a.Input);
        long outSpatial = g.Axes.Aggregate(1L, (p, a) => p * a.Output);
        if (x.Length != g.Batch * g.InChannels * inSpatial) throw new ArgumentException($"X has {x.Length} values; geometry needs {g.Batch * g.InChannels * inSpatial}");
        if (packedW.Length != PackedWeightLength(g)) throw new ArgumentException($"packed W has {packedW.Length} values; geometry needs {PackedWeightLength(g)}");
        if (bias.Length != 0 && bias.Length != g.OutChannels) throw new ArgumentException($"B has {bias.Length} values; must be empty or have Cout = {g.OutChannels}");
        if (y.Length != g.Batch * g.OutChannels * outSpatial) throw new ArgumentException($"Y has {y.Length} values; geometry needs {g.Batch * g.OutChannels * outSpatial}");
        if (!KernelIsaSelector.IsSupported(isa)) throw new PlatformNotSupportedException($"ISA variant {isa} is not supported on this machine");
        Execute(GetPlan(g, isa, direct, channel), epilogue, x, packedW, bias, y, parallel);
    }

    /// <summary>
    /// As <see cref="Run(ConvTransposeGeometry, Epilogue, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, IParallelFor?)"/>
    /// with a plan the caller holds (the plugin keeps one per kernel instance), so a process running more distinct
    /// geometries than the shared plan cache holds never rebuilds a plan per call.
    /// </summary>
    internal static void Run(DeconvPlan plan, Epilogue epilogue, ReadOnlySpan<float> x, ReadOnlySpan<float> packedW,
        ReadOnlySpan<float> bias, Span<float> y, IParallelFor? parallel)
    {
        var g = plan.Geometry;
        if (x.Length != g.Batch * g.InChannels * plan.InSpatial) throw new ArgumentException($"X has {x.Length} values; geometry needs {g.Batch * g.InChannels * plan.InSpatial}");
        if (packedW.Length != PackedWeightLength(g)) throw new ArgumentException($"packed W has {packedW.Length} values; geometry needs {PackedWeightLength(g)}");
        if (bias.Length != 0 && bias.Length != g.OutChannels) throw new ArgumentException($"B has {bias.Length} values; must be empty or have Cout = {g.OutChannels}");
        if (y.Length != g.Batch * g.OutChannels * plan.OutSpatial) throw new ArgumentException($"Y has {y.Length} values; geometry needs {g.Batch * g.OutChannels * plan.OutSpatial}");
        Execute(plan, epilogue, x, packedW, bias, y, parallel);
    }

    private static void Execute(DeconvPlan plan, Epilogue epilogue, ReadOnlySpan<float> x, ReadOnlySpan<float> packedW,
        ReadOnlySpan<float> bias, Span<float> y, IParallelFor? parallel)
    {
        if (plan.ItemCount == 0) return;
        var job = plan.RentJob();
        try
        {
            unsafe
            {
                fixed (float* px = x, pw = packedW, pb = bias, py = y)
                {
                    job.Epilogue = epilogue;
                    job.X = px; job.XEnd = px + x.Length; job.W = pw; job.B = bias.Length == 0 ? null : pb; job.Y = py;
                    (parallel ?? SerialFor.Instance).For(plan.ItemCount, job.Body);
                    job.X = job.XEnd = job.W = job.B = job.Y = null;
                }
            }
        }
        finally { plan.ReturnJob(job); }
    }

    // A few recent plans, matched by value: callers may build a fresh geometry object per call.
    private static readonly object s_cacheLock = new();
    private static readonly DeconvPlan?[] s_cache = new DeconvPlan?[32];
    private static int s_cacheNext;

    internal static DeconvPlan GetPlan(ConvTransposeGeometry g, KernelIsa isa, bool? direct, bool? channel = null)
    {
        lock (s_cacheLock)
        {
            foreach (var p in s_cache)
                if (p is not null && p.Isa == isa && p.DirectOverride == direct && p.ChannelOverride == channel && p.Matches(g)) return p;
        }
        var plan = new DeconvPlan(g, isa, direct, channel);
        lock (s_cacheLock)
        {
            s_cache[s_cacheNext] = plan;
            s_cacheNext = (s_cacheNext + 1) % s_cache.Length;
        }
        return plan;
    }
}
