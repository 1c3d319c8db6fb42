using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Runtime;
using static OnnxDeconv.GraphRewrite.Tests.Lowering.PortableTestKit;

namespace OnnxDeconv.GraphRewrite.Tests.ZeroInsertion;

/// <summary>One zero-insertion + Conv configuration (per spatial axis: stride, kernel, input length, zeros before each pixel).</summary>
internal sealed record ZeroInsertionConfig
{
    public required int Seed { get; init; }
    public required bool ConcatStyle { get; init; }
    public required long N { get; init; }
    public required long Cin { get; init; }
    public required long Cout { get; init; }
    public required long Group { get; init; }
    public required long[] S { get; init; }
    public required long[] K { get; init; }
    public required long[] I { get; init; }
    /// <summary>Zeros placed before each pixel (the rest, s-1-before, after it).</summary>
    public required long[] Before { get; init; }
    /// <summary>Pad between the interleave and the Conv, [begin.., end..] on spatial axes; null = no Pad node.</summary>
    public long[]? ExtraPad { get; init; }
    public required long[] ConvPads { get; init; }
    public required bool Bias { get; init; }
    /// <summary>Concat style: zeros after each pixel as ConstantOfShape(Shape(.)) copies rather than a constant.</summary>
    public bool ZerosLike { get; init; }
    public int Rank => S.Length;
    public override string ToString() =>
        $"seed {Seed}: {(ConcatStyle ? "concat" : "reshape-pad")}{(ZerosLike ? "/zeros_like" : "")} N{N} {Cin}->{Cout} g{Group} s[{string.Join(",", S)}] k[{string.Join(",", K)}] " +
        $"I[{string.Join(",", I)}] before[{string.Join(",", Before)}] pad[{string.Join(",", ExtraPad ?? [])}] convpads[{string.Join(",", ConvPads)}] bias {Bias}";
}

internal static class ZeroInsertionKit
{
    public static ZeroInsertionConfig Random(int seed)
    {
        var rng = new Random(seed);
        while (true)
        {
            int r = rng.Next(2) + 1;
            long g = rng.Next(3) == 0 ? 2 : 1;
            var s = Enumerable.Range(0, r).Select(_ => (long)rng.Next(2, 5)).ToArray();
            var k = Enumerable.Range(0, r).Select(_ => (long)rng.Next(1, 7)).ToArray();
            var i = Enumerable.Range(0, r).Select(_ => (long)rng.Next(2, 6)).ToArray();
            var before = s.Select(v => rng.Next(4) == 0 ? rng.Next((int)v) : 0L).ToArray();
            long[]? extra = rng.Next(2) == 0 ? null : Enumerable.Range(0, 2 * r).Select(_ => (long)rng.Next(4)).ToArray();
            var convPads = Enumerable.Range(0, 2 * r).Select(_ => (long)rng.Next(4)).ToArray();
            var cfg = new ZeroInsertionConfig
            {
                Seed = seed,
                ConcatStyle = rng.Next(2) == 0,
                ZerosLike = rng.Next(2) == 0,
                N = rng.Next(2) + 1,
                Cin = g * rng.Next(1, 4),
                Cout = g * rng.Next(1, 4),
                Group = g,
                S = s, K = k, I = i, Before = before, ExtraPad = extra, ConvPads = convPads,
                Bias = rng.Next(2) == 0,
            };
            // The original Conv must have a non-empty output on every axis.
            if (Enumerable.Range(0, r).All(j => OutputLength(cfg, j) >= 1)) return cfg;
        }
    }

    public static long OutputLength(ZeroInsertionConfig c, int j)
    {
        int r = c.Rank;
        long padded = c.S[j] * c.I[j] + (c.ExtraPad is null ? 0 : c.ExtraPad[j] + c.ExtraPad[r + j]) + c.ConvPads[j] + c.ConvPads[r + j];
        return padded - c.K[j] + 1;
    }

