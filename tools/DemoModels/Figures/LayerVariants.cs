using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.DemoModels.Figures;

/// <summary>
/// One 2D ConvTranspose layer written three ways in standard ONNX ops, to measure section 6 of docs/how-it-works.md:
/// the ConvTranspose node itself, zero insertion (Reshape-Pad-Reshape, then Conv with the flipped kernel), and
/// polyphase as one Conv with Cout*s*s channels + DepthToSpace(CRD) + Slice. Input "x", output "y".
/// </summary>
public static class LayerVariants
{
    public const string Input = "x", Output = "y";

    /// <summary>Only what the three forms share: 2D, group 1, dilation 1, no output_padding, K divisible by s, pads below K.</summary>
    public static void CheckSupported(ConvTransposeGeometry g)
    {
        if (g.Rank != 2 || g.Group != 1)
            throw new ArgumentException("layer variants need a 2D ConvTranspose with group 1");
        foreach (var a in g.Axes)
        {
            if (a.Dilation != 1 || a.OutputPadding != 0 || a.Kernel % a.Stride != 0)
                throw new ArgumentException($"layer variants need dilation 1, output_padding 0 and kernel % stride == 0 (kernel {a.Kernel}, stride {a.Stride})");
            if (a.PadBegin < 0 || a.PadEnd < 0 || a.Kernel - 1 - a.PadEnd - (a.Stride - 1) < 0 || a.Kernel - 1 - a.PadBegin < 0)
                throw new ArgumentException($"layer variants need 0 <= pads <= K - s (pads {a.PadBegin}, {a.PadEnd}, K {a.Kernel}, s {a.Stride})");
        }
    }

    public static ModelProto ConvTranspose(ConvTransposeGeometry g, float[] w, float[] bias)
    {
        CheckSupported(g);
        var b = Start("convtranspose", g);
        b.Initializer("W", g.WeightShape, w);
        b.Initializer("B", [g.OutChannels], bias);
        b.Node(Ops.ConvTranspose.OpType, [Input, "W", "B"],
        [
            Attributes.Ints(Ops.ConvTranspose.KernelShape, g.Axes.Select(a => a.Kernel)),
            Attributes.Ints(Ops.ConvTranspose.Pads, g.Pads),
            Attributes.Ints(Ops.ConvTranspose.Strides, g.Axes.Select(a => a.Stride)),
        ], Output);
        return b.Build();
    }

    public static ModelProto ZeroInsertion(ConvTransposeGeometry g, float[] w, float[] bias)
    {
        CheckSupported(g);
        var (h, wd) = (g.Axes[0], g.Axes[1]);
        long s0 = h.Stride, s1 = wd.Stride, k0 = h.Kernel, k1 = wd.Kernel, cin = g.InChannels, cout = g.OutChannels;
        var b = Start("zero_insertion", g);
        b.InitializerInt64("shape6", [6], [g.Batch, cin, h.Input, 1, wd.Input, 1]);
        b.InitializerInt64("pads6", [12], [0, 0, 0, 0, 0, 0, 0, 0, 0, s0 - 1, 0, s1 - 1]);
        b.InitializerInt64("shape4", [4], [g.Batch, cin, h.Input * s0, wd.Input * s1]);
        // Conv weight [Cout, Cin, K, K]: channels swapped, kernel flipped.
        var wc = new float[w.Length];
        for (long ci = 0; ci < cin; ci++)
        for (long co = 0; co < cout; co++)
        for (long a = 0; a < k0; a++)
        for (long c = 0; c < k1; c++)
            wc[((co * cin + ci) * k0 + (k0 - 1 - a)) * k1 + (k1 - 1 - c)] = w[((ci * cout + co) * k0 + a) * k1 + c];
        b.Initializer("Wc", [cout, cin, k0, k1], wc);
        b.Initializer("B", [cout], bias);
        var r6 = b.Node(Ops.Reshape.OpType, [Input, "shape6"]);
        var p6 = b.Node(Ops.Pad.OpType, [r6, "pads6"], [Attributes.String(Ops.Pad.Mode, Ops.Values.Constant)]);
        var r4 = b.Node(Ops.Reshape.OpType, [p6, "shape4"]);
        // The reshape leaves s-1 trailing zeros after the last pixel; the end pad absorbs them.
        b.Node(Ops.Conv.OpType, [r4, "Wc", "B"],
        [
            Attributes.Ints(Ops.Conv.KernelShape, [k0, k1]),
            Attributes.Ints(Ops.Conv.Pads, [k0 - 1 - h.PadBegin, k1 - 1 - wd.PadBegin, k0 - 1 - h.PadEnd - (s0 - 1), k1 - 1 - wd.PadEnd - (s1 - 1)]),
        ], Output);
        return b.Build();
    }

