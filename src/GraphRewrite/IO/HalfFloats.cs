using System.Runtime.InteropServices;
using Google.Protobuf;
using OnnxDeconv.GraphRewrite.Onnx;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.IO;

/// <summary>
/// float16 (IEEE binary16) and bfloat16 bit patterns to and from float32. Narrowing rounds to nearest, ties to even
/// (what ONNX Runtime's Cast does); NaN stays NaN, overflow becomes infinity. Widening is exact.
/// </summary>
public static class HalfFloats
{
    /// <summary>The 16-bit floating-point element types handled here.</summary>
    public static bool IsHalf(DataType type) => type is DataType.Float16 or DataType.Bfloat16;

    /// <summary>FLOAT and the 16-bit float types: element types whose values are read as (widened to) float32.</summary>
    public static bool IsFloatLike(DataType type) => type is DataType.Float or DataType.Float16 or DataType.Bfloat16;

    public static float Float16ToFloat(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);

    // .NET's float -> Half conversion rounds to nearest even.
    public static ushort FloatToFloat16(float value) => BitConverter.HalfToUInt16Bits((Half)value);

    public static float BFloat16ToFloat(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    public static ushort FloatToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x0040); // keep sign, force a quiet NaN
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    public static float ToFloat(DataType type, ushort bits) => type switch
    {
        DataType.Float16 => Float16ToFloat(bits),
        DataType.Bfloat16 => BFloat16ToFloat(bits),
        _ => throw new ArgumentException($"{type} is not a 16-bit float type"),
    };

    public static ushort FromFloat(DataType type, float value) => type switch
    {
        DataType.Float16 => FloatToFloat16(value),
        DataType.Bfloat16 => FloatToBFloat16(value),
        _ => throw new ArgumentException($"{type} is not a 16-bit float type"),
    };

    /// <summary>Rounds <paramref name="value"/> to the nearest value of <paramref name="type"/> (FLOAT: unchanged).</summary>
    public static float Round(DataType type, float value) =>
        type == DataType.Float ? value : ToFloat(type, FromFloat(type, value));

    /// <summary>Widens little-endian 16-bit float data to float32.</summary>
    public static float[] Widen(DataType type, ReadOnlySpan<byte> bytes)
    {
        var bits = MemoryMarshal.Cast<byte, ushort>(bytes);
        var result = new float[bits.Length];
        for (int i = 0; i < bits.Length; i++) result[i] = ToFloat(type, bits[i]);
        return result;
    }

    /// <summary>Narrows float32 values to 16-bit float bit patterns of <paramref name="type"/>.</summary>
    public static ushort[] Narrow(DataType type, ReadOnlySpan<float> values)
    {
        var result = new ushort[values.Length];
        for (int i = 0; i < values.Length; i++) result[i] = FromFloat(type, values[i]);
        return result;
    }

    /// <summary>
    /// A tensor of element type <paramref name="type"/> (FLOAT, FLOAT16 or BFLOAT16) holding <paramref name="values"/>,
    /// rounded to that type: how a rewrite of a float16 model emits its initializers in the model's own type.
    /// </summary>
    public static TensorProto Tensor(string name, DataType type, long[] dims, ReadOnlySpan<float> values)
    {
        if (type == DataType.Float) return Tensors.FromFloats(name, dims, values);
        if (!IsHalf(type)) throw new ArgumentException($"tensor '{name}': {type} is not a float type");
        if (Tensors.ElementCount(dims) != values.Length)
            throw new ArgumentException($"tensor '{name}': {values.Length} values for shape [{string.Join(",", dims)}]");
        var t = new TensorProto { Name = name, DataType = (int)type };
        t.Dims.AddRange(dims);
        t.RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(Narrow(type, values).AsSpan()));
        return t;
    }

    /// <summary>Values of an inline FLOAT16 or BFLOAT16 tensor (raw_data, or int32_data holding the bit patterns) as float32.</summary>
    public static float[] ToFloats(TensorProto t)
    {
        var type = (DataType)t.DataType;
        if (!IsHalf(type))
            throw new InvalidDataException($"tensor '{t.Name}': expected FLOAT16 or BFLOAT16, got {type}");
        return Widen(type, ExternalData.InlineBytes(t));
    }
}