    /// <summary>Builds x -> interleave -> [Pad] -> Conv -> y (opset 17) with seeded weights; pattern nodes are named "zi_*".</summary>
    /// <param name="dynamicBatch">declare x's batch dim symbolic (the reshape targets copy it with 0 or infer it with -1).</param>
    public static ModelProto Build(ZeroInsertionConfig c, long opset = 17, bool dynamicBatch = false)
    {
        var rng = new Random(c.Seed * 7919 + 1);
        int r = c.Rank, er = 2 + 2 * r;
        var mb = new ModelBuilder("zero_insertion", opset, irVersion: opset >= 13 ? 8 : 6);
        mb.Input("x", [dynamicBatch ? -1 : c.N, c.Cin, .. c.I]);
        var dims = new List<long> { c.N, c.Cin };
        foreach (var v in c.I) { dims.Add(v); dims.Add(1); }
        var unitAxes = Enumerable.Range(0, r).Select(j => (long)(3 + 2 * j)).ToArray();
        string cur;
        if (!c.ConcatStyle)
        {
            // Reshape targets use 0 (copy) and -1 (infer) the way exporters do.
            var t1 = dims.ToArray();
            t1[0] = 0;
            if (c.Seed % 3 == 0) { t1[0] = -1; t1[1] = 0; }
            cur = mb.Node(Ops.Reshape.OpType, ["x", mb.InitializerInt64("zi_shape1", [er], t1)], name: "zi_reshape1");
            var pads = new long[2 * er];
            for (int j = 0; j < r; j++) { pads[3 + 2 * j] = c.Before[j]; pads[er + 3 + 2 * j] = c.S[j] - 1 - c.Before[j]; }
            cur = opset < 11
                ? mb.Node(Ops.Pad.OpType, [cur], [Attributes.String(Ops.Pad.Mode, Ops.Values.Constant), Attributes.Ints(Ops.Pad.Pads, pads), Attributes.Float(Ops.Pad.Value, 0f)], name: "zi_pad")
                : mb.Node(Ops.Pad.OpType, [cur, mb.InitializerInt64("zi_pads", [2 * er], pads), mb.Initializer("zi_value", [], [0f])],
                    [Attributes.String(Ops.Pad.Mode, Ops.Values.Constant)], name: "zi_pad");
        }
        else
        {
            cur = opset < 13
                ? mb.Node(Ops.Unsqueeze.OpType, ["x"], [Attributes.Ints(Ops.Unsqueeze.Axes, unitAxes)], name: "zi_unsqueeze")
                : mb.Node(Ops.Unsqueeze.OpType, ["x", mb.InitializerInt64("zi_axes", [r], unitAxes)], name: "zi_unsqueeze");
            for (int j = r - 1; j >= 0; j--)
            {
                int axis = 3 + 2 * j;
                var inputs = new List<string>();
                if (c.Before[j] > 0) inputs.Add(Zeros(mb, dims, axis, c.Before[j], $"zi_zb{j}"));
                inputs.Add(cur);
                long after = c.S[j] - 1 - c.Before[j];
                if (c.ZerosLike && after > 0)
                {
                    string shape = mb.Node(Ops.Shape.OpType, [cur], name: $"zi_shape_of{j}");
                    for (long z = 0; z < after; z++)
                        inputs.Add(mb.Node(Ops.ConstantOfShape.OpType, [shape], name: $"zi_zeros_like{j}_{z}"));
                }
                else if (after > 0) inputs.Add(Zeros(mb, dims, axis, after, $"zi_za{j}"));
                cur = mb.Node(Ops.Concat.OpType, inputs, [Attributes.Int(Ops.Concat.Axis, axis - (c.Seed % 2 == 0 ? er : 0))], name: $"zi_concat{j}");
                dims[axis] = c.S[j];
            }
        }
        var t2 = new List<long> { 0, 0 };
        for (int j = 0; j < r; j++) t2.Add(c.I[j] * c.S[j]);
        if (c.Seed % 2 == 1) t2[^1] = -1;
        cur = mb.Node(Ops.Reshape.OpType, [cur, mb.InitializerInt64("zi_shape2", [t2.Count], t2.ToArray())], name: "zi_reshape2");
        if (c.ExtraPad is { } ep)
        {
            var pads = new long[2 * (2 + r)];
            for (int j = 0; j < r; j++) { pads[2 + j] = ep[j]; pads[2 + r + 2 + j] = ep[r + j]; }
            cur = opset < 11
                ? mb.Node(Ops.Pad.OpType, [cur], [Attributes.Ints(Ops.Pad.Pads, pads)], name: "zi_pad2")
                : mb.Node(Ops.Pad.OpType, [cur, mb.InitializerInt64("zi_pads2", [pads.Length], pads)], name: "zi_pad2");
        }
        long[] wShape = [c.Cout, c.Cin / c.Group, .. c.K];
        var inputsConv = new List<string> { cur, mb.Initializer("w", wShape, RandomFloats(rng, wShape.Aggregate(1L, (a, b) => a * b))) };
        if (c.Bias) inputsConv.Add(mb.Initializer("b", [c.Cout], RandomFloats(rng, c.Cout)));
        var attrs = new List<AttributeProto> { Attributes.Ints(Ops.Conv.Pads, c.ConvPads), Attributes.Ints(Ops.Conv.KernelShape, c.K) };
        if (c.Group != 1) attrs.Add(Attributes.Int(Ops.Conv.Group, c.Group));
        mb.Node(Ops.Conv.OpType, inputsConv, attrs, output: "y", name: "conv");
        mb.Output("y", null);
        return mb.Build();
    }

