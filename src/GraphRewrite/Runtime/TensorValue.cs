using System.Runtime.InteropServices;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Runtime;

/// <summary>A named dense tensor held in managed memory: element type, shape and a typed array (float[], long[], int[], double[], bool[], byte[], sbyte[]...).</summary>
public sealed record TensorValue(string Name, DataType ElementType, long[] Dims, Array Data)
{
    public static TensorValue Float(string name, long[] dims, float[] data) => new(name, DataType.Float, dims, data);

    public float[] AsFloats() => Data as float[] ?? throw new InvalidOperationException($"tensor '{Name}' is {ElementType}, not FLOAT");

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
            _ => throw new NotSupportedException($"tensor '{name}': element type {type} is not supported here"),
        };
        if (data.Length != n)
            throw new InvalidDataException($"tensor '{name}': {data.Length} values for shape [{string.Join(",", dims)}]");
        return new TensorValue(name, type, dims, data);
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
            _ => throw new NotSupportedException($"tensor '{Name}': {Data.GetType()} cannot be serialized"),
        };
        t.RawData = Google.Protobuf.ByteString.CopyFrom(raw);
        return t;
    }
}
