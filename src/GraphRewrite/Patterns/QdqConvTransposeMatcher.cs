// QDQ ConvTranspose sites, as ONNX Runtime's static quantizer writes them:
//   DQ(x_q; scalar scale, zp) ─┐
//   DQ(W int8 const; scale/zp per tensor, or per channel on axis 1) ─ ConvTranspose ─ Q(scalar scale, zp) ─ (one consumer)
//   DQ(B int32 const; zp 0)? ──┘
// ONNX Runtime fuses DQ -> Conv -> Q into QLinearConv but leaves this as an fp32 ConvTranspose between DQ and Q; a
// site matched here is lowered (QdqPortableLowering) to a Conv ORT does fuse. Anything else is refused with the reason.
using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Patterns;

/// <summary>The quantization around a QDQ ConvTranspose site: the DequantizeLinear nodes feeding it, the QuantizeLinear after it, their constants.</summary>
public sealed record QdqSiteParams(
    NodeProto InputDequantize, NodeProto WeightDequantize, NodeProto? BiasDequantize, NodeProto OutputQuantize,
    TensorProto WeightValues, float[] WeightScales, sbyte[] WeightZeroPoints, TensorProto? BiasValues, float[]? BiasScales,
    DataType ActivationType);

/// <summary>Builds a QDQ <see cref="ConvTransposeSite"/> (<see cref="ConvTransposeSite.Quantized"/> set) or says why the node is not one.</summary>
public static class QdqConvTransposeMatcher
{
    /// <summary>The node reads its weights from a DequantizeLinear: the QDQ matcher decides (cheap).</summary>
    public static bool Applies(GraphIndex index, NodeProto node) =>
        node.Input.Count >= 2 && index.Producer(node.Input[1]) is { OpType: Ops.DequantizeLinear.OpType } dq && Ops.IsDefaultDomain(dq.Domain);

