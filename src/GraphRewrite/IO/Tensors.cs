using System.Buffers;
using System.Runtime.InteropServices;
using Google.Protobuf;
using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.GraphRewrite.IO;

/// <summary>
/// Conversions between <see cref="TensorProto"/> and plain arrays (inline data only). For tensors that may be external use
/// <see cref="ModelIO.TensorFloats"/> / <see cref="ModelIO.TensorBytes"/> (or <see cref="ExternalData.ReadBytes"/> with the model's folder).
/// </summary>
public static class Tensors
{
    public static TensorProto FromFloats(string name, long[] dims, ReadOnlySpan<float> data)
    {
        CheckCount(name, dims, data.Length);
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        t.Dims.AddRange(dims);
        t.RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(data));
        return t;
    }

    /// <summary>
    /// As <see cref="FromFloats"/>, but the tensor's raw_data is <paramref name="data"/> itself, not a copy: for large
    /// freshly computed weights, so a rewrite holds them once. The caller must not modify <paramref name="data"/> afterwards.
    /// </summary>
    public static TensorProto FromFloatsOwned(string name, long[] dims, float[] data)
    {
        CheckCount(name, dims, data.Length);
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        t.Dims.AddRange(dims);
        t.RawData = UnsafeByteOperations.UnsafeWrap(new FloatBytes(data).Memory);
        return t;
    }

    /// <summary>The bytes of a float[] as Memory&lt;byte&gt; (little-endian hosts only, as everywhere here).</summary>
    private sealed class FloatBytes(float[] values) : MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => MemoryMarshal.AsBytes(values.AsSpan());

        public override unsafe MemoryHandle Pin(int elementIndex = 0)
        {
            var handle = GCHandle.Alloc(values, GCHandleType.Pinned);
            return new MemoryHandle((byte*)handle.AddrOfPinnedObject() + elementIndex, handle, this);
        }

        public override void Unpin() { }

        protected override void Dispose(bool disposing) { }
    }

    public static TensorProto FromInt64s(string name, long[] dims, ReadOnlySpan<long> data)
    {
        CheckCount(name, dims, data.Length);
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        t.Dims.AddRange(dims);
        t.RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(data));
        return t;
    }

    public static long ElementCount(IEnumerable<long> dims)
    {
        long n = 1;
        foreach (var d in dims)
        {
            if (d < 0) throw new InvalidDataException($"negative dimension {d}");
            n = checked(n * d);
        }
        return n;
    }

    /// <summary>
    /// Float data of an inline FLOAT tensor (raw_data or float_data); FLOAT16 and BFLOAT16 tensors are widened to
    /// float32 exactly (see <see cref="HalfFloats"/>), so weight readers handle half-precision models unchanged.
    /// </summary>
    public static float[] ToFloats(TensorProto t)
    {
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
            throw new InvalidDataException($"tensor '{t.Name}': data is external; read it with ModelIO.TensorFloats(model, tensor) or ExternalData.ReadBytes");
        if (HalfFloats.IsHalf((TensorProto.Types.DataType)t.DataType))
        {
            try { return HalfFloats.ToFloats(t); }
            catch (ModelFormatException e) { throw new InvalidDataException(e.Message, e); }
        }
        if (t.DataType != (int)TensorProto.Types.DataType.Float)
            throw new InvalidDataException($"tensor '{t.Name}': expected FLOAT, FLOAT16 or BFLOAT16, got {(TensorProto.Types.DataType)t.DataType}");
        long n = ElementCount(t.Dims);
        if (t.HasRawData)
        {
            if (t.RawData.Length != n * sizeof(float))
                throw new InvalidDataException($"tensor '{t.Name}': raw_data has {t.RawData.Length} bytes, shape needs {n * sizeof(float)}");
            return MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray();
        }
        if (t.FloatData.Count != n)
            throw new InvalidDataException($"tensor '{t.Name}': float_data has {t.FloatData.Count} values, shape needs {n}");
        return t.FloatData.ToArray();
    }

    /// <summary>Integer data of an inline INT64 or INT32 tensor.</summary>
    public static long[] ToInt64s(TensorProto t)
    {
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
            throw new InvalidDataException($"tensor '{t.Name}': data is external; read it with ModelIO.TensorFloats(model, tensor) or ExternalData.ReadBytes");
        long n = ElementCount(t.Dims);
        switch ((TensorProto.Types.DataType)t.DataType)
        {
            case TensorProto.Types.DataType.Int64:
                if (t.HasRawData)
                {
                    if (t.RawData.Length != n * sizeof(long))
                        throw new InvalidDataException($"tensor '{t.Name}': raw_data has {t.RawData.Length} bytes, shape needs {n * sizeof(long)}");
                    return MemoryMarshal.Cast<byte, long>(t.RawData.Span).ToArray();
                }
                if (t.Int64Data.Count != n) throw new InvalidDataException($"tensor '{t.Name}': int64_data has {t.Int64Data.Count} values, shape needs {n}");
                return t.Int64Data.ToArray();
            case TensorProto.Types.DataType.Int32:
                if (t.HasRawData)
                {
                    if (t.RawData.Length != n * sizeof(int))
                        throw new InvalidDataException($"tensor '{t.Name}': raw_data has {t.RawData.Length} bytes, shape needs {n * sizeof(int)}");
                    return MemoryMarshal.Cast<byte, int>(t.RawData.Span).ToArray().Select(v => (long)v).ToArray();
                }
                if (t.Int32Data.Count != n) throw new InvalidDataException($"tensor '{t.Name}': int32_data has {t.Int32Data.Count} values, shape needs {n}");
                return t.Int32Data.Select(v => (long)v).ToArray();
            default:
                throw new InvalidDataException($"tensor '{t.Name}': expected INT64 or INT32, got {(TensorProto.Types.DataType)t.DataType}");
        }
    }

    private static void CheckCount(string name, long[] dims, int count)
    {
        if (ElementCount(dims) != count)
            throw new ArgumentException($"tensor '{name}': {count} values for shape [{string.Join(",", dims)}]");
    }
}
