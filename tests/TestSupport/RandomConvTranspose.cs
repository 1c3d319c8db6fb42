using System.Globalization;
using System.Text;
using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Runtime;
using CT = OnnxDeconv.GraphRewrite.Ops.ConvTranspose;

namespace OnnxDeconv.TestSupport;

/// <summary>Which family of configurations <see cref="RandomConvTranspose"/> draws from.</summary>
public enum ConvTransposeFlavor
{
    /// <summary>Valid per the spec and accepted by ONNX Runtime: output_padding &lt; stride on every axis.</summary>
    OrtAccepted,

    /// <summary>
    /// Valid per the spec (output_padding &lt; max(stride, dilation)) but with stride &lt;= output_padding &lt; dilation
    /// on at least one axis, which ONNX Runtime refuses. Padding is explicit or absent (no auto_pad, no output_shape)
    /// so the same node with output_padding removed is a valid ONNX Runtime node that computes a prefix of the output.
    /// </summary>
    SpecOnlyOutputPadding,
}

/// <summary>
/// One random ConvTranspose configuration with its tensors. Everything, data included, follows from <see cref="Seed"/>
/// and <see cref="Flavor"/>: <c>RandomConvTranspose.Generate(seed, flavor)</c> reproduces a failing case alone.
/// </summary>
public sealed class ConvTransposeCase
{
    public required int Seed { get; init; }
    public required ConvTransposeFlavor Flavor { get; init; }
    public required long[] InputShape { get; init; }
    public required long[] WeightShape { get; init; }
    public required ConvTransposeAttributes Attributes { get; init; }
    /// <summary>Bias values (length Cout), or null when the node has no B input.</summary>
    public required float[]? Bias { get; init; }
    public required float[] X { get; init; }
    public required float[] W { get; init; }
    /// <summary>W as an initializer takes ONNX Runtime's pre-packed-weight path; as a graph input, the unpacked one.</summary>
    public required bool WeightIsInitializer { get; init; }
    public required long Opset { get; init; }

    public int Rank => InputShape.Length - 2;

    /// <summary>A single-node model Y = ConvTranspose(X, W[, B]) with Y's shape left undeclared, so ONNX Runtime decides it.</summary>
    public ModelProto BuildModel(ConvTransposeAttributes? attributes = null)
    {
        var b = new ModelBuilder("random_convtranspose", Opset);
        b.Input("X", InputShape);
        if (WeightIsInitializer) b.Initializer("W", WeightShape, W);
        else b.Input("W", WeightShape);
        var inputs = new List<string> { "X", "W" };
        if (Bias is not null)
        {
            b.Initializer("B", [Bias.Length], Bias);
            inputs.Add("B");
        }
        b.Node(CT.OpType, inputs, ConvTransposeNode.ToAttributes(attributes ?? Attributes), output: "Y");
        b.Output("Y", null);
        return b.Build();
    }

    /// <summary>The graph inputs <see cref="BuildModel"/> declares, with their data.</summary>
    public IReadOnlyList<TensorValue> Inputs() => WeightIsInitializer
        ? [TensorValue.Float("X", InputShape, X)]
        : [TensorValue.Float("X", InputShape, X), TensorValue.Float("W", WeightShape, W)];

    /// <summary>One line with everything needed to understand (and replay) the case in a failure message.</summary>
    public override string ToString()
    {
        var a = Attributes;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"seed={Seed} {Flavor}: X{Fmt(InputShape)} W{Fmt(WeightShape)} opset={Opset}");
        sb.Append(WeightIsInitializer ? " W=initializer" : " W=input");
        sb.Append(Bias is null ? " no-bias" : " bias");
        sb.Append(CultureInfo.InvariantCulture, $" group={a.Group} auto_pad={ConvTransposeAttributes.AutoPadName(a.AutoPad)}");
        Opt(sb, CT.KernelShape, a.KernelShape);
        Opt(sb, CT.Strides, a.Strides);
        Opt(sb, CT.Dilations, a.Dilations);
        Opt(sb, CT.Pads, a.Pads);
        Opt(sb, CT.OutputPadding, a.OutputPadding);
        Opt(sb, CT.OutputShape, a.OutputShape);
        return sb.ToString();
    }

    private static void Opt(StringBuilder sb, string name, long[]? v)
    {
        if (v is not null) sb.Append(' ').Append(name).Append('=').Append(Fmt(v));
    }

    private static string Fmt(long[] v) => "[" + string.Join(",", v) + "]";
}

/// <summary>
/// Seeded random ConvTranspose configurations covering every attribute: ranks 1-3, batch 1-2, groups (including
/// depthwise), kernel 1-5, stride 1-4, dilation 1-3, asymmetric pads, output_padding, output_shape (spatial or full
/// with zero, even, odd and negative total padding), auto_pad NOTSET/SAME_UPPER/SAME_LOWER/VALID, kernel_shape
/// present or absent, bias or not. Spatial sizes and channel counts are tiny so hundreds of cases run in seconds.
/// </summary>
public static class RandomConvTranspose
{
    /// <summary><paramref name="count"/> cases with seeds firstSeed, firstSeed+1, ...</summary>
    public static IEnumerable<ConvTransposeCase> Cases(ConvTransposeFlavor flavor, int firstSeed, int count) =>
        Enumerable.Range(0, count).Select(i => Generate(firstSeed + i, flavor));