    internal static string? Check(GraphIndex index, NodeProto node, long opset, out ConvTransposeSite? site)
    {
        site = null;
        if (opset < 13) return $"QDQ site at opset {opset}: per-channel QuantizeLinear/DequantizeLinear need opset 13";
        if (node.Output.Count != 1 || index.IsGraphOutput(node.Output[0])) return "QDQ site: the ConvTranspose's float output is a graph output";
        var dqX = index.Producer(node.Input[0]);
        if (dqX is not { OpType: Ops.DequantizeLinear.OpType }) return $"QDQ site: input '{node.Input[0]}' is not produced by DequantizeLinear";
        if (Scalar(index, dqX, out var xType) is { } whyX) return $"QDQ site: input DequantizeLinear '{dqX.Name}': {whyX}";

        var dqW = index.Producer(node.Input[1])!;
        var w = dqW.Input.Count > 0 ? index.ConstantWeight(dqW.Input[0]) : null;
        if (w is null) return $"QDQ site: weights DequantizeLinear '{dqW.Name}' reads no constant tensor";
        if (w.DataType != (int)DataType.Int8) return $"QDQ site: weights '{dqW.Input[0]}' are {(DataType)w.DataType}; only int8 weights are lowered";
        if (ExternalData.IsExternal(w)) return $"QDQ site: weights '{dqW.Input[0]}' use external data";
        if (w.Dims.Count < 3) return $"QDQ site: weights '{dqW.Input[0]}' have rank {w.Dims.Count}";
        var attrs = ConvTransposeNode.ReadAttributes(node);
        long cout = w.Dims[1] * attrs.Group;
        var wScale = dqW.Input.Count > 1 ? index.ConstantWeight(dqW.Input[1]) : null;
        if (wScale is null || wScale.DataType != (int)DataType.Float) return $"QDQ site: weight scale of '{dqW.Name}' is not a constant float tensor (dynamic scales are not carried)";
        long nScale = Tensors.ElementCount(wScale.Dims);
        long axis = Attributes.GetInt(dqW, Ops.DequantizeLinear.Axis) ?? 1;
        if (axis < 0) axis += w.Dims.Count;
        if (Attributes.GetInt(dqW, Ops.DequantizeLinear.BlockSize) is > 0) return $"QDQ site: blocked weight quantization ('{dqW.Name}' block_size) is not carried";
        if (nScale != 1 && (axis != 1 || nScale != w.Dims[1] || attrs.Group != 1))
            return $"QDQ site: weight scales of '{dqW.Name}' have {nScale} values on axis {axis}; per tensor or per output channel on axis 1 (group 1) only";
        var wZp = dqW.Input.Count > 2 && dqW.Input[2].Length > 0 ? index.ConstantWeight(dqW.Input[2]) : null;
        if (dqW.Input.Count > 2 && dqW.Input[2].Length > 0 && (wZp is null || wZp.DataType != (int)DataType.Int8 || Tensors.ElementCount(wZp.Dims) != nScale))
            return $"QDQ site: weight zero point of '{dqW.Name}' is not a constant int8 of the scale's shape";
        float[] scales = Tensors.ToFloats(wScale);
        sbyte[] zps = wZp is null ? new sbyte[scales.Length] : wZp.RawData.Span.ToArray().Select(b => unchecked((sbyte)b)).ToArray();
        if (wZp is not null && !wZp.HasRawData) zps = wZp.Int32Data.Select(v => (sbyte)v).ToArray();

        NodeProto? dqB = null;
        TensorProto? b = null;
        float[]? bScales = null;
        if (node.Input.Count > 2 && node.Input[2].Length > 0)
        {
            dqB = index.Producer(node.Input[2]);
            if (dqB is not { OpType: Ops.DequantizeLinear.OpType }) return $"QDQ site: bias '{node.Input[2]}' is not produced by DequantizeLinear";
            b = index.ConstantWeight(dqB.Input[0]);
            if (b is null || b.DataType != (int)DataType.Int32 || Tensors.ElementCount(b.Dims) != cout)
                return $"QDQ site: bias of '{dqB.Name}' is not a constant int32 tensor of {cout} values";
            var bs = dqB.Input.Count > 1 ? index.ConstantWeight(dqB.Input[1]) : null;
            if (bs is null || bs.DataType != (int)DataType.Float || Tensors.ElementCount(bs.Dims) is var nb && nb != 1 && nb != cout)
                return $"QDQ site: bias scale of '{dqB.Name}' is not a constant float per tensor or per channel";
            bScales = Tensors.ToFloats(bs);
            if (bScales.Length == 1) bScales = Enumerable.Repeat(bScales[0], (int)cout).ToArray();
            var bz = dqB.Input.Count > 2 && dqB.Input[2].Length > 0 ? index.ConstantWeight(dqB.Input[2]) : null;
            if (dqB.Input.Count > 2 && dqB.Input[2].Length > 0 && (bz is null || Tensors.ToInt64s(bz).Any(v => v != 0)))
                return $"QDQ site: bias zero point of '{dqB.Name}' is not constant zero";
        }

        var consumers = index.Consumers(node.Output[0]);
        if (consumers.Count != 1 || consumers[0].OpType != Ops.QuantizeLinear.OpType || !Ops.IsDefaultDomain(consumers[0].Domain) || consumers[0].Input[0] != node.Output[0])
            return $"QDQ site: output '{node.Output[0]}' must feed exactly one QuantizeLinear ({consumers.Count} consumer(s): {string.Join(", ", consumers.Select(c => c.OpType))})";
        var q = consumers[0];
        if (index.SubgraphReaders(node.Output[0]).Count > 0) return $"QDQ site: output '{node.Output[0]}' is read inside a subgraph";
        if (Scalar(index, q, out var yType) is { } whyQ) return $"QDQ site: output QuantizeLinear '{q.Name}': {whyQ}";
        if (xType != yType) return $"QDQ site: input is {xType}, output {yType}; one activation type is carried";

        long[] wShape = w.Dims.ToArray();
        var xShape = index.Shape(node.Input[0]);
        bool staticSpatial = xShape is not null && xShape.Length == wShape.Length && xShape.Skip(2).All(d => d > 0);
        var shape = new long[wShape.Length];
        shape[0] = 1;
        shape[1] = wShape[0];
        for (int i = 2; i < shape.Length; i++) shape[i] = staticSpatial ? xShape![i] : ConvTransposeMatcher.DynamicDimPlaceholder;
        if (attrs.OutputShape is not null && !staticSpatial) return "QDQ site: output_shape with an unknown input size";
        var geometry = ConvTransposeGeometry.Resolve(attrs, shape, wShape);
        if (geometry.OrtRejectsOutputPadding) return "QDQ site: output_padding >= stride, which ONNX Runtime rejects";

        site = new ConvTransposeSite
        {
            Model = index.Model!, Node = node, Attributes = attrs, Geometry = geometry, WeightTensor = w, BiasTensor = b, Opset = opset,
            StaticSpatial = staticSpatial, MacsNote = staticSpatial ? null : $"MACs for dynamic spatial dims taken at {ConvTransposeMatcher.DynamicDimPlaceholder}",
            Quantized = new QdqSiteParams(dqX, dqW, dqB, q, w, scales.Length == 1 ? Enumerable.Repeat(scales[0], (int)wShape[1]).ToArray() : scales,
                zps.Length == 1 ? Enumerable.Repeat(zps[0], (int)wShape[1]).ToArray() : zps, b, bScales, xType),
        };
        return null;
    }

    /// <summary>A Q/DQ with constant scalar float scale and a constant scalar uint8/int8 zero point.</summary>
    private static string? Scalar(GraphIndex index, NodeProto n, out DataType type)
    {
        type = DataType.Undefined;
        if (n.Input.Count < 3 || n.Input[2].Length == 0) return "no zero point (uint8 assumed by ONNX): not carried";
        var s = index.ConstantWeight(n.Input[1]);
        var z = index.ConstantWeight(n.Input[2]);
        if (s is null || z is null) return "scale or zero point is not constant (dynamic scales are not carried)";
        if (s.DataType != (int)DataType.Float || Tensors.ElementCount(s.Dims) != 1 || Tensors.ElementCount(z.Dims) != 1)
            return "scale and zero point must be float and uint8/int8 scalars (per tensor)";
        type = (DataType)z.DataType;
        return type is DataType.Uint8 or DataType.Int8 ? null : $"zero point is {type}; uint8 or int8 only";
    }
}
