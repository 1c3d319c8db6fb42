using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.DemoModels;

/// <summary>One bundled demo model: file name under tests/models, what it imitates, and the model itself.</summary>
public sealed record DemoModel(string FileName, string Description, ModelProto Model);

/// <summary>
/// The demo models in tests/models, built from code with fixed seeds so regenerating gives the same bytes.
/// Every model: opset 17, IR 8, static input shapes, no value_info, realistic export-style names.
/// </summary>
public static class DemoModelCatalog
{
    public const ulong Seed = 20240917;

    public static IReadOnlyList<DemoModel> All() =>
    [
        new("dcgan_generator.onnx", "DCGAN generator: ConvT k4 s1 p0 then 4x (ConvT k4 s2 p1, BatchNorm, ReLU), Tanh; z[1,100,1,1] -> image[1,3,64,64]", DcganGenerator()),
        new("unet_decoder_block.onnx", "U-Net decoder block: ConvT k2 s2, Concat skip, 2x (Conv 3x3, ReLU)", UnetDecoderBlock()),
        new("sr_block.onnx", "Super-resolution block: Conv 3x3, ReLU, ConvT k3 s2 p1 output_padding 1, ReLU, Conv 3x3", SrBlock()),
        new("esrgan_upsampler.onnx", "ESRGAN upsampler: 2x (Resize nearest x2, Conv 3x3, LeakyReLU 0.2), HRconv, LeakyReLU, conv_last", EsrganUpsampler()),
        new("hifigan_upsampler_1d.onnx", "HiFi-GAN upsampler: conv_pre k7, LeakyReLU 0.1, ConvT1d k16 s8 p4, LeakyReLU, conv_post k7, Tanh", HifiganUpsampler1d()),
        new("decoder_3d.onnx", "3D decoder: ConvT3d k2 s2, ReLU, Conv3d 3x3x3, ReLU", Decoder3d()),
        new("depthwise_convtranspose.onnx", "Depthwise ConvT (group = channels) k4 s2 p1, pointwise Conv 1x1, ReLU", DepthwiseConvTranspose()),
        new("fp16_decoder.onnx", "float16 decoder: ConvT k4 s2 p1, ReLU, Resize nearest x2, Conv 3x3, LeakyReLU 0.2, Conv 3x3, Tanh (every tensor float16)", Fp16Decoder()),
        new("upfirdn_zero_insertion.onnx", "upfirdn-style x2 zero insertion: Reshape [N,C,H,1,W,1], Pad, Reshape [N,C,2H,2W], Pad, Conv k4", UpfirdnZeroInsertion()),
        new("dcgan_generator_qdq.onnx", "DCGAN generator in QDQ (ORT static quantizer layout: uint8 activations MinMax-calibrated on 8 seeded inputs, int8 weights per channel, int32 bias; BatchNorm folded, Relu in the ranges)", Qdq.QdqDemoModels.Quantize(DcganGenerator())),
        new("unet_decoder_block_qdq.onnx", "U-Net decoder block in QDQ (uint8 activations, int8 per-channel weights, int32 bias, Relu in the ranges)", Qdq.QdqDemoModels.Quantize(UnetDecoderBlock())),
        new("sr_block_qdq.onnx", "Super-resolution block in QDQ (uint8 activations, int8 per-channel weights, int32 bias, Relu in the ranges)", Qdq.QdqDemoModels.Quantize(SrBlock())),
    ];

    /// <summary>Writes every demo model into <paramref name="directory"/> (atomic writes); returns the paths written.</summary>
    public static IReadOnlyList<string> WriteAll(string directory)
    {
        var written = new List<string>();
        foreach (var m in All())
        {
            var path = Path.Combine(directory, m.FileName);
            ModelIO.Save(m.Model, path);
            written.Add(path);
        }
        return written;
    }

