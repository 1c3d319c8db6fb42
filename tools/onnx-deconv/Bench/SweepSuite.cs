using OnnxDeconv.Geometry;

namespace OnnxDeconv.Cli.Bench;

/// <summary>
/// The broad sweep (`bench --suite sweep`, issue 13): transposed-convolution layers taken from published architectures
/// that the layer suite does not list, at batch 1 and some at batch 8, plus seeded random shapes. It exists so a
/// kernel change is judged on its geometric mean and its worst layer over shapes nobody tuned for, never on the
/// suite's named ten. Shapes are the layers' as the papers' reference configurations run them (input sizes noted).
/// </summary>
public static class SweepSuite
{
    private static readonly SpeedTarget Sweep = new("sweep: >= 0.9x ORT at 1 thread (issue 13)", 0.9, 0.9);

    /// <summary>A ConvTranspose with the same kernel/stride/pad on every spatial axis of <paramref name="size"/>.</summary>
    private static Layer T(string name, string shortName, long cin, long cout, long k, long s, long p, long[] size,
        long op = 0, long group = 1, long batch = 1)
    {
        int d = size.Length;
        return new(name, shortName, LayerKind.ConvTranspose, new ConvTransposeAttributes
        {
            Strides = Enumerable.Repeat(s, d).ToArray(),
            Pads = Enumerable.Repeat(p, 2 * d).ToArray(),
            OutputPadding = op == 0 ? null : Enumerable.Repeat(op, d).ToArray(),
            Group = group,
        }, [batch, cin, .. size], [cin, cout / group, .. Enumerable.Repeat(k, d)], Sweep);
    }

    private static Layer T2(string name, string shortName, long cin, long cout, long k, long s, long p, long h, long w,
        long op = 0, long group = 1, long batch = 1) => T(name, shortName, cin, cout, k, s, p, [h, w], op, group, batch);

    private static Layer T1(string name, string shortName, long cin, long cout, long k, long s, long p, long len, long batch = 1) =>
        T(name, shortName, cin, cout, k, s, p, [len], batch: batch);

    private static Layer ResizeConv(string name, string shortName, long cin, long cout, long size) =>
        new(name, shortName, LayerKind.ResizeConv, new ConvTransposeAttributes { Strides = [2, 2] },
            [1, cin, size, size], [cin, cout, 2, 2], new("sweep Resize+Conv: >= 1.9x ORT (issue 13)", 1.9, 1.9), 2, 3, 1);

    /// <summary>The sweep's layers: architectures first, then <see cref="RandomCount"/> seeded random shapes.</summary>
    public static IReadOnlyList<Layer> Layers { get; } = [.. Named(), .. RandomLayers(seed: 13, RandomCount)];

    public const int RandomCount = 10;

