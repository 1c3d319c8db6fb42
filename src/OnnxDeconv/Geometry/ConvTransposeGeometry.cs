namespace OnnxDeconv.Geometry;

public enum AutoPad { NotSet, SameUpper, SameLower, Valid }

/// <summary>
/// The attributes of an ONNX ConvTranspose node (opsets 1, 11, 22) as written in the model; null means "absent".
/// Attribute names match the ONNX spec so messages can name them.
/// </summary>
public sealed record ConvTransposeAttributes
{
    public long[]? KernelShape { get; init; }
    public long[]? Strides { get; init; }
    public long[]? Dilations { get; init; }
    /// <summary>ONNX layout: [x1_begin, x2_begin, ..., x1_end, x2_end, ...].</summary>
    public long[]? Pads { get; init; }
    public long[]? OutputPadding { get; init; }
    public long[]? OutputShape { get; init; }
    public AutoPad AutoPad { get; init; } = AutoPad.NotSet;
    public long Group { get; init; } = 1;

    public static AutoPad ParseAutoPad(string? value) => value switch
    {
        null or "" or "NOTSET" => AutoPad.NotSet,
        "SAME_UPPER" => AutoPad.SameUpper,
        "SAME_LOWER" => AutoPad.SameLower,
        "VALID" => AutoPad.Valid,
        _ => throw new GeometryException("auto_pad", $"auto_pad must be NOTSET, SAME_UPPER, SAME_LOWER or VALID, got '{value}'"),
    };

    public static string AutoPadName(AutoPad p) => p switch
    {
        AutoPad.SameUpper => "SAME_UPPER",
        AutoPad.SameLower => "SAME_LOWER",
        AutoPad.Valid => "VALID",
        _ => "NOTSET",
    };
}

/// <summary>An invalid ConvTranspose configuration; <see cref="Attribute"/> names the offending attribute (or input).</summary>
public sealed class GeometryException(string attribute, string message) : InvalidInputException(message)
{
    public string Attribute { get; } = attribute;
}

/// <summary>
/// One spatial axis, fully resolved. The output is
/// <c>O = s*(I-1) + op + d*(K-1) + 1 - pb - pe</c> and <c>y[o] = sum_{i*s + k*d == o + pb} x[i]*w[k]</c>.
/// <see cref="PadBegin"/> is never negative; <see cref="PadEnd"/> is negative only when output_shape asks for more than
/// the full output (the output then extends at the end, where only bias lands).
/// </summary>
public sealed record AxisGeometry(long Input, long Kernel, long Stride, long Dilation, long PadBegin, long PadEnd, long OutputPadding, long Output)
{
    /// <summary>Length before cropping: every position some (i, k) pair touches, plus output_padding.</summary>
    public long FullLength => Stride * (Input - 1) + OutputPadding + Dilation * (Kernel - 1) + 1;

    /// <summary>Length of the input after inserting stride-1 zeros between elements.</summary>
    public long ZeroInsertedLength => Stride * (Input - 1) + 1;

    /// <summary>Effective (dilated) kernel extent.</summary>
    public long DilatedKernel => Dilation * (Kernel - 1) + 1;

    /// <summary>Implicit zero padding at the begin in the zero-insertion view (negative = crop).</summary>
    public long ImplicitPadBegin => Dilation * (Kernel - 1) - PadBegin;

    /// <summary>Implicit zero padding at the end in the zero-insertion view (negative = crop).</summary>
    public long ImplicitPadEnd => Dilation * (Kernel - 1) - PadEnd + OutputPadding;
}

/// <summary>
/// A fully resolved ConvTranspose: every attribute applied (kernel_shape inferred from W, auto_pad and output_shape
/// turned into pads), shapes checked. Used by the kernels, the rewriter and <c>explain</c>.
/// </summary>
public sealed record ConvTransposeGeometry
{
    public required long Batch { get; init; }
    public required long InChannels { get; init; }
    public required long OutChannels { get; init; }
    public required long Group { get; init; }
    public required AxisGeometry[] Axes { get; init; }

    /// <summary>True when output_padding &gt;= stride on some axis: the spec allows it (dilation is larger), ONNX Runtime refuses the node.</summary>
    public bool OrtRejectsOutputPadding => Axes.Any(a => a.OutputPadding >= a.Stride);

    public int Rank => Axes.Length;
    public long InChannelsPerGroup => InChannels / Group;
    public long OutChannelsPerGroup => OutChannels / Group;

    public long[] InputShape => [Batch, InChannels, .. Axes.Select(a => a.Input)];
    public long[] WeightShape => [InChannels, OutChannelsPerGroup, .. Axes.Select(a => a.Kernel)];
    public long[] OutputShape => [Batch, OutChannels, .. Axes.Select(a => a.Output)];

    /// <summary>ONNX pads layout of the resolved padding: [begins..., ends...].</summary>
    public long[] Pads => [.. Axes.Select(a => a.PadBegin), .. Axes.Select(a => a.PadEnd)];

