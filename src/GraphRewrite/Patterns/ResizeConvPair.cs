using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using R = OnnxDeconv.GraphRewrite.Ops.Resize;
using U = OnnxDeconv.GraphRewrite.Ops.Upsample;
using C = OnnxDeconv.GraphRewrite.Ops.Conv;

namespace OnnxDeconv.GraphRewrite.Patterns;

/// <summary>
/// A Resize or Upsample node whose output feeds a Conv (as its data input X): the "upsample then conv" form of a
/// transposed convolution (DESIGN.md section 1). Detection only: attributes as resolved with the ONNX defaults of the
/// node's opset, constant scales where they can be read, and whether the resize is exact integer nearest repetition.
/// With the opset-18 axes attribute the scales (and sizes) are expanded to every axis when the rank is known.
/// Rewriting is <see cref="Rewrites.ResizeConvToConvTranspose"/>'s job.
/// </summary>
public sealed record ResizeConvPair
{
    public required NodeProto Resize { get; init; }
    public required NodeProto Conv { get; init; }
    /// <summary>"nearest", "linear", "cubic" (Upsample's "bilinear" is reported as written).</summary>
    public required string Mode { get; init; }
    /// <summary>coordinate_transformation_mode in effect ("asymmetric" for Upsample and opset-10 Resize).</summary>
    public required string CoordinateTransformationMode { get; init; }
    /// <summary>nearest_mode in effect ("floor" for Upsample and opset-10 Resize, whose nearest is floor(j/s)).</summary>
    public required string NearestMode { get; init; }
    /// <summary>Scales per axis when constant (from scales, or from sizes and a known input shape); null otherwise.</summary>
    public required float[]? Scales { get; init; }
    /// <summary>Constant sizes input when given instead of scales.</summary>
    public required long[]? Sizes { get; init; }
    /// <summary>Other nodes that also read the resized tensor (the upsampled tensor cannot disappear if there are any).</summary>
    public required int OtherConsumers { get; init; }
    public required long[]? ConvKernel { get; init; }
    public required long[]? ConvStrides { get; init; }
    public required long[]? ConvPads { get; init; }
    public required long[]? ConvDilations { get; init; }
    public required long ConvGroup { get; init; }
    public required string? ConvAutoPad { get; init; }
    /// <summary>True when u[j] = x[floor(j/s)] for integer s on every spatial axis and 1 on batch/channel.</summary>
    public required bool IsIntegerNearestRepetition { get; init; }
    /// <summary>Why it is or is not exact repetition, for reports.</summary>
    public required string RepetitionNote { get; init; }

    public static bool IsResize(NodeProto node) =>
        (node.OpType == R.OpType || node.OpType == U.OpType) && Ops.IsDefaultDomain(node.Domain);

    /// <summary>
    /// Every Resize/Upsample → Conv pair in the graph. <paramref name="shapeOf"/> (optional) gives the concrete shape of a
    /// value so constant sizes can be turned into scales. Throws <see cref="AttributeException"/> on a malformed attribute.
    /// </summary>
    public static IReadOnlyList<ResizeConvPair> FindAll(GraphIndex index, Func<string, long[]?>? shapeOf = null)
    {
        var pairs = new List<ResizeConvPair>();
        foreach (var node in index.Graph.Node)
        {
            if (!IsResize(node) || node.Output.Count == 0) continue;
            var consumers = index.Consumers(node.Output[0]);
            foreach (var conv in consumers)
            {
                if (conv.OpType != C.OpType || !Ops.IsDefaultDomain(conv.Domain) || conv.Input.Count == 0 || conv.Input[0] != node.Output[0])
                    continue;
                pairs.Add(Describe(index, node, conv, consumers.Count - 1 + (index.IsGraphOutput(node.Output[0]) ? 1 : 0), shapeOf));
            }
        }
        return pairs;
    }

