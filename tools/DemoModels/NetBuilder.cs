using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.DemoModels;

/// <summary>
/// Builds a model the way torch.onnx.export (opset 17) lays one out: initializers named after module parameters
/// ("main.0.weight"), nodes named "/main/main.0/ConvTranspose", outputs "..._output_0", no value_info, static input
/// shapes. Weights are He-style uniform so activations keep their scale and outputs are not degenerate.
/// </summary>
internal sealed class NetBuilder
{
    public const long Opset = 17;
    public const long IrVersion = 8;

    private readonly ModelBuilder _b;
    private readonly SplitMix64 _rng;

    public NetBuilder(string graphName, ulong seed)
    {
        _b = new ModelBuilder(graphName, Opset, IrVersion);
        _rng = new SplitMix64(seed);
    }

    public string Input(string name, params long[] dims) => _b.Input(name, dims);

    public ModelProto Build(string output, params long[] dims)
    {
        _b.Output(output, dims);
        return _b.Build();
    }

    /// <param name="pads">ONNX layout [begins..., ends...]; null = no pads attribute.</param>
    /// <param name="spatialIn">Input spatial size, only to estimate how many taps reach each output (for the weight scale).</param>
    public string ConvTranspose(string x, string module, long cin, long cout, long[] kernel, long[] strides, long[]? pads,
        long[] spatialIn, long[]? outputPadding = null, long group = 1, bool bias = true, string? output = null)
    {
        // Taps that land on one output: about K/s per axis, but never more than the input length (a 1x1 latent sees one).
        double fanIn = cin / group;
        for (int a = 0; a < kernel.Length; a++)
            fanIn *= Math.Max(1.0, Math.Min((double)kernel[a] / strides[a], spatialIn[a]));
        long[] wShape = [cin, cout / group, .. kernel];
        var inputs = new List<string> { Weight($"{module}.weight", wShape, HeBound(fanIn)) };
        if (bias) inputs.Add(Weight($"{module}.bias", [cout], (float)(1.0 / Math.Sqrt(fanIn))));
        var attrs = new List<AttributeProto>
        {
            Attributes.Ints(Ops.ConvTranspose.Dilations, kernel.Select(_ => 1L)),
            Attributes.Int(Ops.ConvTranspose.Group, group),
            Attributes.Ints(Ops.ConvTranspose.KernelShape, kernel),
        };
        if (outputPadding is not null) attrs.Add(Attributes.Ints(Ops.ConvTranspose.OutputPadding, outputPadding));
        attrs.Add(Attributes.Ints(Ops.ConvTranspose.Pads, pads ?? new long[2 * kernel.Length]));
        attrs.Add(Attributes.Ints(Ops.ConvTranspose.Strides, strides));
        return Node(Ops.ConvTranspose.OpType, module, [x, .. inputs], attrs, output);
    }

    public string Conv(string x, string module, long cin, long cout, long[] kernel, long[] pads, long group = 1,
        bool bias = true, string? output = null)
    {
        double fanIn = cin / group * kernel.Aggregate(1L, (p, k) => p * k);
        long[] wShape = [cout, cin / group, .. kernel];
        var inputs = new List<string> { Weight($"{module}.weight", wShape, HeBound(fanIn)) };
        if (bias) inputs.Add(Weight($"{module}.bias", [cout], (float)(1.0 / Math.Sqrt(fanIn))));
        var attrs = new List<AttributeProto>
        {
            Attributes.Ints(Ops.Conv.Dilations, kernel.Select(_ => 1L)),
            Attributes.Int(Ops.Conv.Group, group),
            Attributes.Ints(Ops.Conv.KernelShape, kernel),
            Attributes.Ints(Ops.Conv.Pads, pads),
            Attributes.Ints(Ops.Conv.Strides, kernel.Select(_ => 1L)),
        };
        return Node(Ops.Conv.OpType, module, [x, .. inputs], attrs, output);
    }

