using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;

namespace OnnxDeconv.Cli.Bench;

/// <summary>
/// The ONNX models the ORT columns run: the layer's reference model (a single ConvTranspose node, or Resize + Conv),
/// the zero-insertion form of a ConvTranspose, and the reference rewritten by our optimizer (portable or plugin).
/// </summary>
public static class LayerModels
{
    public const string X = "X", Y = "Y";

    public static ModelProto Reference(Layer layer, float[] w, float[] b) =>
        layer.Kind == LayerKind.ConvTranspose ? ConvTransposeModel(layer, w, b) : ResizeConvModel(layer, w, b);

    /// <summary>
    /// The reference model rewritten by <see cref="Optimizer.Run(ModelProto, OptimizeOptions)"/>, exactly as
    /// `onnx-deconv optimize --target ...` would; fails loudly if anything was left alone (the column would silently
    /// time ONNX Runtime's own ops otherwise).
    /// </summary>
    public static byte[] Rewritten(Layer layer, float[] w, float[] b, Target target)
    {
        var result = Optimizer.Run(Reference(layer, w, b), new OptimizeOptions { Target = target });
        var skipped = result.Nodes.FirstOrDefault(n => !n.Rewritten);
        if (!result.Changed || skipped is not null)
            throw new InvalidOperationException($"{layer.Name}: the {target} rewrite left {skipped?.Node ?? "the model"} alone: {skipped?.Reason ?? "no match"}");
        return ModelIO.Serialize(result.Model);
    }

    private static ModelProto ConvTransposeModel(Layer layer, float[] w, float[] b)
    {
        var g = layer.Geometry;
        var mb = new ModelBuilder("convtranspose");
        mb.Input(X, g.InputShape);
        mb.Initializer("W", g.WeightShape, w);
        mb.Initializer("B", [g.OutChannels], b);
        mb.Node(Ops.ConvTranspose.OpType, [X, "W", "B"],
        [
            Attributes.Ints(Ops.ConvTranspose.Strides, g.Axes.Select(a => a.Stride)),
            Attributes.Ints(Ops.ConvTranspose.Pads, g.Pads),
            Attributes.Ints(Ops.ConvTranspose.Dilations, g.Axes.Select(a => a.Dilation)),
            Attributes.Ints(Ops.ConvTranspose.OutputPadding, g.Axes.Select(a => a.OutputPadding)),
            Attributes.Int(Ops.ConvTranspose.Group, g.Group),
        ], output: Y);
        mb.Output(Y, g.OutputShape);
        return mb.Build();
    }

    /// <summary>F.interpolate(scale_factor=s, mode="nearest") then a "same" Conv, as torch.onnx.export writes them (ESRGAN-style upsampler).</summary>
    private static ModelProto ResizeConvModel(Layer layer, float[] w, float[] b)
    {
        var mb = new ModelBuilder("resize_conv");
        mb.Input(X, layer.InputShape);
        int spatial = layer.InputShape.Length - 2;
        float[] scales = [1f, 1f, .. Enumerable.Repeat((float)layer.ResizeScale, spatial)];
        mb.Initializer("scales", [scales.Length], scales);
        var up = mb.Node(Ops.Resize.OpType, [X, "", "scales"],
        [
            Attributes.String(Ops.Resize.CoordinateTransformationMode, Ops.Values.Asymmetric),
            Attributes.String(Ops.Resize.Mode, Ops.Values.Nearest),
            Attributes.String(Ops.Resize.NearestMode, Ops.Values.Floor),
        ]);
        mb.Initializer("W", layer.ReferenceWeightShape, w);
        mb.Initializer("B", [layer.OutputShape[1]], b);
        mb.Node(Ops.Conv.OpType, [up, "W", "B"],
        [
            Attributes.Ints(Ops.Conv.KernelShape, Enumerable.Repeat(layer.ConvKernel, spatial)),
            Attributes.Ints(Ops.Conv.Pads, Enumerable.Repeat(layer.ConvPad, 2 * spatial)),
        ], output: Y);
        mb.Output(Y, layer.OutputShape);
        return mb.Build();
    }

    /// <summary>
    /// Zero insertion as exporters write it: Reshape x to [N, C, I1, 1, I2, 1, ...], Pad the unit axes to s, Reshape to
    /// [N, C, I1*s, ...], then a stride-1 Conv with the flipped, channel-transposed kernel. The s-1 trailing zeros the
    /// reshape leaves are absorbed by reducing the Conv's end pad (all suite layers keep it >= 0).
    /// </summary>
    public static byte[] ZeroInsertion(Layer layer, float[] w, float[] b)
    {
        var g = layer.Geometry;
        int r = g.Rank;
        var mb = new ModelBuilder("zero_insertion");
        mb.Input(X, g.InputShape);
        var split = new List<long> { g.Batch, g.InChannels };
        var merged = new List<long> { g.Batch, g.InChannels };
        var pads = new long[2 * (2 + 2 * r)];
        foreach (var (a, i) in g.Axes.Select((a, i) => (a, i)))
        {
            split.Add(a.Input); split.Add(1);
            merged.Add(a.Input * a.Stride);
            pads[(2 + 2 * r) + 2 + 2 * i + 1] = a.Stride - 1; // end pad of the unit axis after axis i
        }
        var s1 = mb.InitializerInt64("split_shape", [split.Count], split.ToArray());
        var s2 = mb.InitializerInt64("merged_shape", [merged.Count], merged.ToArray());
        var pd = mb.InitializerInt64("pads", [pads.Length], pads);
        var t = mb.Node(Ops.Reshape.OpType, [X, s1]);
        t = mb.Node(Ops.Pad.OpType, [t, pd]);
        t = mb.Node(Ops.Reshape.OpType, [t, s2]);

        // Conv weight [Cout, Cin/g, K...]: W'[g*Cog+oc, ic, k] = W[g*Cig+ic, oc, K-1-k].
        long cig = g.InChannelsPerGroup, cog = g.OutChannelsPerGroup;
        long ks = g.Axes.Aggregate(1L, (p, a) => p * a.Kernel);
        var wc = new float[w.Length];
        for (long grp = 0; grp < g.Group; grp++)
        for (long ic = 0; ic < cig; ic++)
        for (long oc = 0; oc < cog; oc++)
        for (long k = 0; k < ks; k++)
            wc[((grp * cog + oc) * cig + ic) * ks + (ks - 1 - k)] = w[((grp * cig + ic) * cog + oc) * ks + k];
        mb.Initializer("Wc", [g.OutChannels, cig, .. g.Axes.Select(a => a.Kernel)], wc);
        mb.Initializer("B", [g.OutChannels], b);
        var convPads = g.Axes.Select(a => a.ImplicitPadBegin).Concat(g.Axes.Select(a => a.ImplicitPadEnd - (a.Stride - 1))).ToArray();
        if (convPads.Any(p => p < 0)) throw new NotSupportedException($"{layer.Name}: zero-insertion form would need a crop");
        mb.Node(Ops.Conv.OpType, [t, "Wc", "B"],
        [
            Attributes.Ints(Ops.Conv.Pads, convPads),
            Attributes.Ints(Ops.Conv.Dilations, g.Axes.Select(a => a.Dilation)),
            Attributes.Int(Ops.Conv.Group, g.Group),
        ], output: Y);
        mb.Output(Y, g.OutputShape);
        return ModelIO.Serialize(mb.Build());
    }
}
