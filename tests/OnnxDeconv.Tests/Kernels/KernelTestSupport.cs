using OnnxDeconv.Geometry;
using OnnxDeconv.Kernels;

namespace OnnxDeconv.Tests.Kernels;

/// <summary>A real multi-threaded <see cref="IParallelFor"/>: items run concurrently, so overlapping writes would show up.</summary>
internal sealed class ParallelForDouble(int threads) : IParallelFor
{
    private readonly ParallelOptions _options = new() { MaxDegreeOfParallelism = threads };
    public int Calls;
    public void For(int count, Action<int> body)
    {
        Interlocked.Increment(ref Calls);
        Parallel.For(0, count, _options, body);
    }
}

internal static class KernelCheck
{
    // float32 tolerance of the project: |a-b| <= atol + rtol*|b|; rtol covers accumulation-order differences.
    public const double Atol = 1e-5, Rtol = 1e-4;

    public static TheoryData<KernelIsa> Isas()
    {
        var d = new TheoryData<KernelIsa>();
        foreach (var isa in KernelIsaSelector.Supported) d.Add(isa);
        return d;
    }

    /// <summary>Random ONNX-layout weights for <paramref name="a"/>, packed once for each of two geometries that must share a layout.</summary>
    public static (float[] W, float[] PackedA, float[] PackedB) PackForBoth(ConvTransposeGeometry a, ConvTransposeGeometry b)
    {
        var w = Random(new Random(5), a.WeightShape.Aggregate(1L, (p, v) => p * v));
        var pa = new float[DeconvKernel.PackedWeightLength(a)];
        var pb = new float[DeconvKernel.PackedWeightLength(b)];
        DeconvKernel.PackWeights(a, w, pa);
        DeconvKernel.PackWeights(b, w, pb);
        return (w, pa, pb);
    }

    public static float[] Random(Random rng, long n, float scale = 1f)
    {
        var a = new float[n];
        for (long i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }

    /// <summary>Runs the kernel and the scalar reference (plus the epilogue) on random data; returns a failure description or null.</summary>
    public static string? Compare(ConvTransposeGeometry g, KernelIsa isa, Epilogue ep, bool? direct, IParallelFor? parallel, int seed, bool withBias = true, bool? channel = null)
    {
        var rng = new Random(seed);
        long xs = g.InputShape.Aggregate(1L, (p, v) => p * v);
        long ws = g.WeightShape.Aggregate(1L, (p, v) => p * v);
        var x = Random(rng, xs);
        var w = Random(rng, ws, 0.5f);
        var b = withBias ? Random(rng, g.OutChannels) : [];
        var expected = ReferenceConvTranspose.Compute(g, x, w, b);
        for (int i = 0; i < expected.Length; i++) expected[i] = ep.Apply(expected[i]);
        var packed = new float[DeconvKernel.PackedWeightLength(g)];
        DeconvKernel.PackWeights(g, w, packed);
        var y = new float[expected.Length];
        Array.Fill(y, float.NaN); // every output must be written
        DeconvKernel.Run(g, ep, x, packed, b, y, parallel, isa, direct, channel);
        for (int i = 0; i < y.Length; i++)
        {
            double a = y[i], e = expected[i];
            if (!(Math.Abs(a - e) <= Atol + Rtol * Math.Abs(e)))
                return $"{isa} direct={direct?.ToString() ?? "auto"} channel={channel?.ToString() ?? "auto"} {Describe(g)} {ep.Kind}: y[{i}] = {a}, reference {e}";
        }
        return null;
    }

    public static string Describe(ConvTransposeGeometry g) =>
        $"N{g.Batch} Cin{g.InChannels} Cout{g.OutChannels} G{g.Group} " + string.Join(" ", g.Axes.Select(a =>
            $"[I{a.Input} K{a.Kernel} s{a.Stride} d{a.Dilation} p{a.PadBegin},{a.PadEnd} op{a.OutputPadding} O{a.Output}]"));

    public static ConvTransposeGeometry Geo(long n, long cin, long cout, long group, long[] input, long[] kernel,
        long[]? strides = null, long[]? dilations = null, long[]? pads = null, long[]? outputPadding = null, long[]? outputShape = null)
    {
        var attrs = new ConvTransposeAttributes
        {
            Strides = strides, Dilations = dilations, Pads = pads, OutputPadding = outputPadding, OutputShape = outputShape, Group = group,
        };
        return ConvTransposeGeometry.Resolve(attrs, [n, cin, .. input], [cin, cout / group, .. kernel]);
    }
}
