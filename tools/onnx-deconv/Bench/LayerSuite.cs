using OnnxDeconv.Geometry;

namespace OnnxDeconv.Cli.Bench;

/// <summary>What an issue asks of a layer, as ratios reference time / our time (speed-up) at 1 and at 2+ threads.</summary>
public sealed record SpeedTarget(string Text, double MinSpeedup1, double MinSpeedup2);

/// <summary>
/// What the reference column runs: ONNX Runtime's ConvTranspose (issue 5's layers) or ONNX Runtime's Resize(nearest)
/// followed by a Conv (issue 6's layers, which the optimizer fuses into one zero-free ConvTranspose plan).
/// </summary>
public enum LayerKind { ConvTranspose, ResizeConv }

/// <summary>
/// One benchmark layer (batch 1, float32) and the target it is judged against. For <see cref="LayerKind.ResizeConv"/>
/// layers <see cref="Attributes"/>/<see cref="WeightShape"/> describe the equivalent ConvTranspose the optimizer derives
/// (same output), and <see cref="ResizeScale"/>/<see cref="ConvKernel"/>/<see cref="ConvPad"/> the original pair.
/// </summary>
public sealed record Layer(string Name, string ShortName, LayerKind Kind, ConvTransposeAttributes Attributes, long[] InputShape, long[] WeightShape,
    SpeedTarget Target, long ResizeScale = 0, long ConvKernel = 0, long ConvPad = 0)
{
    public ConvTransposeGeometry Geometry => ConvTransposeGeometry.Resolve(Attributes, InputShape, WeightShape);

    public long[] OutputShape => Geometry.OutputShape;

    /// <summary>MACs of what the reference model computes: the ConvTranspose's useful MACs, or the Conv on the upsampled tensor.</summary>
    public long Macs => Kind == LayerKind.ConvTranspose
        ? Geometry.UsefulMacs
        : OutputShape.Skip(2).Aggregate(1L, (p, v) => p * v) * OutputShape[1] * InputShape[1] * ConvKernel * ConvKernel;

    /// <summary>Shape of the reference model's weight: ConvTranspose [Cin, Cout, k...] or Conv [Cout, Cin, k, k].</summary>
    public long[] ReferenceWeightShape => Kind == LayerKind.ConvTranspose ? WeightShape : [OutputShape[1], InputShape[1], ConvKernel, ConvKernel];

    private static readonly SpeedTarget Wide = new("wide layer: >= 0.95x ORT at 1 and 2 threads", 0.95, 0.95);
    private static readonly SpeedTarget Fused = new("Resize+Conv: >= 1.8x ORT's Resize+Conv at 1 and 2 threads", 1.8, 1.8);

    private static Layer L2(string name, string shortName, long cin, long cout, long k, long s, long p, long size, SpeedTarget t, long op = 0, long group = 1) =>
        new(name, shortName, LayerKind.ConvTranspose, new ConvTransposeAttributes
        {
            Strides = [s, s], Pads = [p, p, p, p], OutputPadding = op == 0 ? null : [op, op], Group = group,
        }, [1, cin, size, size], [cin, cout / group, k, k], t);

    /// <summary>
    /// Resize(nearest, integer scale s) then a "same" Conv k x k (stride 1, pad (k-1)/2). Its geometry here is a
    /// stand-in with the same input and output shapes (stride s, kernel s, no pads): only the shapes are read from it,
    /// the optimizer derives the real plan from the Resize+Conv model.
    /// </summary>
    private static Layer ResizeConv(string name, string shortName, long cin, long cout, long size, long scale, long k, long pad)
    {
        if (2 * pad != k - 1) throw new ArgumentException($"{name}: the suite's Resize+Conv layers keep the size (pad = (k-1)/2)");
        return new(name, shortName, LayerKind.ResizeConv, new ConvTransposeAttributes
        {
            Strides = [scale, scale],
        }, [1, cin, size, size], [cin, cout, scale, scale], Fused, scale, k, pad);
    }

    /// <summary>The layer suite: issue 5's ConvTranspose layers and issue 6's Resize(x2)+Conv3x3 layers.</summary>
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
        new("1D 512->256 k16 s8 p4 len 32", "1d", LayerKind.ConvTranspose, new ConvTransposeAttributes { Strides = [8], Pads = [4, 4] },
            [1, 512, 32], [512, 256, 16], Wide),
        new("3D 64->32 k2 s2 16^3", "3d", LayerKind.ConvTranspose, new ConvTransposeAttributes { Strides = [2, 2, 2] },
            [1, 64, 16, 16, 16], [64, 32, 2, 2, 2], new("3D: >= 1.5x ORT (>= 2.5x at 2 threads)", 1.5, 2.5)),
        ResizeConv("Resize x2 + Conv3x3 64->64 64x64", "resize64", 64, 64, 64, 2, 3, 1),
        ResizeConv("Resize x2 + Conv3x3 256->256 32x32", "resize256", 256, 256, 32, 2, 3, 1),
    ];
}
