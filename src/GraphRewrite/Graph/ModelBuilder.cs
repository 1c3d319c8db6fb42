using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Graph;

/// <summary>
/// Builds small models from code (demo models, test cases, isolated single-node models).
/// Names are deterministic: outputs are named "{opType}_{n}" unless given, so a fixed seed gives fixed bytes.
/// </summary>
public sealed class ModelBuilder
{
    private readonly ModelProto _model;
    private readonly Dictionary<string, int> _counters = new(StringComparer.Ordinal);

    public GraphProto Graph => _model.Graph;

    public ModelBuilder(string graphName, long opset = 22, long irVersion = 10)
    {
        _model = new ModelProto
        {
            IrVersion = irVersion,
            ProducerName = "onnx-deconv",
            Graph = new GraphProto { Name = graphName },
        };
        _model.OpsetImport.Add(new OperatorSetIdProto { Domain = Ops.DefaultDomain, Version = opset });
    }

    public ModelBuilder ImportOpset(string domain, long version)
    {
        _model.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = version });
        return this;
    }

    /// <summary>Declares a graph input. A negative dim or null shape entry becomes a symbolic dim named by <paramref name="symbolic"/>.</summary>
    public string Input(string name, long[]? dims, DataType type = DataType.Float, string[]? symbolic = null)
    {
        _model.Graph.Input.Add(ValueInfo(name, type, dims, symbolic));
        return name;
    }

    public void Output(string name, long[]? dims, DataType type = DataType.Float, string[]? symbolic = null) =>
        _model.Graph.Output.Add(ValueInfo(name, type, dims, symbolic));

    public string Initializer(string name, long[] dims, ReadOnlySpan<float> data)
    {
        _model.Graph.Initializer.Add(Tensors.FromFloats(name, dims, data));
        return name;
    }

    public string InitializerInt64(string name, long[] dims, ReadOnlySpan<long> data)
    {
        _model.Graph.Initializer.Add(Tensors.FromInt64s(name, dims, data));
        return name;
    }

    /// <summary>Adds a node; returns its (single) output name.</summary>
    public string Node(string opType, IEnumerable<string> inputs, IEnumerable<AttributeProto>? attributes = null,
        string? output = null, string? name = null, string domain = Ops.DefaultDomain)
    {
        int n = _counters.TryGetValue(opType, out var c) ? c : 0;
        _counters[opType] = n + 1;
        output ??= $"{opType.ToLowerInvariant()}_{n}";
        var node = new NodeProto { OpType = opType, Name = name ?? $"{opType}_{n}", Domain = domain };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        if (attributes is not null) node.Attribute.AddRange(attributes);
        _model.Graph.Node.Add(node);
        return output;
    }

    public ModelProto Build() => _model;

    public static ValueInfoProto ValueInfo(string name, DataType type, long[]? dims, string[]? symbolic = null)
    {
        var tt = new TypeProto.Types.Tensor { ElemType = (int)type };
        if (dims is not null)
        {
            tt.Shape = new TensorShapeProto();
            for (int i = 0; i < dims.Length; i++)
            {
                var d = new TensorShapeProto.Types.Dimension();
                if (dims[i] >= 0) d.DimValue = dims[i];
                else d.DimParam = symbolic is not null && i < symbolic.Length ? symbolic[i] : $"{name}_d{i}";
                tt.Shape.Dim.Add(d);
            }
        }
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tt } };
    }
}