    public static ConvTransposeCase Generate(int seed, ConvTransposeFlavor flavor)
    {
        // System.Random with a seed is the stable legacy algorithm: the same seed gives the same case on every run.
        var rng = new Random(seed);
        int r = rng.Next(1, 4);
        int maxIn = r switch { 1 => 7, 2 => 4, _ => 3 };

        long batch = rng.Next(1, 3);
        long group, cinPerGroup, coutPerGroup;
        switch (rng.Next(3))
        {
            case 0: group = 1; cinPerGroup = rng.Next(1, 4); coutPerGroup = rng.Next(1, 4); break;
            case 1: group = rng.Next(2, 4); cinPerGroup = rng.Next(1, 3); coutPerGroup = rng.Next(1, 3); break;
            default: group = rng.Next(1, 5); cinPerGroup = 1; coutPerGroup = rng.Next(1, 3); break; // depthwise (multiplier 1-2)
        }
        long cin = group * cinPerGroup;

        var input = new long[r];
        var kernel = new long[r];
        var stride = new long[r];
        var dilation = new long[r];
        var outPad = new long[r];
        for (int i = 0; i < r; i++)
        {
            input[i] = rng.Next(1, maxIn + 1);
            kernel[i] = rng.Next(1, 6);
            stride[i] = rng.Next(1, 5);
            dilation[i] = rng.Next(1, 4);
        }

        bool hasOutPad;
        if (flavor == ConvTransposeFlavor.SpecOnlyOutputPadding)
        {
            // One axis (at least) gets stride <= output_padding < dilation.
            int j = rng.Next(r);
            stride[j] = rng.Next(1, 3);
            dilation[j] = rng.Next((int)stride[j] + 1, 4);
            kernel[j] = Math.Max(kernel[j], 2); // with K = 1 dilation is moot; keep the case meaningful
            for (int i = 0; i < r; i++)
                outPad[i] = i == j ? rng.Next((int)stride[j], (int)dilation[j]) : rng.Next((int)stride[i]);
            hasOutPad = true;
        }
        else
        {
            hasOutPad = rng.Next(2) == 0;
            if (hasOutPad)
                for (int i = 0; i < r; i++) outPad[i] = rng.Next((int)stride[i]);
        }

        var full = new long[r];
        for (int i = 0; i < r; i++)
            full[i] = stride[i] * (input[i] - 1) + outPad[i] + dilation[i] * (kernel[i] - 1) + 1;

        AutoPad autoPad = AutoPad.NotSet;
        long[]? pads = null, outputShape = null;
        int mode = flavor == ConvTransposeFlavor.SpecOnlyOutputPadding ? rng.Next(2) : rng.Next(8);
        switch (mode)
        {
            case 0: break; // no padding attributes at all
            case 1: case 2: // explicit, usually asymmetric, pads; never cropping everything
                pads = new long[2 * r];
                for (int i = 0; i < r; i++)
                {
                    long reach = dilation[i] * (kernel[i] - 1) + stride[i];
                    long pb = rng.Next((int)reach + 1), pe = rng.Next((int)reach + 1);
                    long base0 = full[i] - outPad[i]; // the SpecOnly flavor also runs without output_padding
                    while (pb + pe >= base0) { if (pb >= pe) pb--; else pe--; }
                    pads[i] = pb; pads[i + r] = pe;
                }
                break;
            case 3: case 4: // output_shape: total padding zero, even, odd, or negative (output extended at the end)
                outputShape = new long[r];
                for (int i = 0; i < r; i++)
                {
                    // ONNX Runtime accepts an extension only while extension + output_padding < stride.
                    long maxExtension = Math.Max(0, stride[i] - 1 - outPad[i]);
                    outputShape[i] = full[i] - rng.Next(-(int)maxExtension, (int)Math.Min(full[i], 8));
                }
                // The total padding is split by auto_pad (SAME_UPPER: odd pixel at the end, otherwise at the begin);
                // with NOTSET, pads may be present too and are ignored in favour of output_shape.
                autoPad = rng.Next(6) switch { 0 => AutoPad.SameUpper, 1 => AutoPad.SameLower, 2 => AutoPad.Valid, _ => AutoPad.NotSet };
                if (autoPad == AutoPad.NotSet && rng.Next(3) == 0)
                    pads = Enumerable.Range(0, 2 * r).Select(_ => (long)rng.Next(3)).ToArray();
                break;
            case 5: autoPad = AutoPad.SameUpper; break;
            case 6: autoPad = AutoPad.SameLower; break;
            default: autoPad = AutoPad.Valid; break;
        }

        bool allOnes(long[] v) => v.All(x => x == 1);
        var attrs = new ConvTransposeAttributes
        {
            KernelShape = rng.Next(2) == 0 ? kernel : null,
            Strides = !allOnes(stride) || rng.Next(2) == 0 ? stride : null,
            Dilations = !allOnes(dilation) || rng.Next(2) == 0 ? dilation : null,
            OutputPadding = hasOutPad ? outPad : null,
            Pads = pads,
            OutputShape = outputShape,
            AutoPad = autoPad,
            Group = group,
        };

        long[] inputShape = [batch, cin, .. input];
        long[] weightShape = [cin, coutPerGroup, .. kernel];
        bool hasBias = rng.Next(2) == 0;
        bool weightIsInitializer = rng.Next(2) == 0;
        long opset = rng.Next(2) == 0 ? 22 : 11;
        return new ConvTransposeCase
        {
            Seed = seed,
            Flavor = flavor,
            InputShape = inputShape,
            WeightShape = weightShape,
            Attributes = attrs,
            X = RandomFloats(rng, inputShape),
            W = RandomFloats(rng, weightShape),
            Bias = hasBias ? RandomFloats(rng, [group * coutPerGroup]) : null,
            WeightIsInitializer = weightIsInitializer,
            Opset = opset,
        };
    }

    private static float[] RandomFloats(Random rng, long[] shape)
    {
        long n = shape.Aggregate(1L, (p, v) => p * v);
        var a = new float[n];
        for (long i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        return a;
    }
}