    private static ResizeConvPair Describe(GraphIndex index, NodeProto resize, NodeProto conv, int others, Func<string, long[]?>? shapeOf)
    {
        long opset = index.Opset(Ops.DefaultDomain) ?? 1;
        bool isUpsample = resize.OpType == U.OpType;
        string mode = Attributes.GetString(resize, R.Mode) ?? "nearest";
        // Upsample and opset-10 Resize have no coordinate_transformation_mode: their nearest is x[floor(j/s)].
        bool legacy = isUpsample || opset < 11;
        string ctm = legacy ? "asymmetric" : Attributes.GetString(resize, R.CoordinateTransformationMode) ?? "half_pixel";
        string nearest = legacy ? "floor" : Attributes.GetString(resize, R.NearestMode) ?? "round_prefer_floor";

        float[]? scales = null;
        long[]? sizes = null;
        bool expandedAxes = false;
        if (isUpsample)
            scales = Attributes.GetFloats(resize, U.Scales) ?? ConstFloats(index, resize, 1);
        else if (opset < 11)
            scales = ConstFloats(index, resize, 1);
        else
        {
            scales = ConstFloats(index, resize, 2);
            if (scales is { Length: 0 }) scales = null;
            sizes = ConstInts(index, resize, 3);
            var axes = Attributes.GetInts(resize, R.Axes);
            var inShape = shapeOf?.Invoke(resize.Input[0]);
            if (inShape is not null && inShape.Any(d => d <= 0)) inShape = null;
            if (axes is not null)
            {
                // Opset 18+: scales/sizes name only the listed axes; the others keep scale 1. Expanded when the rank is known.
                long rank = inShape?.Length ?? RankOfConvWeight(index, conv);
                var full = rank > 0 ? ExpandAxes(axes, rank) : null;
                if (full is null) { scales = null; sizes = null; }
                else
                {
                    if (scales is not null)
                        scales = scales.Length == axes.Length ? Scatter(full, scales.Select(v => (double)v), 1.0).Select(v => (float)v).ToArray() : null;
                    if (sizes is not null)
                        sizes = sizes.Length == axes.Length && inShape is not null
                            ? Scatter(full, sizes.Select(v => (double)v), 0).Select((v, i) => v == 0 ? inShape[i] : (long)v).ToArray()
                            : null;
                    expandedAxes = true;
                }
            }
            if (scales is null && sizes is not null && inShape is not null && inShape.Length == sizes.Length)
                scales = sizes.Select((s, i) => (float)((double)s / inShape[i])).ToArray();
        }

        var (exact, note) = Repetition(mode, ctm, nearest, scales, expandedAxes ? null : Attributes.GetInts(resize, R.Axes),
            Attributes.GetString(resize, R.KeepAspectRatioPolicy), sizes);
        // Antialias only changes linear/cubic downscaling; refused anyway so an unusual model is never guessed at.
        if (exact && (Attributes.GetInt(resize, R.AntiAlias) ?? 0) != 0)
            (exact, note) = (false, "antialias=1 (not analysed)");
        return new ResizeConvPair
        {
            Resize = resize,
            Conv = conv,
            Mode = mode,
            CoordinateTransformationMode = ctm,
            NearestMode = nearest,
            Scales = scales,
            Sizes = sizes,
            OtherConsumers = others,
            ConvKernel = Attributes.GetInts(conv, C.KernelShape) ?? (conv.Input.Count > 1 ? index.Shape(conv.Input[1])?.Skip(2).ToArray() : null),
            ConvStrides = Attributes.GetInts(conv, C.Strides),
            ConvPads = Attributes.GetInts(conv, C.Pads),
            ConvDilations = Attributes.GetInts(conv, C.Dilations),
            ConvGroup = Attributes.GetInt(conv, C.Group) ?? 1,
            ConvAutoPad = Attributes.GetString(conv, C.AutoPad),
            IsIntegerNearestRepetition = exact,
            RepetitionNote = note,
        };
    }

