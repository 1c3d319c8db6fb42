using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Verification;
using C = OnnxDeconv.GraphRewrite.Ops.Conv;
using R = OnnxDeconv.GraphRewrite.Ops.Resize;
using U = OnnxDeconv.GraphRewrite.Ops.Upsample;

namespace OnnxDeconv.GraphRewrite.Tests.ResizeConv;

/// <summary>How the upsample is written: the op/opset and how its scale reaches it.</summary>
public enum UpsampleForm
{
    /// <summary>Resize-19, constant scales input.</summary>
    Resize19,
    /// <summary>Resize-18 with the axes attribute naming only the spatial axes.</summary>
    Resize18Axes,
    /// <summary>Resize-13 with constant sizes instead of scales.</summary>
    Resize13Sizes,
    /// <summary>Resize-11 (roi input required, given empty).</summary>
    Resize11,
    /// <summary>Resize-10: no coordinate modes, nearest is floor(j/s).</summary>
    Resize10,
    /// <summary>Upsample-9: scales as an input.</summary>
    Upsample9,
    /// <summary>Upsample-7: scales as an attribute.</summary>
    Upsample7,
}

/// <summary>One Resize/Upsample → Conv configuration.</summary>
public sealed record ResizeConvCase(
    UpsampleForm Form,
    long Batch,
    long[] Spatial,
    long[] Scales,
    long[] Kernel,
    long[] Pads,
    long CinPerGroup,
    long CoutPerGroup,
    long Group,
    bool Bias,
    string Ctm,
    string Nearest,
    string? AutoPad = null,
    int Seed = 0,
    long[]? Dilations = null)
{
    public long Opset => Form switch
    {
        UpsampleForm.Resize19 => 19,
        UpsampleForm.Resize18Axes => 18,
        UpsampleForm.Resize13Sizes => 13,
        UpsampleForm.Resize11 => 11,
        UpsampleForm.Resize10 => 10,
        UpsampleForm.Upsample9 => 9,
        _ => 7,
    };

    public override string ToString() =>
        $"{Form} N{Batch} x[{string.Join(",", Spatial)}] s[{string.Join(",", Scales)}] k[{string.Join(",", Kernel)}] pads[{string.Join(",", Pads)}] "
        + $"cin/g {CinPerGroup} cout/g {CoutPerGroup} g {Group} bias {Bias} {Ctm}+{Nearest} auto_pad {AutoPad ?? "-"} seed {Seed}"
        + (Dilations is null ? "" : $" dilations[{string.Join(",", Dilations)}]");
}

internal static class ResizeConvModels
{
    public static readonly string[][] ExactModes =
    [
        ["asymmetric", "floor"],
        ["half_pixel", "round_prefer_floor"],
        ["half_pixel", "round_prefer_ceil"],
        ["pytorch_half_pixel", "round_prefer_floor"],
        ["pytorch_half_pixel", "round_prefer_ceil"],
        ["asymmetric", "round_prefer_floor"], // only at s = 2
    ];

