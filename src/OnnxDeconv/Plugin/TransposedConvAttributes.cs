using OnnxDeconv.Geometry;
using OnnxDeconv.Kernels;
using S = OnnxDeconv.Plugin.TransposedConvSchema;

namespace OnnxDeconv.Plugin;

/// <summary>
/// The attributes of one TransposedConv node, validated once when the kernel is created; <see cref="Geometry"/>
/// then checks each call's input shape against them. Pure managed code: the ORT glue only reads values.
/// </summary>
public sealed record TransposedConvAttributes
{
    public required long[] KernelShape { get; init; }
    public required long[] Strides { get; init; }
    public required long[] Dilations { get; init; }
    public required long[] Pads { get; init; }
    public required long[] OutputPadding { get; init; }
    public required long Group { get; init; }
    public required long InChannels { get; init; }
    public required long OutChannels { get; init; }
    public Epilogue Epilogue { get; init; } = Epilogue.None;
    public required long PackingFormat { get; init; }
    public long[]? OutputShape { get; init; }

    public int Rank => KernelShape.Length;

    /// <summary>Reads attributes through <paramref name="ints"/>/<paramref name="int64"/>/<paramref name="f"/>/<paramref name="str"/> (null = absent) and validates them.</summary>
    public static TransposedConvAttributes Read(Func<string, long[]?> ints, Func<string, long?> int64, Func<string, float?> f, Func<string, string?> str)
    {
        long[] Need(string name) => ints(name) ?? throw new TransposedConvException(name, $"required attribute '{name}' is missing");
        long NeedInt(string name) => int64(name) ?? throw new TransposedConvException(name, $"required attribute '{name}' is missing");
        var kind = S.ParseActivation(str(S.Activation));
        var attrs = new TransposedConvAttributes
        {
            KernelShape = Need(S.KernelShape),
            Strides = Need(S.Strides),
            Dilations = Need(S.Dilations),
            Pads = Need(S.Pads),
            OutputPadding = Need(S.OutputPadding),
            Group = NeedInt(S.Group),
            InChannels = NeedInt(S.InChannels),
            OutChannels = NeedInt(S.OutChannels),
            PackingFormat = NeedInt(S.PackingFormatAttribute),
            OutputShape = ints(S.OutputShape),
            Epilogue = new Epilogue(kind, f(S.Alpha) ?? 0.01f, f(S.ClipMin) ?? float.NegativeInfinity, f(S.ClipMax) ?? float.PositiveInfinity),
        };
        attrs.Validate();
        return attrs;
    }

    /// <summary>Checks everything that does not depend on the input shape.</summary>
    public void Validate()
    {
        int r = Rank;
        if (r < 1) throw new TransposedConvException(S.KernelShape, "kernel_shape must have at least one value (one per spatial axis)");
        CheckLength(S.Strides, Strides, r);
        CheckLength(S.Dilations, Dilations, r);
        CheckLength(S.Pads, Pads, 2 * r);
        CheckLength(S.OutputPadding, OutputPadding, r);
        if (OutputShape is not null) CheckLength(S.OutputShape, OutputShape, r);
        for (int i = 0; i < r; i++)
        {
            if (KernelShape[i] <= 0) throw new TransposedConvException(S.KernelShape, $"kernel_shape[{i}] is {KernelShape[i]}; must be positive");
            if (Strides[i] <= 0) throw new TransposedConvException(S.Strides, $"strides[{i}] is {Strides[i]}; must be positive");
            if (Dilations[i] <= 0) throw new TransposedConvException(S.Dilations, $"dilations[{i}] is {Dilations[i]}; must be positive");
            if (OutputPadding[i] < 0) throw new TransposedConvException(S.OutputPadding, $"output_padding[{i}] is {OutputPadding[i]}; must be >= 0");
            // Only the end pad may be negative (output extended); a negative begin pad is never produced by the rewriter.
            if (Pads[i] < 0) throw new TransposedConvException(S.Pads, $"pads[{i}] (begin) is {Pads[i]}; must be >= 0");
        }
        if (Group <= 0) throw new TransposedConvException(S.Group, $"group is {Group}; must be positive");
        if (InChannels <= 0 || InChannels % Group != 0)
            throw new TransposedConvException(S.InChannels, $"in_channels is {InChannels}; must be positive and divisible by group {Group}");
        if (OutChannels <= 0 || OutChannels % Group != 0)
            throw new TransposedConvException(S.OutChannels, $"out_channels is {OutChannels}; must be positive and divisible by group {Group}");
        if (PackingFormat != S.PackingFormat)
            throw new TransposedConvException(S.PackingFormatAttribute,
                $"packing_format is {PackingFormat} but this build of the kernel packs weights as format {S.PackingFormat}; re-run the rewriter (onnx-deconv optimize --target plugin) with this version");
        if (Epilogue.Kind == Activation.Clip && !(Epilogue.Min <= Epilogue.Max))
            throw new TransposedConvException(S.ClipMin, $"clip_min {Epilogue.Min} must be <= clip_max {Epilogue.Max}");
    }

    /// <summary>Output spatial size per axis for input spatial sizes (unknown inputs, -1, stay -1).</summary>
    public long OutputLength(int axis, long input)
    {
        if (input < 0) return -1;
        return Strides[axis] * (input - 1) + OutputPadding[axis] + Dilations[axis] * (KernelShape[axis] - 1) + 1
            - Pads[axis] - Pads[axis + Rank];
    }

    /// <summary>The geometry of one call, from X's shape; throws naming the input/attribute when they contradict.</summary>
    public ConvTransposeGeometry Geometry(IReadOnlyList<long> xShape)
    {
        int r = Rank;
        if (xShape.Count != r + 2)
            throw new TransposedConvException("X", $"X has rank {xShape.Count} ([{string.Join(",", xShape)}]); kernel_shape has {r} axes, so X must have rank {r + 2} (N, C, {r} spatial)");
        if (xShape[0] < 0) throw new TransposedConvException("X", $"X batch dimension is {xShape[0]}");
        if (xShape[1] != InChannels)
            throw new TransposedConvException("X", $"X has {xShape[1]} channels (dim 1) but in_channels is {InChannels}");
        var axes = new AxisGeometry[r];
        for (int i = 0; i < r; i++)
        {
            long input = xShape[i + 2];
            if (input <= 0) throw new TransposedConvException("X", $"X spatial dimension {i + 2} is {input}; must be positive");
            long o = OutputLength(i, input);
            if (o <= 0)
                throw new TransposedConvException(S.Pads, $"axis {i}: input length {input} with pads {Pads[i]}+{Pads[i + r]} gives output length {o}; must be positive");
            if (OutputShape is not null && OutputShape[i] != o)
                throw new TransposedConvException("X",
                    $"X spatial shape [{string.Join(",", xShape.Skip(2))}] gives output [{string.Join(",", Enumerable.Range(0, r).Select(a => OutputLength(a, xShape[a + 2])))}] but output_shape is [{string.Join(",", OutputShape)}]: the model was rewritten for another input size");
            axes[i] = new AxisGeometry(input, KernelShape[i], Strides[i], Dilations[i], Pads[i], Pads[i + r], OutputPadding[i], o);
        }
        return new ConvTransposeGeometry { Batch = xShape[0], InChannels = InChannels, OutChannels = OutChannels, Group = Group, Axes = axes };
    }

    private static void CheckLength(string name, long[] v, int expected)
    {
        if (v.Length != expected)
            throw new TransposedConvException(name, $"{name} has {v.Length} values; expected {expected} (kernel_shape has {expected / (name == S.Pads ? 2 : 1)} axes)");
    }
}
