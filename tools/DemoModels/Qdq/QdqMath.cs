namespace OnnxDeconv.DemoModels.Qdq;

/// <summary>Scale and zero point of one quantized tensor (per tensor: one entry; per channel: one per channel).</summary>
public sealed record QuantParams(float[] Scales, int[] ZeroPoints);

/// <summary>
/// The quantization arithmetic of ONNX Runtime's static quantizer (onnxruntime.quantization.quant_utils), so the demo
/// models hold what quantize_static would write: activations uint8 asymmetric over the calibrated range widened to
/// include 0; weights int8 symmetric in [-127, 127] per output channel; bias int32 with scale x_scale * w_scale and
/// zero point 0. Rounding is half to even (numpy's rint).
/// </summary>
public static class QdqMath
{
    /// <summary>uint8 activation parameters for the range [min, max] (compute_scale_zp with qmin 0, qmax 255).</summary>
    public static (float Scale, byte ZeroPoint) Activation(double min, double max)
    {
        min = Math.Min(min, 0);
        max = Math.Max(max, 0);
        if (max == min) return (1f, 0);
        float scale = (float)((max - min) / 255.0);
        double zp = Math.Round(0 - min / scale, MidpointRounding.ToEven);
        return (scale, (byte)Math.Clamp(zp, 0, 255));
    }

    /// <summary>
    /// int8 symmetric weights per channel along <paramref name="axis"/> of a tensor of <paramref name="dims"/>:
    /// scale = max|w| / 127 over the channel, q = rint(w / scale) clipped to [-127, 127], zero point 0.
    /// </summary>
    public static (sbyte[] Values, float[] Scales) WeightsPerChannel(float[] w, long[] dims, int axis)
    {
        long channels = dims[axis];
        long inner = 1;
        for (int d = axis + 1; d < dims.Length; d++) inner *= dims[d];
        var absMax = new double[channels];
        for (long i = 0; i < w.Length; i++)
        {
            long c = i / inner % channels;
            absMax[c] = Math.Max(absMax[c], Math.Abs(w[i]));
        }
        var scales = absMax.Select(m => m == 0 ? 1f : (float)(m * 2 / 254.0)).ToArray();
        var q = new sbyte[w.Length];
        for (long i = 0; i < w.Length; i++)
        {
            long c = i / inner % channels;
            q[i] = (sbyte)Math.Clamp(Math.Round(w[i] / scales[c], MidpointRounding.ToEven), -127, 127);
        }
        return (q, scales);
    }

    /// <summary>int32 bias: scale[c] = xScale * wScale[c] (float32, as numpy multiplies them), q = rint(b / scale).</summary>
    public static (int[] Values, float[] Scales) Bias(float[] b, float xScale, float[] wScales)
    {
        var scales = wScales.Select(s => xScale * s).ToArray();
        var q = new int[b.Length];
        for (int i = 0; i < b.Length; i++)
            q[i] = (int)Math.Clamp(Math.Round(b[i] / (double)scales[i], MidpointRounding.ToEven), int.MinValue, int.MaxValue);
        return (q, scales);
    }
}