    public static ModelProto Build(ResizeConvCase c, string mode = "nearest", float[]? scalesOverride = null)
    {
        int r = c.Spatial.Length;
        var b = new ModelBuilder("resize_conv", c.Opset);
        long cin = c.CinPerGroup * c.Group, cout = c.CoutPerGroup * c.Group;
        long[] xShape = [c.Batch, cin, .. c.Spatial];
        b.Input("x", xShape);
        float[] scales = scalesOverride ?? [1f, 1f, .. c.Scales.Select(s => (float)s)];
        var attrs = new List<AttributeProto> { Attributes.String(R.Mode, mode) };
        string u;
        switch (c.Form)
        {
            case UpsampleForm.Upsample7:
                attrs.Add(Attributes.Floats(U.Scales, scales));
                u = b.Node(U.OpType, ["x"], attrs, output: "u", name: "up");
                break;
            case UpsampleForm.Upsample9:
                u = b.Node(U.OpType, ["x", b.Initializer("scales", [scales.Length], scales)], attrs, output: "u", name: "up");
                break;
            case UpsampleForm.Resize10:
                u = b.Node(R.OpType, ["x", b.Initializer("scales", [scales.Length], scales)], attrs, output: "u", name: "up");
                break;
            default:
                attrs.Add(Attributes.String(R.CoordinateTransformationMode, c.Ctm));
                attrs.Add(Attributes.String(R.NearestMode, c.Nearest));
                string roi = c.Form == UpsampleForm.Resize11 ? b.Initializer("roi", [0], []) : "";
                if (c.Form == UpsampleForm.Resize13Sizes)
                {
                    long[] sizes = [.. xShape.Select((d, i) => (long)Math.Round(d * scales[i]))];
                    u = b.Node(R.OpType, ["x", roi, "", b.InitializerInt64("sizes", [sizes.Length], sizes)], attrs, output: "u", name: "up");
                }
                else if (c.Form == UpsampleForm.Resize18Axes)
                {
                    // Spatial axes only, the last one spelled negative: the matcher must normalize both.
                    long[] axes = [.. Enumerable.Range(2, r).Select(a => a == r + 1 ? -1L : a)];
                    attrs.Add(Attributes.Ints(R.Axes, axes));
                    float[] spatial = [.. scales.Skip(2)];
                    u = b.Node(R.OpType, ["x", roi, b.Initializer("scales", [r], spatial)], attrs, output: "u", name: "up");
                }
                else
                    u = b.Node(R.OpType, ["x", roi, b.Initializer("scales", [scales.Length], scales)], attrs, output: "u", name: "up");
                break;
        }

        var rng = new Random(c.Seed);
        long[] wShape = [cout, c.CinPerGroup, .. c.Kernel];
        b.Initializer("w", wShape, Random(rng, wShape.Aggregate(1L, (p, d) => p * d)));
        var inputs = new List<string> { u, "w" };
        if (c.Bias) inputs.Add(b.Initializer("b", [cout], Random(rng, cout)));
        var convAttrs = new List<AttributeProto> { Attributes.Ints(C.KernelShape, c.Kernel) };
        if (c.AutoPad is null) convAttrs.Add(Attributes.Ints(C.Pads, c.Pads));
        else convAttrs.Add(Attributes.String(C.AutoPad, c.AutoPad));
        if (c.Group != 1) convAttrs.Add(Attributes.Int(C.Group, c.Group));
        if (c.Dilations is not null) convAttrs.Add(Attributes.Ints(C.Dilations, c.Dilations));
        b.Node(C.OpType, inputs, convAttrs, output: "y", name: "conv");
        b.Output("y", null);
        return b.Build();
    }

    public static float[] Random(Random rng, long n) => [.. Enumerable.Range(0, (int)n).Select(_ => (float)(rng.NextDouble() * 2 - 1))];

    /// <summary>Original vs rewritten through ONNX Runtime (ORT_DISABLE_ALL), |a-b| &lt;= 1e-5 + 1e-4*|b| (float32 defaults).</summary>
    public static VerificationReport Verify(ModelProto original, ModelProto rewritten, int seed = 1) =>
        Verifier.Verify(ModelSource.FromModel(original, "original"), ModelSource.FromModel(rewritten, "rewritten"),
            new VerifyOptions { Seed = seed, Tolerance = new Tolerance(1e-5, 1e-4), Configure = OnnxDeconvSessionOptions.ConfigureFor(rewritten) });

    public static string Describe(VerificationReport report) =>
        report.Error ?? string.Join("; ", report.Outputs.Select(o => $"{o.Name}: {o.Describe()}"));

    /// <summary>Resize/Upsample → Conv pairs still in the model.</summary>
    public static int PairsLeft(ModelProto model) => ResizeConvPair.FindAll(new GraphIndex(model)).Count;

    public static readonly Target[] AllTargets = [Target.Portable, Target.Plugin, Target.ConvTranspose];
}
