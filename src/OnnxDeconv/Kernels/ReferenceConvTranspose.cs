using OnnxDeconv.Geometry;

namespace OnnxDeconv.Kernels;

/// <summary>
/// The scalar oracle: ConvTranspose straight from the definition
/// <c>y[n, g*Cog+oc, o] = b[..] + sum_{ic, i, k : i*s + k*d == o + pb} x[n, g*Cig+ic, i] * w[g*Cig+ic, oc, k]</c>,
/// N-d, groups, dilation, any pads. Accumulates in double so it is a fair judge for every float kernel.
/// Slow on purpose: no tricks that a faster kernel could share a bug with.
/// </summary>
public static class ReferenceConvTranspose
{
    public static float[] Compute(ConvTransposeGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias)
    {
        long outCount = g.OutputShape.Aggregate(1L, (p, v) => checked(p * v));
        var y = new float[outCount];
        Compute(g, x, w, bias, y);
        return y;
    }

    public static void Compute(ConvTransposeGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> y)
    {
        int r = g.Rank;
        long inSpatial = g.Axes.Aggregate(1L, (p, a) => p * a.Input);
        long outSpatial = g.Axes.Aggregate(1L, (p, a) => p * a.Output);
        long kSpatial = g.Axes.Aggregate(1L, (p, a) => p * a.Kernel);
        long cig = g.InChannelsPerGroup, cog = g.OutChannelsPerGroup;
        Check(x.Length == g.Batch * g.InChannels * inSpatial, "X size does not match the geometry");
        Check(w.Length == g.InChannels * cog * kSpatial, "W size does not match the geometry");
        Check(bias.Length == 0 || bias.Length == g.OutChannels, "B must be empty or have Cout values");
        Check(y.Length == g.Batch * g.OutChannels * outSpatial, "Y size does not match the geometry");

        var acc = new double[outSpatial];
        var iIdx = new long[r];
        var kIdx = new long[r];
        for (long n = 0; n < g.Batch; n++)
        for (long grp = 0; grp < g.Group; grp++)
        for (long oc = 0; oc < cog; oc++)
        {
            long co = grp * cog + oc;
            Array.Fill(acc, bias.Length == 0 ? 0.0 : bias[(int)co]);
            for (long ic = 0; ic < cig; ic++)
            {
                long ci = grp * cig + ic;
                long xBase = (n * g.InChannels + ci) * inSpatial;
                long wBase = (ci * cog + oc) * kSpatial;
                for (long ii = 0; ii < inSpatial; ii++)
                {
                    Unflatten(ii, g.Axes, useInput: true, iIdx);
                    double xv = x[(int)(xBase + ii)];
                    for (long kk = 0; kk < kSpatial; kk++)
                    {
                        Unflatten(kk, g.Axes, useInput: false, kIdx);
                        long flat = 0;
                        bool inside = true;
                        for (int a = 0; a < r; a++)
                        {
                            var ax = g.Axes[a];
                            long o = iIdx[a] * ax.Stride + kIdx[a] * ax.Dilation - ax.PadBegin;
                            if (o < 0 || o >= ax.Output) { inside = false; break; }
                            flat = flat * ax.Output + o;
                        }
                        if (inside) acc[flat] += xv * w[(int)(wBase + kk)];
                    }
                }
            }
            long yBase = (n * g.OutChannels + co) * outSpatial;
            for (long o = 0; o < outSpatial; o++) y[(int)(yBase + o)] = (float)acc[o];
        }
    }

    private static void Unflatten(long flat, AxisGeometry[] axes, bool useInput, long[] idx)
    {
        for (int a = axes.Length - 1; a >= 0; a--)
        {
            long size = useInput ? axes[a].Input : axes[a].Kernel;
            idx[a] = flat % size;
            flat /= size;
        }
    }

    private static void Check(bool ok, string message)
    {
        if (!ok) throw new ArgumentException(message);
    }
}
