using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Rewrites;
using OnnxDeconv.GraphRewrite.Runtime;

namespace OnnxDeconv.Tests.Plugin;

/// <summary>
/// Seeded random ConvTranspose configurations (ranks 1-3, groups incl. depthwise, dilation, asymmetric pads,
/// output_padding, auto_pad, output_shape, bias, each fusable activation) rewritten to the plugin op must match
/// ONNX Runtime running the original graph (ORT_DISABLE_ALL) within |a-b| &lt;= 1e-5 + 1e-4*|b|. For fused
/// activations the reference is ORT's activation applied to ORT's ConvTranspose output (the original graph).
/// </summary>
public sealed class PluginRandomTests
{
    // Issue 5 asks for >= 500 random configurations through the plugin rewrite; the whole sweep takes a few seconds.
    public const int Configurations = 500;

    public static TheoryData<int> Seeds()
    {
        var data = new TheoryData<int>();
        for (int s = 0; s < Configurations; s++) data.Add(s);
        return data;
    }

    internal sealed record Config(long[] X, long[] W, ConvTransposeAttributes Attrs, bool Bias, string? Activation, float Alpha, float Min, float Max);

    internal static Config Generate(int seed)
    {
        var rng = new Random(1000 + seed);
        int r = 1 + seed % 3;
        long group = rng.Next(4) switch { 0 => 2, 1 => 3, _ => 1 };
        bool depthwise = rng.Next(6) == 0;
        long cig = 1 + rng.Next(3), cog = 1 + rng.Next(3);
        if (depthwise) { group = 2 + rng.Next(3); cig = 1; cog = 1; }
        long cin = cig * group;
        var k = new long[r]; var s = new long[r]; var d = new long[r]; var op = new long[r]; var pads = new long[2 * r]; var input = new long[r];
        long maxInput = r == 3 ? 4 : r == 2 ? 6 : 9;
        for (int i = 0; i < r; i++)
        {
            k[i] = 1 + rng.Next(r == 3 ? 3 : 4);
            s[i] = 1 + rng.Next(3);
            d[i] = rng.Next(4) == 0 ? 2 : 1;
            op[i] = rng.Next((int)s[i]);          // ORT refuses output_padding >= stride
            input[i] = 1 + rng.Next((int)maxInput);
            long full = s[i] * (input[i] - 1) + op[i] + d[i] * (k[i] - 1) + 1;
            long budget = Math.Max(0, full - 1);
            pads[i] = rng.Next((int)Math.Min(budget, d[i] * (k[i] - 1)) + 1);
            pads[i + r] = rng.Next((int)Math.Min(budget - pads[i], d[i] * (k[i] - 1)) + 1);
        }
        var attrs = new ConvTransposeAttributes { Strides = s, Dilations = d, OutputPadding = op, Group = group, KernelShape = rng.Next(2) == 0 ? k : null };
        switch (rng.Next(6))
        {
            case 0: // auto_pad SAME_* (only when the total padding is not negative: ill-defined otherwise)
                bool ok = Enumerable.Range(0, r).All(i => op[i] + d[i] * (k[i] - 1) + 1 - s[i] >= 0);
                attrs = ok ? attrs with { AutoPad = rng.Next(2) == 0 ? AutoPad.SameUpper : AutoPad.SameLower } : attrs with { Pads = pads };
                break;
            case 1: // output_shape, sometimes larger than the full output (negative end pad: output extended)
                var os = new long[r];
                for (int i = 0; i < r; i++)
                {
                    long full = s[i] * (input[i] - 1) + op[i] + d[i] * (k[i] - 1) + 1;
                    // ORT accepts an extension only while output_shape stays consistent with the input size
                    // (output_padding + extension < stride).
                    os[i] = Math.Max(1, full - rng.Next(3) + (op[i] + 1 < s[i] && rng.Next(3) == 0 ? 1 : 0));
                }
                attrs = attrs with { OutputShape = os };
                break;
            case 2: attrs = attrs with { AutoPad = AutoPad.Valid }; break;
            default: attrs = attrs with { Pads = pads }; break;
        }
        string? act = (seed % 7) switch { 0 => "Relu", 1 => "LeakyRelu", 2 => "Clip", 3 => "Sigmoid", 4 => "Tanh", _ => null };
        return new Config([1 + rng.Next(2), cin, .. input], [cin, cog, .. k], attrs, rng.Next(3) != 0, act,
            0.05f + (float)rng.NextDouble() * 0.3f, -0.5f + (float)rng.NextDouble() * 0.3f, 0.3f + (float)rng.NextDouble() * 0.5f);
    }