    private static IEnumerable<Layer> Named() =>
    [
        // GAN generators (DCGAN at 128x128, its 1x1-input first layer; CycleGAN/pix2pix decoders).
        T2("DCGAN-128 z 100->1024 k4 s1 on 1x1", "gan-z", 100, 1024, 4, 1, 0, 1, 1),
        T2("DCGAN-128 z 100->1024 k4 s1 on 1x1, batch 8", "gan-z-b8", 100, 1024, 4, 1, 0, 1, 1, batch: 8),
        T2("DCGAN-128 1024->512 k4 s2 p1 4x4", "gan-1", 1024, 512, 4, 2, 1, 4, 4),
        T2("DCGAN-128 512->256 k4 s2 p1 8x8", "gan-2", 512, 256, 4, 2, 1, 8, 8),
        T2("DCGAN-128 512->256 k4 s2 p1 8x8, batch 8", "gan-2-b8", 512, 256, 4, 2, 1, 8, 8, batch: 8),
        T2("DCGAN-128 256->128 k4 s2 p1 16x16", "gan-3", 256, 128, 4, 2, 1, 16, 16),
        T2("DCGAN-128 128->64 k4 s2 p1 32x32", "gan-4", 128, 64, 4, 2, 1, 32, 32),
        T2("DCGAN-128 64->3 k4 s2 p1 64x64", "gan-5", 64, 3, 4, 2, 1, 64, 64),
        T2("CycleGAN dec 256->128 k3 s2 p1 op1 64x64", "cyc-1", 256, 128, 3, 2, 1, 64, 64, op: 1),
        T2("CycleGAN dec 128->64 k3 s2 p1 op1 128x128", "cyc-2", 128, 64, 3, 2, 1, 128, 128, op: 1),
        T2("pix2pix U-Net 512->512 k4 s2 p1 2x2", "p2p-1", 512, 512, 4, 2, 1, 2, 2),
        T2("pix2pix U-Net 1024->512 k4 s2 p1 8x8", "p2p-2", 1024, 512, 4, 2, 1, 8, 8),
        T2("pix2pix U-Net 1024->256 k4 s2 p1 16x16", "p2p-3", 1024, 256, 4, 2, 1, 16, 16),
        T2("pix2pix U-Net 512->128 k4 s2 p1 32x32", "p2p-4", 512, 128, 4, 2, 1, 32, 32),
        T2("pix2pix U-Net 256->64 k4 s2 p1 64x64", "p2p-5", 256, 64, 4, 2, 1, 64, 64),
        T2("pix2pix U-Net 128->3 k4 s2 p1 128x128", "p2p-6", 128, 3, 4, 2, 1, 128, 128),
        // Segmentation decoders: U-Net (572 input), FCN upscores, YOLOv8-seg proto, ENet, LinkNet.
        T2("U-Net 1024->512 k2 s2 28x28", "unet-a", 1024, 512, 2, 2, 0, 28, 28),
        T2("U-Net 512->256 k2 s2 52x52", "unet-b", 512, 256, 2, 2, 0, 52, 52),
        T2("U-Net 256->128 k2 s2 100x100", "unet-c", 256, 128, 2, 2, 0, 100, 100),
        T2("U-Net 128->64 k2 s2 196x196", "unet-d", 128, 64, 2, 2, 0, 196, 196),
        T2("FCN-32s upscore 21->21 k64 s32 7x7", "fcn32", 21, 21, 64, 32, 0, 7, 7),
        T2("FCN-8s upscore2 21->21 k4 s2 16x16", "fcn-up2", 21, 21, 4, 2, 0, 16, 16),
        T2("FCN-8s upscore8 21->21 k16 s8 70x70", "fcn-up8", 21, 21, 16, 8, 0, 70, 70),
        T2("YOLOv8n-seg proto 64->64 k2 s2 80x80", "yolo-n", 64, 64, 2, 2, 0, 80, 80),
        T2("YOLOv8s-seg proto 128->128 k2 s2 80x80", "yolo-s", 128, 128, 2, 2, 0, 80, 80),
        T2("ENet up 32->32 k3 s2 p1 op1 64x64", "enet-1", 32, 32, 3, 2, 1, 64, 64, op: 1),
        T2("ENet up 16->16 k3 s2 p1 op1 128x128", "enet-2", 16, 16, 3, 2, 1, 128, 128, op: 1),
        T2("LinkNet dec 128->128 k3 s2 p1 op1 16x16", "link-1", 128, 128, 3, 2, 1, 16, 16, op: 1),
        T2("LinkNet dec 64->64 k3 s2 p1 op1 32x32", "link-2", 64, 64, 3, 2, 1, 32, 32, op: 1),
        T2("LinkNet final 32->32 k3 s2 p1 op1 128x128", "link-3", 32, 32, 3, 2, 1, 128, 128, op: 1),
        // Pose heads: SimpleBaseline (256x192 input, ResNet-50), CenterNet (512x512, ResNet-18).
        T2("SimpleBaseline 2048->256 k4 s2 p1 8x6", "pose-1", 2048, 256, 4, 2, 1, 8, 6),
        T2("SimpleBaseline 2048->256 k4 s2 p1 8x6, batch 8", "pose-1-b8", 2048, 256, 4, 2, 1, 8, 6, batch: 8),
        T2("SimpleBaseline 256->256 k4 s2 p1 16x12", "pose-2", 256, 256, 4, 2, 1, 16, 12),
        T2("SimpleBaseline 256->256 k4 s2 p1 32x24", "pose-3", 256, 256, 4, 2, 1, 32, 24),
        T2("CenterNet 512->256 k4 s2 p1 16x16", "ctr-1", 512, 256, 4, 2, 1, 16, 16),
        T2("CenterNet 256->128 k4 s2 p1 32x32", "ctr-2", 256, 128, 4, 2, 1, 32, 32),
        T2("CenterNet 128->64 k4 s2 p1 64x64", "ctr-3", 128, 64, 4, 2, 1, 64, 64),
        // Vocoders and codecs (1D): HiFi-GAN V1 (100 mel frames), V3, MelGAN, EnCodec (75 frames), Conv-TasNet, Demucs, ISTFT.
        T1("HiFi-GAN V1 512->256 k16 s8 p4 len 100", "hifi-1", 512, 256, 16, 8, 4, 100),
        T1("HiFi-GAN V1 256->128 k16 s8 p4 len 800", "hifi-2", 256, 128, 16, 8, 4, 800),
        T1("HiFi-GAN V1 128->64 k4 s2 p1 len 6400", "hifi-3", 128, 64, 4, 2, 1, 6400),
        T1("HiFi-GAN V1 64->32 k4 s2 p1 len 12800", "hifi-4", 64, 32, 4, 2, 1, 12800),
        T1("HiFi-GAN V1 512->256 k16 s8 p4 len 100, batch 8", "hifi-1-b8", 512, 256, 16, 8, 4, 100, batch: 8),
        T1("HiFi-GAN V3 128->64 k16 s8 p4 len 800", "hifi3-2", 128, 64, 16, 8, 4, 800),
        T1("HiFi-GAN V3 64->32 k8 s4 p2 len 6400", "hifi3-3", 64, 32, 8, 4, 2, 6400),
        T1("MelGAN 256->128 k16 s8 p4 len 800", "melgan-2", 256, 128, 16, 8, 4, 800),
        T1("EnCodec 512->256 k16 s8 len 75", "enc-1", 512, 256, 16, 8, 0, 75),
        T1("EnCodec 256->128 k10 s5 len 600", "enc-2", 256, 128, 10, 5, 0, 600),
        T1("EnCodec 128->64 k8 s4 len 3000", "enc-3", 128, 64, 8, 4, 0, 3000),
        T1("EnCodec 64->32 k4 s2 len 12000", "enc-4", 64, 32, 4, 2, 0, 12000),
        T1("Conv-TasNet decoder 512->1 k16 s8 len 4000", "tasnet", 512, 1, 16, 8, 0, 4000),
        T1("Demucs 768->384 k8 s4 len 400", "demucs", 768, 384, 8, 4, 0, 400),
        T1("ISTFT as ConvTranspose 1026->1 k1024 s256 len 100", "istft", 1026, 1, 1024, 256, 0, 100),
        // Super-resolution deconvolutions (FSRCNN x2/x3/x4 on 64x64: one output channel, k9) and LapSRN.
        T2("FSRCNN x2 56->1 k9 s2 p4 op1 64x64", "fsr-2", 56, 1, 9, 2, 4, 64, 64, op: 1),
        T2("FSRCNN x3 56->1 k9 s3 p4 op2 64x64", "fsr-3", 56, 1, 9, 3, 4, 64, 64, op: 2),
        T2("FSRCNN x4 56->1 k9 s4 p4 op3 64x64", "fsr-4", 56, 1, 9, 4, 4, 64, 64, op: 3),
        T2("LapSRN 64->64 k4 s2 p1 64x64", "lapsrn", 64, 64, 4, 2, 1, 64, 64),
        // 3D medical decoders (3D U-Net, V-Net) and a 3D GAN generator.
        T("3D U-Net 256->256 k2 s2 8^3", "u3d-1", 256, 256, 2, 2, 0, [8, 8, 8]),
        T("3D U-Net 128->128 k2 s2 16^3", "u3d-2", 128, 128, 2, 2, 0, [16, 16, 16]),
        T("V-Net 128->64 k2 s2 16^3", "vnet", 128, 64, 2, 2, 0, [16, 16, 16]),
        T("3D-GAN 256->128 k4 s2 p1 8^3", "gan3d", 256, 128, 4, 2, 1, [8, 8, 8]),
        // Depthwise deconvolution heads (bilinear-initialised upsamplers, MobileNet-style heads).
        T2("depthwise head 128ch k4 s2 p1 32x32", "dw-128", 128, 128, 4, 2, 1, 32, 32, group: 128),
        T2("depthwise head 256ch k4 s2 p1 16x16", "dw-256", 256, 256, 4, 2, 1, 16, 16, group: 256),
        T2("FCN bilinear 21ch k4 s2 p1 group 21 32x32", "dw-21", 21, 21, 4, 2, 1, 32, 32, group: 21),
        // VAE / TAESD-style upsample convs (Resize nearest x2 + Conv3x3).
        ResizeConv("TAESD Resize x2 + Conv3x3 64->64 32x32", "taesd-32", 64, 64, 32),
        ResizeConv("SD-VAE Resize x2 + Conv3x3 512->512 8x8", "sdvae-8", 512, 512, 8),
        ResizeConv("SD-VAE Resize x2 + Conv3x3 128->128 64x64", "sdvae-64", 128, 128, 64),
    ];

