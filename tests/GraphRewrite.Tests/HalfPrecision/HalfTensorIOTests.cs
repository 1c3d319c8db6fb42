using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Verification;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Tests.HalfPrecision;

/// <summary>float16/bfloat16 tensors: conversions, TensorProto reading/writing, random inputs and comparison tolerance.</summary>
public class HalfTensorIOTests
{
    [Theory]
    [InlineData(1.0f, (ushort)0x3C00)]
    [InlineData(-2.0f, (ushort)0xC000)]
    [InlineData(65504f, (ushort)0x7BFF)]          // largest finite float16
    [InlineData(65520f, (ushort)0x7C00)]          // rounds up to infinity
    [InlineData(1.00048828125f, (ushort)0x3C00)]  // 1 + 2^-11: tie, to even (1.0)
    [InlineData(1.00146484375f, (ushort)0x3C02)]  // 1 + 3*2^-11: tie, to even (1 + 2^-9)
    [InlineData(5.9604645e-8f, (ushort)0x0001)]   // smallest subnormal
    public void Float16_RoundsToNearestEven(float value, ushort bits) => Assert.Equal(bits, HalfFloats.FloatToFloat16(value));

    [Theory]
    [InlineData(1.0f, (ushort)0x3F80)]
    [InlineData(1.00390625f, (ushort)0x3F80)]     // 1 + 2^-8: tie, to even (1.0)
    [InlineData(1.01171875f, (ushort)0x3F82)]     // 1 + 3*2^-8: tie, to even
    [InlineData(1.0039064f, (ushort)0x3F81)]      // one float32 step above the tie: up
    [InlineData(float.PositiveInfinity, (ushort)0x7F80)]
    [InlineData(3.4028235e38f, (ushort)0x7F80)]   // float32 max rounds to infinity
    public void BFloat16_RoundsToNearestEven(float value, ushort bits) => Assert.Equal(bits, HalfFloats.FloatToBFloat16(value));

    [Fact]
    public void NaN_StaysNaN_InBothTypes()
    {
        Assert.True(float.IsNaN(HalfFloats.Float16ToFloat(HalfFloats.FloatToFloat16(float.NaN))));
        Assert.True(float.IsNaN(HalfFloats.BFloat16ToFloat(HalfFloats.FloatToBFloat16(float.NaN))));
        // A NaN whose payload lives only in the low 16 bits must not become infinity.
        float lowPayloadNaN = BitConverter.UInt32BitsToSingle(0x7F800001);
        Assert.True(float.IsNaN(HalfFloats.BFloat16ToFloat(HalfFloats.FloatToBFloat16(lowPayloadNaN))));
    }

    [Theory]
    [InlineData(DataType.Float16)]
    [InlineData(DataType.Bfloat16)]
    public void TensorProto_RawDataAndInt32Data_ReadToTheSameValues(DataType type)
    {
        float[] values = [0.5f, -1.25f, 3f, 0f];
        var raw = HalfFloats.Tensor("t", type, [2, 2], values);
        var typed = new TensorProto { Name = "t", DataType = (int)type };
        typed.Dims.AddRange([2, 2]);
        typed.Int32Data.AddRange(HalfFloats.Narrow(type, values).Select(b => (int)b));

        var a = TensorValue.FromProto(raw);
        var b = TensorValue.FromProto(typed);
        Assert.Equal(type, a.ElementType);
        Assert.Equal(values, a.WidenedFloats());
        Assert.Equal(values, b.WidenedFloats());
        Assert.Equal(values, Tensors.ToFloats(raw));
        // Written back as raw_data, bit for bit.
        Assert.Equal(raw.RawData, b.ToProto().RawData);
    }

    [Fact]
    public void TensorProto_Float16WithWrongByteCount_NamesTensor()
    {
        var t = new TensorProto { Name = "bad", DataType = (int)DataType.Float16, RawData = Google.Protobuf.ByteString.CopyFrom(new byte[3]) };
        t.Dims.Add(2);
        var e = Assert.Throws<InvalidDataException>(() => TensorValue.FromProto(t));
        Assert.Contains("'bad'", e.Message);
        Assert.Contains("raw_data has 3 bytes", e.Message);
    }

    [Theory]
    [InlineData(DataType.Float16)]
    [InlineData(DataType.Bfloat16)]
    public void InputGenerator_HalfInputs_AreUniformInRangeAndExactlyRepresentable(DataType type)
    {
        var mb = new OnnxDeconv.GraphRewrite.Graph.ModelBuilder("identity");
        mb.Input("X", [4, 256], type);
        mb.Node("Identity", ["X"], output: "Y");
        mb.Output("Y", [4, 256], type);
        using var r = new OrtRunner(mb.Build());
        var x = Assert.Single(InputGenerator.Generate(r.Session, new Dictionary<string, long[]>(), seed: 3));
        Assert.Equal(type, x.ElementType);
        Assert.IsType(type == DataType.Float16 ? typeof(Float16[]) : typeof(BFloat16[]), x.Data);
        var v = x.WidenedFloats();
        Assert.All(v, f => Assert.InRange(f, -1f, 1f));
        Assert.True(v.Min() < -0.9f && v.Max() > 0.9f, "spread over [-1, 1]");
        // Through ONNX Runtime and back unchanged (the runner binds Float16/BFloat16 tensors).
        var y = Assert.Single(r.Run([x]));
        Assert.Equal(type, y.ElementType);
        Assert.Equal(v, y.WidenedFloats());
    }

