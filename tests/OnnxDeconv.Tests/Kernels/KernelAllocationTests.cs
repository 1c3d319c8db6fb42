using OnnxDeconv.Geometry;
using OnnxDeconv.Kernels;
using static OnnxDeconv.Tests.Kernels.KernelCheck;

namespace OnnxDeconv.Tests.Kernels;

/// <summary>Runs alone: other test classes running at the same time fill the kernel's shared plan cache and can evict
/// a plan between warm-up and measurement, which would count a legitimate plan rebuild as a per-call allocation.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class KernelAllocationCollection
{
    public const string Name = "kernel allocation (runs alone)";
}

[Collection(KernelAllocationCollection.Name)]
public class KernelAllocationTests
{
    // The second shape takes the fused last-axis path (and the third its whole-row blocks) on every SIMD variant;
    // the fourth has half-vector rows (padded pairs on AVX-512), the fifth 12-pixel rows (tile epilogue).
    private static ConvTransposeGeometry[] Shapes() =>
    [
        Geo(1, 16, 24, 1, [12, 12], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]),
        Geo(1, 16, 24, 1, [12, 48], [2, 2], strides: [2, 2]),
        Geo(1, 16, 24, 1, [5, 6, 16], [2, 2, 2], strides: [2, 2, 2]),
        Geo(1, 16, 24, 1, [3, 7, 8], [2, 2, 2], strides: [2, 2, 2]),
        Geo(1, 16, 24, 1, [5, 12], [2, 2], strides: [2, 2]),
        Geo(1, 16, 16, 16, [9, 20], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]), // depthwise
        Geo(1, 64, 100, 1, [4, 4], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]), // channel-vectorised, narrow last block
        Geo(1, 128, 96, 1, [6], [16], strides: [8], pads: [4, 4]), // channel-vectorised 1D
        Geo(1, 8, 96, 1, [12, 12], [3, 3], strides: [2, 2]), // pixel path over 48-wide packed blocks
    ];

    public static TheoryData<KernelIsa> Variants() => [.. KernelIsaSelector.Supported];

    [Theory]
    [MemberData(nameof(Variants))]
    public void Run_SteadyState_AllocatesNothingPerCall(KernelIsa isa)
    {
        foreach (var g in Shapes())
        foreach (var ep in new[] { new Epilogue(Activation.Relu), new Epilogue(Activation.Tanh), new Epilogue(Activation.Clip, Min: 0f, Max: 6f) })
        {
            var (x, packed, b, y) = Buffers(g);
            DeconvKernel.Run(g, ep, x, packed, b, y, null, isa, null); // warm-up: plan, job, per-thread scratch
            long allocated = SmallestWindow(() => DeconvKernel.Run(g, ep, x, packed, b, y, null, isa, null));
            Assert.True(allocated == 0, $"{isa}, {ep.Kind}, input [{string.Join(",", g.InputShape)}]: every window of 5 steady-state calls allocated, the least {allocated} bytes");
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Run_HeldPlan_AllocatesNothingAndMatchesCachedPath(KernelIsa isa)
    {
        foreach (var g in Shapes())
        {
            var (x, packed, b, y) = Buffers(g);
            var ep = new Epilogue(Activation.Relu);
            var plan = DeconvKernel.GetPlan(g, isa, null);
            DeconvKernel.Run(plan, ep, x, packed, b, y, null);
            long allocated = SmallestWindow(() => DeconvKernel.Run(plan, ep, x, packed, b, y, null));
            Assert.True(allocated == 0, $"{isa}, input [{string.Join(",", g.InputShape)}]: every window of 5 held-plan calls allocated, the least {allocated} bytes");

            var viaCache = new float[y.Length];
            DeconvKernel.Run(g, ep, x, packed, b, viaCache, null, isa, null);
            Assert.Equal(viaCache, y); // same plan logic, bit-identical
        }
    }

    [Fact]
    public void Run_HeldPlan_WrongBufferSizes_ThrowClearErrors()
    {
        var g = Geo(1, 2, 3, 1, [4], [3], strides: [2]);
        var plan = DeconvKernel.GetPlan(g, KernelIsa.Scalar, null);
        var packed = new float[DeconvKernel.PackedWeightLength(g)];
        var y = new float[g.OutputShape.Aggregate(1L, (p, v) => p * v)];
        var ex = Assert.Throws<ArgumentException>(() => DeconvKernel.Run(plan, Epilogue.None, new float[7], packed, [], y, null));
        Assert.Contains("X has 7 values", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => DeconvKernel.Run(plan, Epilogue.None, new float[8], packed, new float[2], y, null));
        Assert.Contains("B has 2 values", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => DeconvKernel.Run(plan, Epilogue.None, new float[8], packed, [], new float[3], null));
        Assert.Contains("Y has 3 values", ex.Message);
    }

    /// <summary>
    /// The fewest bytes this thread allocated over one window of 5 calls, trying up to 20 windows. A one-time
    /// allocation by the runtime (a tier-up or on-stack replacement compiling on this thread and loading a type's
    /// statics) can land in a window; an allocation per call lands in every window, so it still fails the test.
    /// </summary>
    private static long SmallestWindow(Action call)
    {
        long least = long.MaxValue;
        for (int w = 0; w < 20 && least > 0; w++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 5; i++) call();
            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        return least;
    }

    private static (float[] X, float[] Packed, float[] B, float[] Y) Buffers(ConvTransposeGeometry g) => (
        Random(new Random(1), g.InputShape.Aggregate(1L, (p, v) => p * v)),
        Random(new Random(2), DeconvKernel.PackedWeightLength(g)),
        Random(new Random(3), g.OutChannels),
        new float[g.OutputShape.Aggregate(1L, (p, v) => p * v)]);
}