    /// <summary>
    /// Seeded random layers (1D/2D/3D, kernel 1-7, stride 1-4, pads below the kernel, output_padding below the stride,
    /// groups dividing the channels), kept between 1 and 400 MMACs so a sweep stays minutes long.
    /// </summary>
    public static IEnumerable<Layer> RandomLayers(int seed, int count)
    {
        var rng = new Random(seed);
        long[] channels = [1, 3, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512];
        int made = 0;
        while (made < count)
        {
            int rank = rng.Next(10) switch { < 2 => 1, < 9 => 2, _ => 3 };
            long k = rng.Next(1, 8), s = rng.Next(1, 5), p = rng.Next(0, (int)k), op = s > 1 ? rng.Next(0, (int)s) : 0;
            long cin = channels[rng.Next(channels.Length)], cout = channels[rng.Next(channels.Length)];
            long group = rng.Next(6) == 0 && cin == cout ? cin : 1;
            long size = rank switch { 1 => rng.Next(16, 2049), 2 => rng.Next(2, 65), _ => rng.Next(2, 17) };
            var layer = T($"random #{made + 1} ({rank}D {cin}->{cout} k{k} s{s} p{p}{(op > 0 ? $" op{op}" : "")}{(group > 1 ? " depthwise" : "")} {size}^{rank})",
                $"rnd-{made + 1}", cin, cout, k, s, p, Enumerable.Repeat(size, rank).ToArray(), op, group);
            ConvTransposeGeometry g;
            try { g = layer.Geometry; }
            catch (ArgumentException) { continue; } // e.g. pads that empty the output: draw again
            if (g.UsefulMacs < 1_000_000 || g.UsefulMacs > 400_000_000 || g.OutputShape.Skip(2).Any(v => v < 1)) continue;
            made++;
            yield return layer;
        }
    }
}