    // Widths of the PyTorch DCGAN example (nz=100, ngf=64) reduced to 128-64-32-16 so the file stays ~1.5 MB.
    private static ModelProto DcganGenerator()
    {
        var n = new NetBuilder("dcgan_generator", Seed + 1);
        string x = n.Input("z", 1, 100, 1, 1);
        x = n.ConvTranspose(x, "main.0", 100, 128, [4, 4], [1, 1], [0, 0, 0, 0], [1, 1], bias: false);
        x = n.Relu(n.BatchNorm(x, "main.1", 128), "main.2");
        long[] widths = [128, 64, 32, 16, 3];
        long size = 4;
        for (int i = 1; i < widths.Length; i++)
        {
            int m = 3 * i; // module index in the Sequential: ConvT, BN, ReLU per block
            x = n.ConvTranspose(x, $"main.{m}", widths[i - 1], widths[i], [4, 4], [2, 2], [1, 1, 1, 1], [size, size], bias: false);
            size *= 2;
            if (i < widths.Length - 1)
                x = n.Relu(n.BatchNorm(x, $"main.{m + 1}", widths[i]), $"main.{m + 2}");
        }
        n.Tanh(x, "main.13", output: "image");
        return n.Build("image", 1, 3, 64, 64);
    }

    // The "Up" block of the common PyTorch U-Net: ConvTranspose2d(in, in/2, 2, 2), cat with the skip, DoubleConv.
    private static ModelProto UnetDecoderBlock()
    {
        var n = new NetBuilder("unet_decoder_block", Seed + 2);
        string x = n.Input("x", 1, 64, 16, 16);
        string skip = n.Input("skip", 1, 32, 32, 32);
        string up = n.ConvTranspose(x, "up", 64, 32, [2, 2], [2, 2], [0, 0, 0, 0], [16, 16]);
        string cat = n.Concat([skip, up], "cat", 1);
        string y = n.Relu(n.Conv(cat, "conv.double_conv.0", 64, 32, [3, 3], [1, 1, 1, 1]), "conv.double_conv.1");
        n.Relu(n.Conv(y, "conv.double_conv.2", 32, 32, [3, 3], [1, 1, 1, 1]), "conv.double_conv.3", output: "y");
        return n.Build("y", 1, 32, 32, 32);
    }

    // FSRCNN-like x2 block: feature conv, transposed conv with output_padding 1 to get exactly 2x, reconstruction conv.
    private static ModelProto SrBlock()
    {
        var n = new NetBuilder("sr_block", Seed + 3);
        string x = n.Input("lr", 1, 3, 32, 32);
        x = n.Relu(n.Conv(x, "head.0", 3, 32, [3, 3], [1, 1, 1, 1]), "head.1");
        x = n.ConvTranspose(x, "upsample.0", 32, 32, [3, 3], [2, 2], [1, 1, 1, 1], [32, 32], outputPadding: [1, 1]);
        x = n.Relu(x, "upsample.1");
        n.Conv(x, "tail", 32, 3, [3, 3], [1, 1, 1, 1], output: "hr");
        return n.Build("hr", 1, 3, 64, 64);
    }

    // ESRGAN RRDBNet tail with nf reduced to 32: fea = lrelu(upconv(interpolate(fea, 2, nearest))) twice.
    private static ModelProto EsrganUpsampler()
    {
        var n = new NetBuilder("esrgan_upsampler", Seed + 4);
        string x = n.Input("fea", 1, 32, 16, 16);
        x = n.LeakyRelu(n.Conv(n.ResizeNearest(x, "interp1", [1, 1, 2, 2]), "upconv1", 32, 32, [3, 3], [1, 1, 1, 1]), "lrelu1", 0.2f);
        x = n.LeakyRelu(n.Conv(n.ResizeNearest(x, "interp2", [1, 1, 2, 2]), "upconv2", 32, 32, [3, 3], [1, 1, 1, 1]), "lrelu2", 0.2f);
        x = n.LeakyRelu(n.Conv(x, "HRconv", 32, 32, [3, 3], [1, 1, 1, 1]), "lrelu3", 0.2f);
        n.Conv(x, "conv_last", 32, 3, [3, 3], [1, 1, 1, 1], output: "out");
        return n.Build("out", 1, 3, 64, 64);
    }

