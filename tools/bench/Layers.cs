using OnnxDeconv.Geometry;

namespace OnnxDeconv.Bench;

/// <summary>What issue 5 asks of a layer, as ratios ORT time / our time (speed-up) at 1 and 2 threads.</summary>
public sealed record Target(string Text, double MinSpeedup1, double MinSpeedup2);

/// <summary>One benchmark layer (batch 1, float32) and the target it is judged against.</summary>
public sealed record Layer(string Name, string ShortName, ConvTransposeAttributes Attributes, long[] InputShape, long[] WeightShape, Target Target)
{
    public ConvTransposeGeometry Geometry => ConvTransposeGeometry.Resolve(Attributes, InputShape, WeightShape);

    private static readonly Target Wide = new("wide layer: >= 0.95x ORT at 1 and 2 threads", 0.95, 0.95);

    private static Layer L2(string name, string shortName, long cin, long cout, long k, long s, long p, long size, Target t, long op = 0, long group = 1) =>
        new(name, shortName, new ConvTransposeAttributes
        {
            Strides = [s, s], Pads = [p, p, p, p], OutputPadding = op == 0 ? null : [op, op], Group = group,
        }, [1, cin, size, size], [cin, cout / group, k, k], t);

    /// <summary>The layer suite of issue 5.</summary>
    public static IReadOnlyList<Layer> Suite { get; } =
    [
        L2("DCGAN 512->256 k4 s2 p1 4x4", "dcgan1", 512, 256, 4, 2, 1, 4, Wide),
        L2("DCGAN 256->128 k4 s2 p1 8x8", "dcgan2", 256, 128, 4, 2, 1, 8, Wide),
        L2("DCGAN 128->64 k4 s2 p1 16x16", "dcgan3", 128, 64, 4, 2, 1, 16, Wide),
        L2("DCGAN 64->3 k4 s2 p1 32x32", "dcgan4", 64, 3, 4, 2, 1, 32, new("64->3: >= 1.3x ORT", 1.3, 1.3)),
        L2("U-Net 128->64 k2 s2 64x64", "unet1", 128, 64, 2, 2, 0, 64, Wide),
        L2("U-Net 512->256 k2 s2 32x32", "unet2", 512, 256, 2, 2, 0, 32, Wide),
        L2("SR 64->64 k3 s2 p1 op1 64x64", "sr", 64, 64, 3, 2, 1, 64, new("SR k3: >= 1.3x ORT", 1.3, 1.3), op: 1),
        L2("depthwise 64ch k4 s2 p1 64x64", "dw", 64, 64, 4, 2, 1, 64, new("depthwise: >= 5x ORT", 5, 5), group: 64),
        new("1D 512->256 k16 s8 p4 len 32", "1d", new ConvTransposeAttributes { Strides = [8], Pads = [4, 4] },
            [1, 512, 32], [512, 256, 16], Wide),
        new("3D 64->32 k2 s2 16^3", "3d", new ConvTransposeAttributes { Strides = [2, 2, 2] },
            [1, 64, 16, 16, 16], [64, 32, 2, 2, 2], new("3D: >= 1.5x ORT (>= 2.5x at 2 threads)", 1.5, 2.5)),
    ];
}