    /// <summary>Useful multiply-adds: (Cin/group) * Cout * prod(K) * prod(I) per image.</summary>
    public long UsefulMacs => checked(Batch * InChannelsPerGroup * OutChannels
        * Axes.Aggregate(1L, (p, a) => p * a.Kernel) * Axes.Aggregate(1L, (p, a) => p * a.Input));

    /// <summary>
    /// Resolves <paramref name="attrs"/> against the input shape [N, C, D1..Dr] and weight shape [C, M/group, k1..kr].
    /// Throws <see cref="GeometryException"/> naming the attribute on anything the spec does not allow or ONNX Runtime
    /// refuses, with one exception: stride &lt;= output_padding &lt; dilation is accepted (the spec allows it) and reported
    /// by <see cref="OrtRejectsOutputPadding"/>. Where the spec leaves room (auto_pad=SAME_* with negative total padding,
    /// output_shape longer than the full output) the result is what ONNX Runtime computes; tests check it on random configs.
    /// </summary>
    public static ConvTransposeGeometry Resolve(ConvTransposeAttributes attrs, IReadOnlyList<long> inputShape, IReadOnlyList<long> weightShape)
    {
        try
        {
            var g = ResolveUnchecked(attrs, inputShape, weightShape);
            // Sizes every consumer computes from a geometry must fit in 64 bits; hostile shapes fail here, not later.
            _ = g.UsefulMacs;
            _ = g.OutputShape.Aggregate(1L, (p, d) => checked(p * d));
            return g;
        }
        catch (OverflowException)
        {
            throw new GeometryException("shape",
                $"sizes overflow 64-bit integers (X [{string.Join(",", inputShape)}], W [{string.Join(",", weightShape)}], strides [{string.Join(",", attrs.Strides ?? [])}], dilations [{string.Join(",", attrs.Dilations ?? [])}])");
        }
    }