    public static ModelProto PolyphaseConv(ConvTransposeGeometry g, float[] w, float[] bias)
    {
        CheckSupported(g);
        var (h, wd) = (g.Axes[0], g.Axes[1]);
        if (h.Stride != wd.Stride) throw new ArgumentException("DepthToSpace needs the same stride on both axes");
        long s = h.Stride, k0 = h.Kernel, k1 = wd.Kernel, t0 = k0 / s, t1 = k1 / s, cin = g.InChannels, cout = g.OutChannels;
        // Channel c*s*s + rh*s + rw holds phase (rh, rw) of output channel c (DepthToSpace CRD); its tap t' reads
        // x[q - (T-1-t')], i.e. kernel tap r + s*(T-1-t') of the ConvTranspose.
        var wp = new float[cout * s * s * cin * t0 * t1];
        var bp = new float[cout * s * s];
        for (long co = 0; co < cout; co++)
        for (long rh = 0; rh < s; rh++)
        for (long rw = 0; rw < s; rw++)
        {
            long oc = co * s * s + rh * s + rw;
            bp[oc] = bias[co];
            for (long ci = 0; ci < cin; ci++)
            for (long a = 0; a < t0; a++)
            for (long c = 0; c < t1; c++)
                wp[((oc * cin + ci) * t0 + a) * t1 + c] = w[((ci * cout + co) * k0 + rh + s * (t0 - 1 - a)) * k1 + rw + s * (t1 - 1 - c)];
        }
        var b = Start("polyphase_conv", g);
        b.Initializer("Wp", [cout * s * s, cin, t0, t1], wp);
        b.Initializer("Bp", [cout * s * s], bp);
        b.InitializerInt64("starts", [2], [h.PadBegin, wd.PadBegin]);
        b.InitializerInt64("ends", [2], [h.PadBegin + h.Output, wd.PadBegin + wd.Output]);
        b.InitializerInt64("axes", [2], [2, 3]);
        var conv = b.Node(Ops.Conv.OpType, [Input, "Wp", "Bp"],
        [
            Attributes.Ints(Ops.Conv.KernelShape, [t0, t1]),
            Attributes.Ints(Ops.Conv.Pads, [t0 - 1, t1 - 1, t0 - 1, t1 - 1]),
        ]);
        var d2s = b.Node(Ops.DepthToSpace.OpType, [conv],
            [Attributes.Int(Ops.DepthToSpace.BlockSize, s), Attributes.String(Ops.DepthToSpace.Mode, Ops.DepthToSpace.ModeCrd)]);
        b.Node(Ops.Slice.OpType, [d2s, "starts", "ends", "axes"], null, Output);
        return b.Build();
    }

    private static ModelBuilder Start(string name, ConvTransposeGeometry g)
    {
        var b = new ModelBuilder(name, NetBuilder.Opset, NetBuilder.IrVersion);
        b.Input(Input, g.InputShape);
        b.Output(Output, g.OutputShape);
        return b;
    }
}