    internal static (ModelProto Model, TensorValue X) Build(Config c, int seed)
    {
        var rng = new Random(seed);
        var mb = new ModelBuilder($"ct_{seed}");
        mb.Input("X", c.X);
        var g = ConvTransposeGeometry.Resolve(c.Attrs, c.X, c.W);
        var w = mb.Initializer("W", c.W, PluginTestKit.RandomFloats(rng, c.W.Aggregate(1L, (p, v) => p * v)));
        var inputs = new List<string> { "X", w };
        if (c.Bias) inputs.Add(mb.Initializer("B", [g.OutChannels], PluginTestKit.RandomFloats(rng, g.OutChannels)));
        string y = mb.Node(Ops.ConvTranspose.OpType, inputs, ConvTransposeNode.ToAttributes(c.Attrs), output: c.Activation is null ? "Y" : "ct");
        if (c.Activation is { } act)
        {
            var attrs = new List<AttributeProto>();
            var actInputs = new List<string> { y };
            if (act == "LeakyRelu") attrs.Add(Attributes.Float(Ops.LeakyRelu.Alpha, c.Alpha));
            if (act == "Clip")
            {
                actInputs.Add(mb.Initializer("clip_min", [], [c.Min]));
                actInputs.Add(mb.Initializer("clip_max", [], [c.Max]));
            }
            mb.Node(act, actInputs, attrs, output: "Y");
        }
        mb.Output("Y", g.OutputShape);
        var xv = TensorValue.Float("X", c.X, PluginTestKit.RandomFloats(rng, c.X.Aggregate(1L, (p, v) => p * v)));
        return (mb.Build(), xv);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void RandomConvTranspose_RewrittenToPlugin_MatchesOrt(int seed)
    {
        var c = Generate(seed);
        var (model, x) = Build(c, seed);
        var original = PluginTestKit.RunSingle(model, x);

        // The same entry point as `onnx-deconv test --rewrite --target plugin` (Optimizer.Run with Target.Plugin).
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Plugin });
        var report = Assert.Single(result.Nodes);
        Assert.True(report.Rewritten, $"seed {seed}: {report.Reason}");
        Assert.Equal(0, PluginTestKit.Count(result.Model, Ops.ConvTranspose.OpType));
        if (c.Activation is not null)
        {
            Assert.Equal(0, PluginTestKit.Count(result.Model, c.Activation)); // fused into the plugin's epilogue
            Assert.Single(result.Model.Graph.Node);
        }
        var rewritten = PluginTestKit.RunSingle(result.Model, x, PluginTestKit.WithPlugin(threads: 1 + seed % 2));
        PluginTestKit.AssertClose(original, rewritten, $"seed {seed} ({c})");
    }

    [Fact]
    public void RandomConfigurations_CoverEveryFeature()
    {
        // The sweep above is only as good as its coverage: check the generator hits every feature.
        var cs = Enumerable.Range(0, Configurations).Select(Generate).ToList();
        Assert.True(Configurations >= 500);
        foreach (int r in new[] { 1, 2, 3 }) Assert.Contains(cs, c => c.X.Length == r + 2);
        Assert.Contains(cs, c => c.Attrs.Group > 1 && c.W[1] == 1 && c.W[0] == c.Attrs.Group); // depthwise
        Assert.Contains(cs, c => c.Attrs.Dilations!.Any(d => d > 1));
        Assert.Contains(cs, c => c.Attrs.Pads is { } p && Enumerable.Range(0, p.Length / 2).Any(i => p[i] != p[i + p.Length / 2]));
        Assert.Contains(cs, c => c.Attrs.OutputPadding!.Any(o => o > 0));
        Assert.Contains(cs, c => c.Attrs.AutoPad is AutoPad.SameUpper);
        Assert.Contains(cs, c => c.Attrs.AutoPad is AutoPad.SameLower);
        Assert.Contains(cs, c => c.Attrs.OutputShape is not null);
        Assert.Contains(cs, c => c.Bias);
        Assert.Contains(cs, c => !c.Bias);
        foreach (var a in new[] { "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh" }) Assert.Contains(cs, c => c.Activation == a);
        // output_shape larger than the full output: a negative end pad the kernel must handle
        Assert.Contains(cs, c => c.Attrs.OutputShape is not null
            && ConvTransposeGeometry.Resolve(c.Attrs, c.X, c.W).Axes.Any(a => a.PadEnd < 0));
    }
}
