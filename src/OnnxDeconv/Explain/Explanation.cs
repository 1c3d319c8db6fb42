using OnnxDeconv.Geometry;

namespace OnnxDeconv.Explain;

/// <summary>One Conv input length that the inverted Conv maps onto this ConvTranspose's input, and the output_padding that gives it back.</summary>
public sealed record ConvPreimage(long ConvInput, long OutputPadding, bool Selected);

/// <summary>
/// The Conv whose shape map this ConvTranspose axis inverts: Conv(k, s, pads, d) maps every length in
/// <see cref="Preimages"/> to the ConvTranspose's input length; output_padding picks one of them.
/// </summary>
public sealed record InverseConv(long Kernel, long Stride, long PadBegin, long PadEnd, long Dilation, IReadOnlyList<ConvPreimage> Preimages)
{
    /// <summary>Conv output length for an input of <paramref name="length"/>: floor((L + pb + pe - d*(k-1) - 1) / s) + 1.</summary>
    public long OutputFor(long length) => Explainer.ConvOutput(length, Kernel, Stride, PadBegin, PadEnd, Dilation);
}

/// <summary>
/// Reads the ConvTranspose input length as if it were a Conv input: Conv(k, s, p, d) shrinks it to
/// <see cref="ConvOutput"/>, and ConvTranspose with the same arguments grows that back to <see cref="TransposeOutput"/>
/// (output_padding 0) — <see cref="OutputPaddingNeeded"/> closes the gap.
/// </summary>
public sealed record RoundTrip(long ConvInput, long ConvOutput, long TransposeOutput, long OutputPaddingNeeded);

/// <summary>
/// One spatial axis explained: the filled-in formula, the zero-insertion view, the inverse Conv and the round trip.
/// Everything is derived from <see cref="AxisGeometry"/>; renderers only format these fields.
/// </summary>
public sealed record AxisExplanation
{
    public required int Axis { get; init; }
    public required AxisGeometry Geometry { get; init; }
    /// <summary>The general formula with symbols.</summary>
    public required string Formula { get; init; }
    /// <summary>The formula with this axis's numbers substituted, ending in "= O".</summary>
    public required string FormulaFilled { get; init; }
    /// <summary>s*(I-1) + d*(k-1) + 1 + op: the output before pads remove anything.</summary>
    public required long FullLength { get; init; }
    /// <summary>s*(I-1) + 1: the input after inserting s-1 zeros between neighbours.</summary>
    public required long ZeroInsertedLength { get; init; }
    /// <summary>d*(k-1) - pb (negative: that many cells are cropped at the begin).</summary>
    public required long ImplicitPadBegin { get; init; }
    /// <summary>d*(k-1) - pe + op (negative: that many cells are cropped at the end).</summary>
    public required long ImplicitPadEnd { get; init; }
    /// <summary>Null when no Conv inverts this axis (negative pads from output_shape).</summary>
    public required InverseConv? InverseConv { get; init; }
    /// <summary>Null when the input length is too short to be a Conv input with these arguments.</summary>
    public required RoundTrip? RoundTrip { get; init; }
    /// <summary>Lines of the ASCII picture (drawn for a short input when the real one is long).</summary>
    public required IReadOnlyList<string> Picture { get; init; }
    /// <summary>Input length the picture is drawn for.</summary>
    public required long PictureInput { get; init; }
    /// <summary>Plain-language reason the output has its size (padding removes border rows of the full output).</summary>
    public required string Why { get; init; }
    /// <summary>How the axis is computed: polyphase phases, GEMM + col2im, zero insertion (MACs and buffers).</summary>
    public required AxisCompute Compute { get; init; }
    /// <summary>
    /// The floor that makes Conv map several lengths to one, written out for the lengths this axis involves, e.g.
    /// "floor((28 + 0 - 5) / 2) + 1 = 12 = floor((27 + 0 - 5) / 2) + 1"; empty when nothing collapses.
    /// </summary>
    public required IReadOnlyList<string> Collapses { get; init; }
}

/// <summary>A whole ConvTranspose explained, axis by axis, plus the ONNX attributes it corresponds to.</summary>
public sealed record Explanation
{
    public required ConvTransposeGeometry Geometry { get; init; }
    public required IReadOnlyList<AxisExplanation> Axes { get; init; }
    /// <summary>ONNX pads attribute: [begin per axis..., end per axis...].</summary>
    public required long[] OnnxPads { get; init; }
    public required long[] OnnxOutputPadding { get; init; }
    public required long[] OnnxStrides { get; init; }
    public required long[] OnnxDilations { get; init; }
    public required long[] OnnxKernelShape { get; init; }
    /// <summary>True when every pad is symmetric, so PyTorch's padding=p describes it.</summary>
    public required bool PyTorchExpressible { get; init; }
    /// <summary>False when output_padding &gt;= stride on some axis: the spec allows it (dilation larger), ONNX Runtime refuses.</summary>
    public required bool OrtAccepts { get; init; }
    public required string OrtNote { get; init; }
    /// <summary>The three ways to compute the whole layer: multiply-adds and extra memory of each.</summary>
    public required IReadOnlyList<LayerCost> Costs { get; init; }
}
