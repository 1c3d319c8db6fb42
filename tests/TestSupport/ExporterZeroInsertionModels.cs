using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.TestSupport;

/// <summary>How the exporter-style DCGAN is spoilt for negative tests.</summary>
public enum ExporterFlaw
{
    None,
    /// <summary>The first layer's row zeros are concatenated along axis 0 instead of 1: values land in other channels.</summary>
    PermutedInterleave,
    /// <summary>The first layer's left border is 0.5 instead of zeros.</summary>
    NonzeroBorder,
}

/// <summary>
/// A DCGAN generator written the way an exporter for an old runtime replaced its ConvTransposes (k4 s2 p1): per layer
/// x -> Reshape[-1,1] -> Concat(zeros, axis 1) -> Reshape[1,C,H,2W] (columns interleaved) -> Reshape[-1,2W] ->
/// Concat(zeros, axis 1) -> Reshape[1,C,2H,2W] (rows interleaved) -> Concat borders of 2 before / 1 after (k-1-p, and
/// k-1-p-(s-1) after the stuffed trailing zero) along W then H -> Conv k4 s1 p0. Batch hard-coded to 1, no value_info.
/// </summary>
public static class ExporterZeroInsertionModels
{
    public static ModelProto Dcgan(ExporterFlaw flaw = ExporterFlaw.None)
    {
        var b = new ModelBuilder("dcgan_zero_insertion", opset: 11, irVersion: 6);
        var rng = new Random(5);
        float[] Rand(long n, float scale) => Enumerable.Range(0, (int)n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();
        string cur = b.Input("z", [1, 16, 4, 4]);
        (long c, long h, long w) = (16, 4, 4);
        long[] couts = [8, 3];
        for (int l = 0; l < couts.Length; l++)
        {
            string p = $"l{l}_";
            bool first = l == 0;
            string Zeros(string name, long[] dims, float value = 0f) =>
                b.Initializer(p + name, dims, Enumerable.Repeat(value, (int)dims.Aggregate(1L, (x, y) => x * y)).ToArray());
            string Shape(string name, long[] dims) => b.InitializerInt64(p + name, [dims.Length], dims);
            cur = b.Node(Ops.Reshape.OpType, [cur, Shape("flat", [-1, 1])], name: p + "flat");
            cur = b.Node(Ops.Concat.OpType, [cur, Zeros("zc", [c * h * w, 1])], [Attributes.Int(Ops.Concat.Axis, 1)], name: p + "cols");
            cur = b.Node(Ops.Reshape.OpType, [cur, Shape("colshape", [1, c, h, 2 * w])], name: p + "colmerge");
            cur = b.Node(Ops.Reshape.OpType, [cur, Shape("rows", [-1, 2 * w])], name: p + "rowflat");
            long rowAxis = first && flaw == ExporterFlaw.PermutedInterleave ? 0 : 1;
            cur = b.Node(Ops.Concat.OpType, [cur, Zeros("zr", [c * h, 2 * w])], [Attributes.Int(Ops.Concat.Axis, rowAxis)], name: p + "rowcat");
            cur = b.Node(Ops.Reshape.OpType, [cur, Shape("rowshape", [1, c, 2 * h, 2 * w])], name: p + "rowmerge");
            float border = first && flaw == ExporterFlaw.NonzeroBorder ? 0.5f : 0f;
            cur = b.Node(Ops.Concat.OpType, [Zeros("bl", [1, c, 2 * h, 2], border), cur, Zeros("br", [1, c, 2 * h, 1])],
                [Attributes.Int(Ops.Concat.Axis, 3)], name: p + "borderw");
            cur = b.Node(Ops.Concat.OpType, [Zeros("bt", [1, c, 2, 2 * w + 3]), cur, Zeros("bb", [1, c, 1, 2 * w + 3])],
                [Attributes.Int(Ops.Concat.Axis, 2)], name: p + "borderh");
            long co = couts[l];
            string wt = b.Initializer(p + "w", [co, c, 4, 4], Rand(co * c * 16, 0.15f));
            string bias = b.Initializer(p + "b", [co], Rand(co, 0.1f));
            cur = b.Node(Ops.Conv.OpType, [cur, wt, bias],
                [Attributes.Ints(Ops.Conv.KernelShape, [4, 4]), Attributes.Ints(Ops.Conv.Pads, [0, 0, 0, 0])], name: p + "conv");
            cur = b.Node(l == couts.Length - 1 ? Ops.Tanh.OpType : Ops.Relu.OpType, [cur], name: p + "act",
                output: l == couts.Length - 1 ? "image" : null);
            (c, h, w) = (co, 2 * h, 2 * w);
        }
        b.Output("image", [1, 3, 16, 16]);
        return b.Build();
    }
}
