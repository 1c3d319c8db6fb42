using OnnxDeconv.Geometry;

namespace OnnxDeconv.GraphRewrite.Tests.Lowering;

/// <summary>One random ConvTranspose case: attributes, shapes and where the model declares dims symbolic.</summary>
internal sealed record RandomCase(int Seed, ConvTransposeAttributes Attrs, long[] XShape, long[] WShape, bool Bias, long Opset, bool DynamicSpatial, bool DynamicBatch)
{
    public override string ToString() =>
        $"seed {Seed}: X[{string.Join(",", XShape)}] W[{string.Join(",", WShape)}] s[{J(Attrs.Strides)}] d[{J(Attrs.Dilations)}] " +
        $"pads[{J(Attrs.Pads)}] op[{J(Attrs.OutputPadding)}] os[{J(Attrs.OutputShape)}] auto_pad {ConvTransposeAttributes.AutoPadName(Attrs.AutoPad)} " +
        $"group {Attrs.Group} bias {Bias} opset {Opset} dynamic {DynamicSpatial} dynamic batch {DynamicBatch}";

    private static string J(long[]? v) => v is null ? "-" : string.Join(",", v);
}

/// <summary>
/// Local seeded generator of ConvTranspose configurations ONNX Runtime accepts: ranks 1-3, strides 1-3, dilations
/// 1-3, kernels 1-5, groups (incl. depthwise), asymmetric pads, output_padding &lt; stride, auto_pad, output_shape, bias,
/// opsets 9/10/11/22 and symbolic spatial dims where the rewrite supports them.
/// </summary>
internal static class RandomConvTransposeConfigs
{
    public static RandomCase Generate(int seed)
    {
        var rng = new Random(seed);
        while (true)
        {
            var c = TryGenerate(rng, seed);
            if (c is not null) return c;
        }
    }

    private static RandomCase? TryGenerate(Random rng, int seed)
    {
        int rank = rng.Next(10) switch { < 3 => 1, < 8 => 2, _ => 3 };
        int maxK = rank == 3 ? 3 : 5;
        long group = rng.Next(4) switch { 0 => 2, 1 => 3, _ => 1 };
        long cig = rng.Next(1, rank == 3 ? 3 : 4), cog = rng.Next(1, rank == 3 ? 3 : 4);
        if (rng.Next(6) == 0) { cig = 1; cog = 1; group = rng.Next(2, 5); } // depthwise
        long cin = cig * group;
        var k = new long[rank]; var s = new long[rank]; var d = new long[rank]; var x = new long[rank];
        bool equalStrides = rank == 2 && rng.Next(3) > 0;
        for (int i = 0; i < rank; i++)
        {
            k[i] = rng.Next(1, maxK + 1);
            s[i] = rng.Next(1, 4);
            d[i] = rng.Next(4) == 0 ? rng.Next(2, 4) : 1;
            x[i] = rng.Next(1, rank == 3 ? 5 : 8);
        }
        if (equalStrides) s[1] = s[0];
        var attrs = new ConvTransposeAttributes
        {
            Strides = s.All(v => v == 1) && rng.Next(2) == 0 ? null : s,
            Dilations = d.All(v => v == 1) && rng.Next(2) == 0 ? null : d,
            Group = group,
            KernelShape = rng.Next(4) == 0 ? k : null,
        };
        long[]? op = rng.Next(3) == 0 ? s.Select(v => (long)rng.Next((int)v)).ToArray() : null;
        attrs = attrs with { OutputPadding = op };
        int mode = rng.Next(10);
        if (mode < 5)
            attrs = attrs with { Pads = rng.Next(5) == 0 ? null : Enumerable.Range(0, 2 * rank).Select(i => (long)rng.Next((int)(d[i % rank] * (k[i % rank] - 1) + s[i % rank]) + 1)).ToArray() };
        else if (mode < 7)
            attrs = attrs with { AutoPad = rng.Next(2) == 0 ? AutoPad.SameUpper : AutoPad.SameLower };
        else if (mode < 8)
            attrs = attrs with { AutoPad = AutoPad.Valid };
        else
        {
            // output_shape between the full output and a few less (the implied total padding must be >= 0).
            var os = new long[rank];
            for (int i = 0; i < rank; i++)
            {
                long full = s[i] * (x[i] - 1) + (op?[i] ?? 0) + d[i] * (k[i] - 1) + 1;
                os[i] = Math.Max(1, full - rng.Next(0, (int)Math.Min(full, 2 * s[i] + 1)));
            }
            attrs = attrs with { OutputShape = os, AutoPad = rng.Next(3) == 0 ? AutoPad.SameUpper : AutoPad.NotSet };
        }
        long[] xShape = [rng.Next(1, 3), cin, .. x];
        long[] wShape = [cin, cog, .. k];
        try
        {
            var g = ConvTransposeGeometry.Resolve(attrs, xShape, wShape);
            if (g.OrtRejectsOutputPadding) return null;
            // SAME_* with a negative total padding is ill-defined (see DESIGN.md); leave it out of the sweep.
            if (attrs.AutoPad is AutoPad.SameUpper or AutoPad.SameLower && attrs.OutputShape is null
                && g.Axes.Any(a => a.FullLength < a.Input * a.Stride)) return null;
        }
        catch (GeometryException) { return null; }
        long opset = rng.Next(8) switch { 0 => 9, 1 => 10, 2 => 11, _ => 22 };
        // Symbolic spatial dims wherever the rewrite supports them: everywhere but output_shape (its pads hold for one size).
        bool dynamicOk = attrs.OutputShape is null;
        bool dynamic = dynamicOk && rng.Next(3) == 0;
        return new RandomCase(seed, attrs, xShape, wShape, rng.Next(2) == 0, opset, dynamic, attrs.OutputShape is null && rng.Next(4) == 0);
    }
}