    /// <summary>
    /// The rules of DESIGN.md section 1 (checked against ONNX Runtime): nearest with integer scales is x[floor(j/s)] for
    /// asymmetric+floor, for half_pixel/pytorch_half_pixel with round_prefer_floor/round_prefer_ceil, and for
    /// asymmetric+round_prefer_floor only when every scale is 2 (or 1). Conservative: combinations that repeat only for
    /// some lengths or scales (align_corners+round_prefer_floor happens to at s=2) answer false.
    /// </summary>
    public static (bool Exact, string Note) Repetition(string mode, string ctm, string nearest, float[]? scales,
        long[]? axes = null, string? keepAspectRatioPolicy = null, long[]? sizes = null)
    {
        if (mode != "nearest") return (false, $"mode '{mode}' interpolates; not a repetition");
        if (axes is not null) return (false, "axes attribute given: scales apply to a subset of axes (not analysed)");
        if (sizes is not null && keepAspectRatioPolicy is not null and not "stretch")
            return (false, $"keep_aspect_ratio_policy '{keepAspectRatioPolicy}' with sizes: effective scale not fixed");
        if (scales is null) return (false, "scales are not constant (or not known); cannot tell");
        if (scales.Length < 3) return (false, $"{scales.Length} scales; expected N, C and spatial axes");
        if (scales[0] != 1f || scales[1] != 1f) return (false, "scales on batch/channel axes are not 1");
        var spatial = scales.Skip(2).ToArray();
        if (spatial.Any(s => s < 1f || s != MathF.Floor(s)))
            return (false, $"spatial scales [{string.Join(", ", spatial)}] are not all integers >= 1");
        bool roundMode = nearest is "round_prefer_floor" or "round_prefer_ceil";
        bool ok = (ctm, nearest) switch
        {
            ("asymmetric", "floor") => true,
            ("half_pixel" or "pytorch_half_pixel", _) when roundMode => true,
            ("asymmetric", "round_prefer_floor") => spatial.All(s => s is 1f or 2f),
            _ => false,
        };
        return ok
            ? (true, $"integer nearest repetition x[floor(j/s)] with s = [{string.Join(", ", spatial)}] ({ctm} + {nearest})")
            : (false, $"{ctm} + {nearest} at scales [{string.Join(", ", spatial)}] is not x[floor(j/s)]");
    }

    private static long RankOfConvWeight(GraphIndex index, NodeProto conv) =>
        conv.Input.Count > 1 ? (index.Constant(conv.Input[1])?.Dims.Count ?? index.Shape(conv.Input[1])?.Length ?? 0) : 0;

    /// <summary>The axes attribute normalized to [0, rank) (null if out of range or repeated).</summary>
    private static int[]? ExpandAxes(long[] axes, long rank)
    {
        var norm = axes.Select(a => a < 0 ? a + rank : a).ToArray();
        if (norm.Any(a => a < 0 || a >= rank) || norm.Distinct().Count() != norm.Length) return null;
        var result = new int[rank];
        Array.Fill(result, -1);
        for (int i = 0; i < norm.Length; i++) result[norm[i]] = i;
        return result;
    }

    private static double[] Scatter(int[] slotOf, IEnumerable<double> values, double fill)
    {
        var v = values.ToArray();
        return slotOf.Select(slot => slot >= 0 ? v[slot] : fill).ToArray();
    }

    private static long[]? ConstInts(GraphIndex index, NodeProto node, int input)
    {
        if (node.Input.Count <= input || node.Input[input].Length == 0) return null;
        var t = index.Constant(node.Input[input]);
        if (t is null) return null;
        try { return Tensors.ToInt64s(t); }
        catch (InvalidDataException) { return null; }
    }

    private static float[]? ConstFloats(GraphIndex index, NodeProto node, int input)
    {
        if (node.Input.Count <= input || node.Input[input].Length == 0) return null;
        var t = index.Constant(node.Input[input]);
        if (t is null) return null;
        if (t.DataType != (int)TensorProto.Types.DataType.Float) return null;
        try { return Tensors.ToFloats(t); }
        catch (InvalidDataException) { return null; }
    }
}
