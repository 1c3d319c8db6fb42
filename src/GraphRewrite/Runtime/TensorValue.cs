using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Runtime;

/// <summary>
/// A named dense tensor held in managed memory: element type, shape and a typed array (float[], long[], int[], double[],
/// bool[], byte[], sbyte[]; FLOAT16 as ONNX Runtime's Float16[], BFLOAT16 as its BFloat16[], both bit-exact).
/// </summary>
public sealed record TensorValue(string Name, DataType ElementType, long[] Dims, Array Data)
{
    public static TensorValue Float(string name, long[] dims, float[] data) => new(name, DataType.Float, dims, data);

    public float[] AsFloats() => Data as float[] ?? throw new InvalidOperationException($"tensor '{Name}' is {ElementType}, not FLOAT");

    /// <summary>A FLOAT16 or BFLOAT16 tensor holding <paramref name="values"/> rounded to that type (nearest, ties to even).</summary>
    public static TensorValue Rounded(string name, DataType type, long[] dims, ReadOnlySpan<float> values)
    {
        var bits = HalfFloats.Narrow(type, values);
        return new TensorValue(name, type, dims, HalfArray(type, bits));
    }

    /// <summary>The values of a FLOAT, FLOAT16 or BFLOAT16 tensor as float32 (half types widened exactly).</summary>
    public float[] WidenedFloats() => Data switch
    {
        float[] f => f,
        Float16[] h => Array.ConvertAll(h, v => HalfFloats.Float16ToFloat(v.value)),
        BFloat16[] b => Array.ConvertAll(b, v => HalfFloats.BFloat16ToFloat(v.value)),
        _ => throw new InvalidOperationException($"tensor '{Name}' is {ElementType}, not a float type"),
    };

    private static Array HalfArray(DataType type, ushort[] bits) => type switch
    {
        DataType.Float16 => Array.ConvertAll(bits, v => new Float16(v)),
        DataType.Bfloat16 => Array.ConvertAll(bits, v => new BFloat16(v)),
        _ => throw new ArgumentException($"{type} is not a 16-bit float type"),
    };

    public long ElementCount => Tensors.ElementCount(Dims);

    /// <summary>Reads an inline TensorProto (as in test_data_set_N/*.pb) into a managed array.</summary>
    public static TensorValue FromProto(TensorProto t, string? nameOverride = null)
    {
        var name = nameOverride ?? t.Name;
        var dims = t.Dims.ToArray();
        var type = (DataType)t.DataType;
        long n = Tensors.ElementCount(dims);
        Array data = type switch
        {
            DataType.Float => Tensors.ToFloats(t),
            DataType.Int64 => Tensors.ToInt64s(t),
            DataType.Int32 => Tensors.ToInt64s(t).Select(v => (int)v).ToArray(),
            DataType.Double => t.HasRawData ? MemoryMarshal.Cast<byte, double>(t.RawData.Span).ToArray() : t.DoubleData.ToArray(),
            DataType.Bool => t.HasRawData ? t.RawData.Span.ToArray().Select(b => b != 0).ToArray() : t.Int32Data.Select(v => v != 0).ToArray(),
            DataType.Uint8 => t.HasRawData ? t.RawData.ToByteArray() : t.Int32Data.Select(v => (byte)v).ToArray(),
            DataType.Int8 => t.HasRawData ? MemoryMarshal.Cast<byte, sbyte>(t.RawData.Span).ToArray() : t.Int32Data.Select(v => (sbyte)v).ToArray(),
            // Bit patterns: raw_data, or int32_data holding one 16-bit pattern per value (ONNX's layout for these types).
            DataType.Float16 or DataType.Bfloat16 => HalfArray(type, MemoryMarshal.Cast<byte, ushort>(HalfBytes(t, name, n)).ToArray()),
            _ => throw new NotSupportedException($"tensor '{name}': element type {type} is not supported here"),
        };
        if (data.Length != n)
            throw new InvalidDataException($"tensor '{name}': {data.Length} values for shape [{string.Join(",", dims)}]");
        return new TensorValue(name, type, dims, data);
    }

    private static ReadOnlySpan<byte> HalfBytes(TensorProto t, string name, long n)
    {
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
            throw new InvalidDataException($"tensor '{name}': data is external; only inline tensors are read here");
        if (t.HasRawData)
        {
            if (t.RawData.Length != n * 2)
                throw new InvalidDataException($"tensor '{name}': raw_data has {t.RawData.Length} bytes, shape needs {n * 2}");
            return t.RawData.Span;
        }
        if (t.Int32Data.Count != n)
            throw new InvalidDataException($"tensor '{name}': int32_data has {t.Int32Data.Count} values, shape needs {n}");
        return MemoryMarshal.AsBytes(t.Int32Data.Select(v => (ushort)v).ToArray().AsSpan());
    }

    /// <summary>Loads a serialized TensorProto file (ONNX backend-test layout).</summary>
    public static TensorValue Load(string path)
    {
        try
        {
            return FromProto(TensorProto.Parser.ParseFrom(File.ReadAllBytes(path)));
        }
        catch (Google.Protobuf.InvalidProtocolBufferException e)
        {
            throw new ModelFormatException($"{path}: not a valid serialized TensorProto ({e.Message})", e);
        }
    }

    /// <summary>Inline TensorProto of this value (raw_data), e.g. to freeze it as an initializer.</summary>
    public TensorProto ToProto(string? name = null)
    {
        var t = new TensorProto { Name = name ?? Name, DataType = (int)ElementType };
        t.Dims.AddRange(Dims);
        byte[] raw = Data switch
        {
            float[] f => MemoryMarshal.AsBytes(f.AsSpan()).ToArray(),
            long[] l => MemoryMarshal.AsBytes(l.AsSpan()).ToArray(),
            int[] i => MemoryMarshal.AsBytes(i.AsSpan()).ToArray(),
            double[] d => MemoryMarshal.AsBytes(d.AsSpan()).ToArray(),
            bool[] b => b.Select(v => (byte)(v ? 1 : 0)).ToArray(),
            byte[] u8 => u8,
            sbyte[] s8 => MemoryMarshal.AsBytes(s8.AsSpan()).ToArray(),
            Float16[] h => MemoryMarshal.AsBytes(h.AsSpan()).ToArray(),
            BFloat16[] bf => MemoryMarshal.AsBytes(bf.AsSpan()).ToArray(),
            _ => throw new NotSupportedException($"tensor '{Name}': {Data.GetType()} cannot be serialized"),
        };
        t.RawData = Google.Protobuf.ByteString.CopyFrom(raw);
        return t;
    }
}