    /// <summary>Inference-mode BatchNorm with plausible trained statistics (scale near 1, small shift, variance near 1).</summary>
    public string BatchNorm(string x, string module, long channels)
    {
        string scale = _b.Initializer($"{module}.weight", [channels], _rng.Range(channels, 0.8f, 1.2f));
        string shift = _b.Initializer($"{module}.bias", [channels], _rng.Range(channels, -0.1f, 0.1f));
        string mean = _b.Initializer($"{module}.running_mean", [channels], _rng.Range(channels, -0.1f, 0.1f));
        string var = _b.Initializer($"{module}.running_var", [channels], _rng.Range(channels, 0.8f, 1.2f));
        return Node(Ops.BatchNormalization.OpType, module, [x, scale, shift, mean, var],
            [Attributes.Float(Ops.BatchNormalization.Epsilon, 1e-5f), Attributes.Float(Ops.BatchNormalization.Momentum, 0.9f)]);
    }

    public string Relu(string x, string module, string? output = null) => Node(Ops.Relu.OpType, module, [x], null, output);

    public string Tanh(string x, string module, string? output = null) => Node(Ops.Tanh.OpType, module, [x], null, output);

    public string LeakyRelu(string x, string module, float alpha, string? output = null) =>
        Node(Ops.LeakyRelu.OpType, module, [x], [Attributes.Float(Ops.LeakyRelu.Alpha, alpha)], output);

    /// <summary>F.interpolate(scale_factor=s, mode="nearest") as torch.onnx.export writes it: Resize(X, roi="", scales).</summary>
    public string ResizeNearest(string x, string module, float[] scales)
    {
        string s = _b.Initializer($"{PathOf(module)}/{Ops.Resize.OpType}_scales", [scales.Length], scales);
        return Node(Ops.Resize.OpType, module, [x, "", s],
        [
            Attributes.String(Ops.Resize.CoordinateTransformationMode, Ops.Values.Asymmetric),
            Attributes.Float(Ops.Resize.CubicCoeffA, -0.75f),
            Attributes.String(Ops.Resize.Mode, Ops.Values.Nearest),
            Attributes.String(Ops.Resize.NearestMode, Ops.Values.Floor),
        ]);
    }

    public string Concat(IEnumerable<string> xs, string module, long axis) =>
        Node(Ops.Concat.OpType, module, xs, [Attributes.Int(Ops.Concat.Axis, axis)]);

    public string Reshape(string x, string module, long[] shape, int index)
    {
        string s = _b.InitializerInt64($"{PathOf(module)}/{Ops.Reshape.OpType}_{index}_shape", [shape.Length], shape);
        return Node(Ops.Reshape.OpType, module, [x, s], null, suffix: $"_{index}");
    }

    /// <summary>Zero padding as F.pad exports it: Pad(X, pads, constant_value) with mode "constant".</summary>
    public string Pad(string x, string module, long[] pads, int index)
    {
        string p = _b.InitializerInt64($"{PathOf(module)}/{Ops.Pad.OpType}_{index}_pads", [pads.Length], pads);
        string v = _b.Initializer($"{PathOf(module)}/{Ops.Pad.OpType}_{index}_value", [], [0f]);
        return Node(Ops.Pad.OpType, module, [x, p, v], [Attributes.String(Ops.Pad.Mode, Ops.Values.Constant)], suffix: $"_{index}");
    }

    private string Node(string op, string module, IEnumerable<string> inputs, IEnumerable<AttributeProto>? attrs,
        string? output = null, string suffix = "")
    {
        string name = $"{PathOf(module)}/{op}{suffix}";
        return _b.Node(op, inputs, attrs, output ?? $"{name}_output_0", name);
    }

    private string Weight(string name, long[] dims, float bound) =>
        _b.Initializer(name, dims, _rng.Uniform(dims.Aggregate(1L, (p, d) => p * d), bound));

    /// <summary>He (Kaiming) uniform bound: keeps the second moment of ReLU activations from layer to layer.</summary>
    private static float HeBound(double fanIn) => (float)Math.Sqrt(6.0 / fanIn);

    /// <summary>"main.0" -> "/main/main.0", the scope path torch.onnx.export puts in node names.</summary>
    private static string PathOf(string module)
    {
        var parts = module.Split('.');
        var path = new System.Text.StringBuilder();
        for (int i = 0; i < parts.Length; i++)
            path.Append('/').Append(string.Join('.', parts.Take(i + 1)));
        return path.ToString();
    }
}
