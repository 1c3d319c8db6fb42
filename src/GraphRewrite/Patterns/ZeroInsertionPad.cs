using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Patterns;

/// <summary>Reads a Pad node for the zero-insertion probe: only constant mode with a zero value moves data without inventing it.</summary>
internal static class ZeroInsertionPad
{
    /// <summary>
    /// Pad's pads (length 2*rank) across opsets: attribute before 11, inputs since (axes input from 18). Refuses
    /// anything but constant mode with a zero value.
    /// </summary>
    public static string? Read(GraphIndex index, NodeProto pad, int rank, out long[] pads)
    {
        pads = [];
        string name = Attributes.Describe(pad);
        string mode = Attributes.GetString(pad, Ops.Pad.Mode) ?? Ops.Values.Constant;
        if (mode != Ops.Values.Constant) return $"Pad {name} has mode '{mode}'; only constant zero padding inserts zeros";
        long opset = index.Opset(Ops.DefaultDomain) ?? 1;
        float value;
        long[]? raw;
        if (opset < 11)
        {
            raw = Attributes.GetInts(pad, Ops.Pad.Pads);
            value = Attributes.GetFloat(pad, Ops.Pad.Value) ?? 0f;
            if (raw is null) return $"Pad {name} has no pads attribute";
        }
        else
        {
            if (pad.Input.Count < 2 || pad.Input[1].Length == 0) return $"Pad {name} has no pads input";
            var pt = index.Constant(pad.Input[1]);
            if (pt is null) return $"Pad {name}: pads '{pad.Input[1]}' are not constant";
            raw = Tensors.ToInt64s(pt);
            value = 0f;
            if (pad.Input.Count > 2 && pad.Input[2].Length > 0)
            {
                var vt = index.Constant(pad.Input[2]);
                if (vt is null) return $"Pad {name}: constant_value '{pad.Input[2]}' is not constant";
                if (vt.DataType != (int)DataType.Float) return $"Pad {name}: constant_value is {(DataType)vt.DataType}; only float32 is rewritten";
                var vs = Tensors.ToFloats(vt);
                if (vs.Length != 1) return $"Pad {name}: constant_value has {vs.Length} elements";
                value = vs[0];
            }
            if (pad.Input.Count > 3 && pad.Input[3].Length > 0)
            {
                var at = index.Constant(pad.Input[3]);
                if (at is null) return $"Pad {name}: axes '{pad.Input[3]}' are not constant";
                var axes = Tensors.ToInt64s(at);
                if (raw.Length != 2 * axes.Length) return $"Pad {name}: {raw.Length} pads for {axes.Length} axes";
                var full = new long[2 * rank];
                for (int i = 0; i < axes.Length; i++)
                {
                    long a = axes[i] < 0 ? axes[i] + rank : axes[i];
                    if (a < 0 || a >= rank) return $"Pad {name}: axis {axes[i]} out of range for rank {rank}";
                    full[a] = raw[i];
                    full[rank + a] = raw[axes.Length + i];
                }
                raw = full;
            }
        }
        if (value != 0f) return $"Pad {name} pads with {value}, not zero";
        if (raw.Length != 2 * rank) return $"Pad {name} has {raw.Length} pads; expected {2 * rank} for rank {rank}";
        pads = raw;
        return null;
    }

}