    [Fact]
    public void Comparer_Float16_OneStepApartPasses_UnderTheFloat16Rule_NotTheFloat32One()
    {
        // 1.0 and the next float16 (1 + 2^-10) are one step apart: within 2^-8 + 2^-9*|b|, far outside 1e-5 + 1e-4*|b|.
        var b = TensorValue.Rounded("y", DataType.Float16, [2], [1f, -0.25f]);
        var a = TensorValue.Rounded("y", DataType.Float16, [2], [1f + 1f / 1024, -0.25f]);
        var c = OutputComparer.Compare("y", b, a, Tolerance.Default);
        Assert.True(c.Passed, c.Describe());
        Assert.Equal(new Tolerance(1.0 / 256, 1.0 / 512), c.Tolerance);
        Assert.False(Tolerance.Default.Close(1f + 1f / 1024, 1f));
    }

    [Fact]
    public void Comparer_Float16_EightStepsApart_Fails_AndNamesTheElement()
    {
        var b = TensorValue.Rounded("y", DataType.Float16, [2], [4f, 1f]);
        var a = TensorValue.Rounded("y", DataType.Float16, [2], [4f, 1f + 8f / 1024]);
        var c = OutputComparer.Compare("y", b, a, Tolerance.Default);
        Assert.False(c.Passed);
        Assert.Equal(1, c.Mismatches);
        Assert.Equal([1L], c.WorstIndex!);
    }

    [Fact]
    public void Comparer_BFloat16_UsesOneBFloat16Step_AndAWiderUserToleranceStillApplies()
    {
        var b = TensorValue.Rounded("y", DataType.Bfloat16, [1], [1f]);
        var a = TensorValue.Rounded("y", DataType.Bfloat16, [1], [1f + 1f / 128]);
        Assert.True(OutputComparer.Compare("y", b, a, Tolerance.Default).Passed);
        var far = TensorValue.Rounded("y", DataType.Bfloat16, [1], [1.0625f]);
        Assert.False(OutputComparer.Compare("y", b, far, Tolerance.Default).Passed);
        // The type's rule is a floor: a looser user tolerance is kept.
        Assert.True(OutputComparer.Compare("y", b, far, new Tolerance(0.1, 0)).Passed);
    }

    [Fact]
    public void Comparer_Float32Outputs_KeepTheFloat32Rule()
    {
        var b = TensorValue.Float("y", [1], [1f]);
        var a = TensorValue.Float("y", [1], [1f + 1f / 1024]);
        var c = OutputComparer.Compare("y", b, a, Tolerance.Default);
        Assert.False(c.Passed);
        Assert.Equal(Tolerance.Default, c.Tolerance);
    }

    [Fact]
    public void HalfModel_ConvertsWeightsAndDeclaredTypes_KeepsResizeScalesFloat32()
    {
        var mb = new OnnxDeconv.GraphRewrite.Graph.ModelBuilder("resize");
        mb.Input("X", [1, 1, 2, 2]);
        mb.Initializer("scales", [4], [1, 1, 2, 2]);
        mb.Initializer("W", [1, 1, 1, 1], [0.1f]);
        var u = mb.Node("Resize", ["X", "", "scales"], [OnnxDeconv.GraphRewrite.Graph.Attributes.String("mode", "nearest")]);
        mb.Node("Conv", [u, "W"], output: "Y");
        mb.Output("Y", [1, 1, 4, 4]);
        var m = HalfModel.Convert(mb.Build(), DataType.Float16);
        Assert.Equal((int)DataType.Float, m.Graph.Initializer.Single(t => t.Name == "scales").DataType);
        var w = m.Graph.Initializer.Single(t => t.Name == "W");
        Assert.Equal((int)DataType.Float16, w.DataType);
        Assert.Equal(HalfFloats.Round(DataType.Float16, 0.1f), Tensors.ToFloats(w)[0]);
        Assert.Equal((int)DataType.Float16, m.Graph.Input[0].Type.TensorType.ElemType);
        var y = Assert.Single(OrtRunner.RunOnce(m, [TensorValue.Rounded("X", DataType.Float16, [1, 1, 2, 2], [1, 2, 3, 4])]));
        Assert.Equal(DataType.Float16, y.ElementType);
    }
}