    private static string Zeros(ModelBuilder mb, List<long> dims, int axis, long count, string name)
    {
        var d = dims.ToArray();
        d[axis] = count;
        return mb.Initializer(name, d, new float[d.Aggregate(1L, (a, b) => a * b)]);
    }

    /// <summary>Seeded input for x; a symbolic dim takes <paramref name="dynamicDim"/>.</summary>
    public static TensorValue Input(ModelProto model, int seed, long dynamicDim = 2)
    {
        var x = model.Graph.Input[0];
        long[] dims = x.Type.TensorType.Shape.Dim.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue : dynamicDim).ToArray();
        return TensorValue.Float(x.Name, dims, RandomFloats(new Random(seed), dims.Aggregate(1L, (a, b) => a * b)));
    }

    /// <summary>Runs both through ONNX Runtime (ORT_DISABLE_ALL, plugin registered when used); |a-b| &lt;= 1e-5 + 1e-4*|b|.</summary>
    public static void AssertSameOutputs(ModelProto original, ModelProto rewritten, IReadOnlyList<TensorValue> inputs, string what)
    {
        var expected = OrtRunner.RunOnce(original, inputs);
        var actual = OrtRunner.RunOnce(rewritten, inputs, new OrtRunOptions { Configure = OnnxDeconvSessionOptions.ConfigureFor(rewritten) });
        Assert.Equal(expected.Count, actual.Count);
        foreach (var e in expected)
            AssertClose(e, actual.Single(a => a.Name == e.Name), $"{what}, output '{e.Name}'");
    }

    /// <summary>Optimizes, asserts nothing changed: the same bytes and a report that says why.</summary>
    public static NodeReport AssertUntouched(ModelProto model, Target target, string pattern)
    {
        var before = ModelIO.Serialize(model);
        var result = Optimizer.Run(model, new OptimizeOptions { Target = target });
        Assert.Equal(before, ModelIO.Serialize(result.Model));
        Assert.False(result.Changed);
        var report = Assert.Single(result.Nodes, n => n.Pattern == pattern);
        Assert.False(report.Rewritten);
        Assert.False(string.IsNullOrEmpty(report.Reason));
        return report;
    }
}