    // A half-precision export (as torch's model.half() + torch.onnx.export writes it): every weight, input, output and
    // activation float16, the Resize scales float32 (the op requires it). Holds both patterns that the targets rewrite:
    // a ConvTranspose (portable, plugin, auto) and a Resize+Conv pair (every target, convtranspose included).
    private static ModelProto Fp16Decoder()
    {
        var n = new NetBuilder("fp16_decoder", Seed + 9);
        string x = n.Input("latent", 1, 64, 8, 8);
        x = n.Relu(n.ConvTranspose(x, "up.0", 64, 32, [4, 4], [2, 2], [1, 1, 1, 1], [8, 8]), "up.1");
        x = n.LeakyRelu(n.Conv(n.ResizeNearest(x, "up.2", [1, 1, 2, 2]), "up.3", 32, 16, [3, 3], [1, 1, 1, 1]), "up.4", 0.2f);
        n.Tanh(n.Conv(x, "to_rgb", 16, 3, [3, 3], [1, 1, 1, 1]), "tanh", output: "image");
        return HalfModel.Convert(n.Build("image", 1, 3, 32, 32), DataType.Float16);
    }

    // HiFi-GAN V1 first stage with widths reduced (512 -> 64): lrelu(0.1) then ConvTranspose1d(k=16, s=8, p=4).
    private static ModelProto HifiganUpsampler1d()
    {
        var n = new NetBuilder("hifigan_upsampler_1d", Seed + 5);
        string x = n.Input("mel", 1, 80, 32);
        x = n.Conv(x, "conv_pre", 80, 64, [7], [3, 3]);
        x = n.LeakyRelu(x, "lrelu_pre", 0.1f);
        x = n.ConvTranspose(x, "ups.0", 64, 32, [16], [8], [4, 4], [32]);
        x = n.LeakyRelu(x, "lrelu_post", 0.1f);
        x = n.Conv(x, "conv_post", 32, 1, [7], [3, 3]);
        n.Tanh(x, "tanh", output: "audio");
        return n.Build("audio", 1, 1, 256);
    }

    // 3D U-Net style decoder step on a small volume.
    private static ModelProto Decoder3d()
    {
        var n = new NetBuilder("decoder_3d", Seed + 6);
        string x = n.Input("x", 1, 32, 4, 8, 8);
        x = n.Relu(n.ConvTranspose(x, "up", 32, 16, [2, 2, 2], [2, 2, 2], [0, 0, 0, 0, 0, 0], [4, 8, 8]), "up_act");
        n.Relu(n.Conv(x, "conv", 16, 16, [3, 3, 3], [1, 1, 1, 1, 1, 1]), "conv_act", output: "y");
        return n.Build("y", 1, 16, 8, 16, 16);
    }

    // Depthwise-separable upsampling (light-weight decoders): per-channel ConvT, then a 1x1 mix.
    private static ModelProto DepthwiseConvTranspose()
    {
        var n = new NetBuilder("depthwise_convtranspose", Seed + 7);
        string x = n.Input("x", 1, 32, 16, 16);
        x = n.ConvTranspose(x, "up.dw", 32, 32, [4, 4], [2, 2], [1, 1, 1, 1], [16, 16], group: 32);
        n.Relu(n.Conv(x, "up.pw", 32, 32, [1, 1], [0, 0, 0, 0]), "up.act", output: "y");
        return n.Build("y", 1, 32, 32, 32);
    }

    // StyleGAN2 upfirdn2d(up=2, pad=(2, 1)) in NCHW: each pixel gets one zero after it on each axis, then the Conv.
    // The Conv here is a learned k4 filter (not the symmetric blur) so a rewrite that forgets the flip is caught.
    private static ModelProto UpfirdnZeroInsertion()
    {
        var n = new NetBuilder("upfirdn_zero_insertion", Seed + 8);
        const long c = 16, h = 16, w = 16, s = 2;
        string x = n.Input("x", 1, c, h, w);
        x = n.Reshape(x, "upfirdn", [1, c, h, 1, w, 1], 0);
        x = n.Pad(x, "upfirdn", [0, 0, 0, 0, 0, 0, 0, 0, 0, s - 1, 0, s - 1], 0);
        x = n.Reshape(x, "upfirdn", [1, c, h * s, w * s], 1);
        x = n.Pad(x, "upfirdn", [0, 0, 2, 2, 0, 0, 1, 1], 1);
        n.Conv(x, "conv", c, c, [4, 4], [0, 0, 0, 0], output: "y");
        return n.Build("y", 1, c, h * s, w * s);
    }
}
