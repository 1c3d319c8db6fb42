using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;
using A = OnnxDeconv.GraphRewrite.Ops.ConvTranspose;

namespace OnnxDeconv.GraphRewrite.Patterns;

/// <summary>Reads a ConvTranspose node's attributes into the geometry's terms.</summary>
public static class ConvTransposeNode
{
    public static bool Is(NodeProto node) => node.OpType == A.OpType && Ops.IsDefaultDomain(node.Domain);

    /// <summary>Reads every ConvTranspose attribute; throws <see cref="AttributeException"/> naming node and attribute on a malformed one.</summary>
    public static ConvTransposeAttributes ReadAttributes(NodeProto node)
    {
        string? autoPad = Attributes.GetString(node, A.AutoPad);
        AutoPad parsed;
        try { parsed = ConvTransposeAttributes.ParseAutoPad(autoPad); }
        catch (GeometryException e) { throw new AttributeException($"node '{Attributes.Describe(node)}': {e.Message}"); }
        return new ConvTransposeAttributes
        {
            KernelShape = Attributes.GetInts(node, A.KernelShape),
            Strides = Attributes.GetInts(node, A.Strides),
            Dilations = Attributes.GetInts(node, A.Dilations),
            Pads = Attributes.GetInts(node, A.Pads),
            OutputPadding = Attributes.GetInts(node, A.OutputPadding),
            OutputShape = Attributes.GetInts(node, A.OutputShape),
            AutoPad = parsed,
            Group = Attributes.GetInt(node, A.Group) ?? 1,
        };
    }

    /// <summary>Writes <paramref name="attrs"/> as node attributes (only those present), e.g. to build a test node.</summary>
    public static IEnumerable<AttributeProto> ToAttributes(ConvTransposeAttributes attrs)
    {
        if (attrs.KernelShape is { } k) yield return Attributes.Ints(A.KernelShape, k);
        if (attrs.Strides is { } s) yield return Attributes.Ints(A.Strides, s);
        if (attrs.Dilations is { } d) yield return Attributes.Ints(A.Dilations, d);
        if (attrs.Pads is { } p) yield return Attributes.Ints(A.Pads, p);
        if (attrs.OutputPadding is { } op) yield return Attributes.Ints(A.OutputPadding, op);
        if (attrs.OutputShape is { } os) yield return Attributes.Ints(A.OutputShape, os);
        if (attrs.AutoPad != AutoPad.NotSet) yield return Attributes.String(A.AutoPad, ConvTransposeAttributes.AutoPadName(attrs.AutoPad));
        if (attrs.Group != 1) yield return Attributes.Int(A.Group, attrs.Group);
    }
}