    private static ConvTransposeGeometry ResolveUnchecked(ConvTransposeAttributes attrs, IReadOnlyList<long> inputShape, IReadOnlyList<long> weightShape)
    {
        if (inputShape.Count < 3)
            throw new GeometryException("X", $"input X must have rank >= 3 (N, C, spatial...), has rank {inputShape.Count}");
        if (weightShape.Count != inputShape.Count)
            throw new GeometryException("W", $"weight W has rank {weightShape.Count}, input X has rank {inputShape.Count}; they must match");
        int r = inputShape.Count - 2;
        for (int i = 0; i < inputShape.Count; i++)
            if (inputShape[i] <= 0 && !(i == 0 && inputShape[i] == 0))
                throw new GeometryException("X", $"input X dimension {i} is {inputShape[i]}; must be positive");
        for (int i = 0; i < weightShape.Count; i++)
            if (weightShape[i] <= 0)
                throw new GeometryException("W", $"weight W dimension {i} is {weightShape[i]}; must be positive");

        long group = attrs.Group;
        if (group <= 0) throw new GeometryException("group", $"group must be positive, got {group}");
        long cin = inputShape[1];
        if (weightShape[0] != cin)
            throw new GeometryException("W", $"weight W has {weightShape[0]} input channels (dim 0), input X has {cin}");
        if (cin % group != 0)
            throw new GeometryException("group", $"input channels {cin} are not divisible by group {group}");
        long cout = checked(weightShape[1] * group);

        long[] kernel = attrs.KernelShape ?? weightShape.Skip(2).ToArray();
        CheckLength("kernel_shape", kernel, r);
        for (int i = 0; i < r; i++)
        {
            if (kernel[i] <= 0) throw new GeometryException("kernel_shape", $"kernel_shape[{i}] is {kernel[i]}; must be positive");
            if (kernel[i] != weightShape[i + 2])
                throw new GeometryException("kernel_shape", $"kernel_shape[{i}] is {kernel[i]} but W has {weightShape[i + 2]} on that axis");
        }
        long[] strides = attrs.Strides ?? Enumerable.Repeat(1L, r).ToArray();
        CheckLength("strides", strides, r);
        CheckPositive("strides", strides);
        long[] dilations = attrs.Dilations ?? Enumerable.Repeat(1L, r).ToArray();
        CheckLength("dilations", dilations, r);
        CheckPositive("dilations", dilations);
        long[] outputPadding = attrs.OutputPadding ?? new long[r];
        CheckLength("output_padding", outputPadding, r);
        for (int i = 0; i < r; i++)
        {
            if (outputPadding[i] < 0)
                throw new GeometryException("output_padding", $"output_padding[{i}] is {outputPadding[i]}; must be >= 0");
            long limit = Math.Max(strides[i], dilations[i]);
            if (outputPadding[i] >= limit)
                throw new GeometryException("output_padding",
                    $"output_padding[{i}] is {outputPadding[i]}; must be < max(stride, dilation) = {limit}");
        }

        if (attrs.Pads is { } padsAttr)
        {
            // The spec forbids pads together with auto_pad, and ONNX shape inference (so ONNX Runtime) refuses the
            // node even when the pads are all zero.
            if (attrs.AutoPad != AutoPad.NotSet)
                throw new GeometryException("pads",
                    $"pads cannot be used together with auto_pad={ConvTransposeAttributes.AutoPadName(attrs.AutoPad)}");
            CheckLength("pads", padsAttr, 2 * r);
            for (int i = 0; i < 2 * r; i++)
                if (padsAttr[i] < 0) throw new GeometryException("pads", $"pads[{i}] is {padsAttr[i]}; must be >= 0");
        }

        var pb = new long[r];
        var pe = new long[r];
        var outSize = new long[r];
        long[] full = new long[r];
        for (int i = 0; i < r; i++)
            full[i] = checked(strides[i] * (inputShape[i + 2] - 1) + outputPadding[i] + dilations[i] * (kernel[i] - 1) + 1);

        if (attrs.OutputShape is { } os)
        {
            // ONNX shape inference (which ONNX Runtime runs on every node) requires one value per spatial axis; the
            // [N, C, spatial...] form some exporters write is refused there, so it is refused here too.
            CheckLength("output_shape", os, r);
            for (int i = 0; i < r; i++)
            {
                if (os[i] <= 0) throw new GeometryException("output_shape", $"output_shape[{i}] is {os[i]}; must be positive");
                long total = full[i] - os[i];
                if (total < 0)
                {
                    // output_shape longer than the full output. ONNX Runtime clamps the total padding to 0 and extends
                    // the output at the end (only bias lands there), and accepts it only while the extension plus
                    // output_padding stays below the stride: its output_padding rule applied to the longer output.
                    // The ONNX reference splits a negative total over both sides instead (the same for -1 without
                    // SAME_UPPER, the only such conformance case); we follow ONNX Runtime and refuse what it refuses.
                    if (outputPadding[i] - total >= strides[i])
                        throw new GeometryException("output_shape",
                            $"output_shape[{i}] is {os[i]}, {-total} longer than the full output {full[i]} on that axis; with output_padding {outputPadding[i]} that must stay below the stride {strides[i]} (ONNX Runtime refuses it)");
                    pb[i] = 0;
                    pe[i] = total;
                }
                else
                {
                    SplitTotal(total, attrs.AutoPad == AutoPad.SameUpper, out pb[i], out pe[i]);
                }
                outSize[i] = os[i];
            }
        }
        else if (attrs.AutoPad is AutoPad.SameUpper or AutoPad.SameLower)
        {
            for (int i = 0; i < r; i++)
            {
                long target = checked(inputShape[i + 2] * strides[i]);
                // The spec asks for output = input*stride, which needs negative padding when the dilated kernel plus
                // output_padding is shorter than the stride (total < 0). ONNX Runtime clamps the total to 0 and
                // returns the full, uncropped output instead; we follow ONNX Runtime so shapes and values agree.
                long total = Math.Max(0, full[i] - target);
                SplitTotal(total, attrs.AutoPad == AutoPad.SameUpper, out pb[i], out pe[i]);
                outSize[i] = full[i] - total;
            }
        }
        else
        {
            // NOTSET uses the pads attribute (absent = zeros); VALID means no padding (pads cannot be present then).
            if (attrs.Pads is { } pads)
                for (int i = 0; i < r; i++) { pb[i] = pads[i]; pe[i] = pads[i + r]; }
            for (int i = 0; i < r; i++)
            {
                outSize[i] = full[i] - pb[i] - pe[i];
                if (outSize[i] <= 0)
                    throw new GeometryException("pads",
                        $"axis {i}: pads {pb[i]}+{pe[i]} crop the whole output (full length {full[i]}); output would be {outSize[i]}");
            }
        }

        var axes = new AxisGeometry[r];
        for (int i = 0; i < r; i++)
            axes[i] = new AxisGeometry(inputShape[i + 2], kernel[i], strides[i], dilations[i], pb[i], pe[i], outputPadding[i], outSize[i]);
        return new ConvTransposeGeometry
        {
            Batch = inputShape[0],
            InChannels = cin,
            OutChannels = cout,
            Group = group,
            Axes = axes,
        };
    }

    /// <summary>
    /// The spec's split of a non-negative total padding, which ONNX Runtime follows: SAME_UPPER puts the odd pixel at
    /// the end (begin = total/2), everything else (SAME_LOWER, NOTSET or VALID with output_shape) at the begin.
    /// </summary>
    private static void SplitTotal(long total, bool sameUpper, out long begin, out long end)
    {
        begin = sameUpper ? total / 2 : total - total / 2;
        end = total - begin;
    }

    private static void CheckLength(string name, long[] v, int expected)
    {
        if (v.Length != expected)
            throw new GeometryException(name, $"{name} has {v.Length} values; expected {expected}");
    }

    private static void CheckPositive(string name, long[] v)
    {
        for (int i = 0; i < v.Length; i++)
            if (v[i] <= 0) throw new GeometryException(name, $"{name}[{i}] is {v[i]}; must be positive");
    }
}
