using OnnxDeconv.GraphRewrite.Pipeline;

namespace OnnxDeconv.GraphRewrite.Rewrites;

/// <summary>
/// Whether to fuse a Conv into a ConvTranspose when the Resize in front of it must stay for other readers.
/// The kept Resize costs the same either way, so only the Conv's replacement is compared:
/// <code>
/// original: Conv reads U (s^r·|X| floats), writes Y            cost = MACs_conv + B·4·(|U| + |Y|)
/// fused:    ConvTranspose reads X, writes Y (+ the lowering's   cost = MACs_ct   + B·4·(|X| + |Y| + extra)
///           intermediate: portable writes and re-reads the phase tensor (2|Y|), ORT's ConvTranspose its
///           col2im buffer (2·Cout·L^r·spatial(X)), the plugin nothing)
/// </code>
/// B = <see cref="MacsPerByte"/> converts bytes moved into MAC-equivalents. With K = 1 (or dilation = scale) the MACs
/// are equal and the bytes decide; for K > 1 the (K+s-1)²/s² vs K² MAC drop normally wins.
/// </summary>
public sealed record SharedResizeCost(long MacsOriginal, long BytesOriginal, long MacsFused, long BytesFused, string Lowering)
{
    /// <summary>
    /// Machine balance assumed: ~8 MACs per byte of memory traffic (a 2-core AVX2 FMA peak of ~100 GFMA/s over
    /// ~12 GB/s). Only the order of magnitude matters: the decision flips only where MACs are within a few percent.
    /// </summary>
    public const double MacsPerByte = 8;

    public double Original => MacsOriginal + MacsPerByte * BytesOriginal;
    public double Fused => MacsFused + MacsPerByte * BytesFused;
    public bool FuseIsFaster => Fused < Original;

    /// <summary>One line for the report: which way it went and why.</summary>
    public string Describe() =>
        $"cost model ({Lowering}): fused {Million(Fused)} vs original {Million(Original)} MAC-equivalents "
        + $"(MACs {MacsOriginal} -> {MacsFused}, bytes {BytesOriginal} -> {BytesFused}, {MacsPerByte} MACs/byte)";

    private static string Million(double v) => (v / 1e6).ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) + "M";

    /// <summary>The cost of both forms for <paramref name="match"/> lowered for <paramref name="target"/>; null when shapes are unknown.</summary>
    public static SharedResizeCost? Of(ResizeConvMatch match, Target target)
    {
        if (match.InputShape is not { } x || match.OutputShape is not { } y || match.MacsBefore <= 0 || match.MacsAfter <= 0) return null;
        long scale = match.Strides.Aggregate(1L, (p, v) => p * v);
        long xElems = x.Aggregate(1L, (p, v) => checked(p * v));
        long yElems = y.Aggregate(1L, (p, v) => checked(p * v));
        long uElems = checked(xElems * scale);
        long extra = target switch
        {
            Pipeline.Target.Plugin => 0,
            Pipeline.Target.ConvTranspose => checked(2 * x[0] * y[1] * match.KernelShape.Aggregate(1L, (p, v) => p * v) * x.Skip(2).Aggregate(1L, (p, v) => p * v)),
            _ => 2 * yElems, // portable (and auto, which may pick it): the phase tensor before the interleave
        };
        return new SharedResizeCost(match.MacsBefore, checked(4 * (uElems + yElems)), match.MacsAfter,
            checked(4 * (xElems + yElems + extra)), target.ToString().ToLowerInvariant());
    }
}
