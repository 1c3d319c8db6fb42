using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.GraphRewrite.IO;

/// <summary>
/// Computes values [<paramref name="first"/>, first + dst.Length) of a float tensor being built (row-major flat
/// index). Every value of <paramref name="dst"/> must be written (zeros included): the buffer may hold an earlier slice.
/// </summary>
public delegate void FloatSliceFill(long first, Span<float> dst);

/// <summary>
/// Where a rewrite puts a large weight it computes: written slice by slice, so the whole tensor is never held in
/// memory, and returned as an external reference. <see cref="SpillFile.For"/> makes one for a model being rewritten.
/// </summary>
public interface IWeightSink
{
    /// <summary>Tensors of at least this many bytes are streamed; smaller ones are built in memory.</summary>
    long Threshold { get; }

    /// <summary>
    /// Writes the FLOAT tensor <paramref name="name"/> of <paramref name="dims"/> by calling <paramref name="fill"/>
    /// on consecutive slices whose lengths are multiples of <paramref name="granule"/>; returns the external tensor.
    /// </summary>
    TensorProto WriteFloats(string name, long[] dims, long granule, FloatSliceFill fill);
}

/// <summary>Builds computed float tensors in memory or through an <see cref="IWeightSink"/>, with the same fill either way.</summary>
public static class ComputedTensors
{
    /// <summary>
    /// The tensor <paramref name="name"/> whose values <paramref name="fill"/> computes: streamed to
    /// <paramref name="sink"/> when it is at least the sink's threshold, else filled into one array the tensor takes
    /// as is. Both paths run the same fill, so they produce the same bytes.
    /// </summary>
    /// <param name="granule">Slices start and end at multiples of this many values (e.g. one output channel's row).</param>
    public static TensorProto Floats(string name, long[] dims, long granule, FloatSliceFill fill, IWeightSink? sink)
    {
        long n = Tensors.ElementCount(dims);
        if (granule < 1 || (n > 0 && n % granule != 0))
            throw new ArgumentException($"tensor '{name}': granule {granule} does not divide its {n} values");
        if (sink is not null && n * sizeof(float) >= sink.Threshold) return sink.WriteFloats(name, dims, granule, fill);
        var data = new float[n];
        fill(0, data);
        return Tensors.FromFloatsOwned(name, dims, data);
    }
}
