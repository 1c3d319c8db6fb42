using Google.Protobuf;
using OnnxDeconv.GraphRewrite.Onnx;
using AttrType = OnnxDeconv.GraphRewrite.Onnx.AttributeProto.Types.AttributeType;

namespace OnnxDeconv.GraphRewrite.Graph;

/// <summary>A node attribute is missing, of the wrong type or out of range; the message names node and attribute.</summary>
public sealed class AttributeException(string message) : InvalidInputException(message);

/// <summary>Typed reads of node attributes (with the ONNX default when absent) and attribute construction.</summary>
public static class Attributes
{
    public static AttributeProto? Find(NodeProto node, string name) =>
        node.Attribute.FirstOrDefault(a => a.Name == name);

    public static bool Has(NodeProto node, string name) => Find(node, name) is not null;

    public static long[]? GetInts(NodeProto node, string name)
    {
        var a = Find(node, name);
        if (a is null) return null;
        if (a.Type != AttrType.Ints && !(a.Type == AttrType.Undefined && a.Ints.Count > 0))
            throw new AttributeException($"node '{Describe(node)}': attribute '{name}' must be INTS, is {a.Type}");
        return a.Ints.ToArray();
    }

    public static long? GetInt(NodeProto node, string name)
    {
        var a = Find(node, name);
        if (a is null) return null;
        if (a.Type != AttrType.Int && a.Type != AttrType.Undefined)
            throw new AttributeException($"node '{Describe(node)}': attribute '{name}' must be INT, is {a.Type}");
        return a.I;
    }

    public static float? GetFloat(NodeProto node, string name)
    {
        var a = Find(node, name);
        if (a is null) return null;
        if (a.Type != AttrType.Float && a.Type != AttrType.Undefined)
            throw new AttributeException($"node '{Describe(node)}': attribute '{name}' must be FLOAT, is {a.Type}");
        return a.F;
    }

    public static float[]? GetFloats(NodeProto node, string name)
    {
        var a = Find(node, name);
        if (a is null) return null;
        if (a.Type != AttrType.Floats && !(a.Type == AttrType.Undefined && a.Floats.Count > 0))
            throw new AttributeException($"node '{Describe(node)}': attribute '{name}' must be FLOATS, is {a.Type}");
        return a.Floats.ToArray();
    }

    public static string? GetString(NodeProto node, string name)
    {
        var a = Find(node, name);
        if (a is null) return null;
        if (a.Type != AttrType.String && a.Type != AttrType.Undefined)
            throw new AttributeException($"node '{Describe(node)}': attribute '{name}' must be STRING, is {a.Type}");
        return a.S.ToStringUtf8();
    }

    public static TensorProto? GetTensor(NodeProto node, string name) => Find(node, name)?.T;

    public static AttributeProto Int(string name, long v) => new() { Name = name, Type = AttrType.Int, I = v };
    public static AttributeProto Float(string name, float v) => new() { Name = name, Type = AttrType.Float, F = v };
    public static AttributeProto String(string name, string v) => new() { Name = name, Type = AttrType.String, S = ByteString.CopyFromUtf8(v) };
    public static AttributeProto Tensor(string name, TensorProto v) => new() { Name = name, Type = AttrType.Tensor, T = v };

    public static AttributeProto Ints(string name, IEnumerable<long> v)
    {
        var a = new AttributeProto { Name = name, Type = AttrType.Ints };
        a.Ints.AddRange(v);
        return a;
    }

    public static AttributeProto Floats(string name, IEnumerable<float> v)
    {
        var a = new AttributeProto { Name = name, Type = AttrType.Floats };
        a.Floats.AddRange(v);
        return a;
    }

    /// <summary>"name (OpType)" or "#index OpType" for unnamed nodes, for messages.</summary>
    public static string Describe(NodeProto node) =>
        string.IsNullOrEmpty(node.Name) ? $"<unnamed {node.OpType} -> {string.Join(",", node.Output)}>" : $"{node.Name} ({node.OpType})";
}
