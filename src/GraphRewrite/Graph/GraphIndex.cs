using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.GraphRewrite.Graph;

/// <summary>
/// Read-only lookups over one graph: who produces a value, who consumes it, which values are constant
/// (initializers or Constant nodes), graph inputs/outputs and the opset of each domain.
/// Build a new index after editing the graph.
/// </summary>
public sealed class GraphIndex
{
    private readonly Dictionary<string, NodeProto> _producers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<NodeProto>> _consumers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<NodeProto>> _subgraphReaders = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TensorProto> _initializers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ValueInfoProto> _valueInfo = new(StringComparer.Ordinal);
    private readonly HashSet<string> _graphInputs = new(StringComparer.Ordinal);
    private readonly HashSet<string> _graphOutputs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _opsets = new(StringComparer.Ordinal);

    public GraphProto Graph { get; }
    public ModelProto? Model { get; }

    public GraphIndex(ModelProto model) : this(model.Graph, model.OpsetImport) => Model = model;

    public GraphIndex(GraphProto graph, IEnumerable<OperatorSetIdProto> opsets)
    {
        Graph = graph;
        foreach (var o in opsets)
            _opsets[Ops.IsDefaultDomain(o.Domain) ? Ops.DefaultDomain : o.Domain] = o.Version;
        foreach (var t in graph.Initializer) _initializers[t.Name] = t;
        foreach (var i in graph.Input) _graphInputs.Add(i.Name);
        foreach (var o in graph.Output) _graphOutputs.Add(o.Name);
        foreach (var v in graph.Input.Concat(graph.Output).Concat(graph.ValueInfo)) _valueInfo.TryAdd(v.Name, v);
        foreach (var n in graph.Node)
        {
            foreach (var o in n.Output)
                if (o.Length > 0) _producers.TryAdd(o, n);
            foreach (var i in n.Input)
            {
                if (i.Length == 0) continue;
                if (!_consumers.TryGetValue(i, out var list)) _consumers[i] = list = [];
                if (!list.Any(x => ReferenceEquals(x, n))) list.Add(n);
            }
            foreach (var sg in Topology.Subgraphs(n))
                foreach (var r in Topology.OuterReads(sg))
                {
                    if (!_subgraphReaders.TryGetValue(r, out var list)) _subgraphReaders[r] = list = [];
                    if (!list.Any(x => ReferenceEquals(x, n))) list.Add(n);
                }
        }
    }

    /// <summary>The node that produces <paramref name="value"/>, or null for graph inputs, initializers and unknown names.</summary>
    public NodeProto? Producer(string value) => _producers.GetValueOrDefault(value);

    /// <summary>
    /// Nodes that read <paramref name="value"/> as a direct input (each once, in graph order). Subgraph reads are not
    /// included: see <see cref="SubgraphReaders"/> and <see cref="Uses"/>.
    /// </summary>
    public IReadOnlyList<NodeProto> Consumers(string value) =>
        _consumers.TryGetValue(value, out var l) ? l : [];

    /// <summary>
    /// Nodes of this graph whose subgraphs (If branches, Loop/Scan bodies, at any depth) read <paramref name="value"/>
    /// from the outer scope: implicit inputs that <see cref="Consumers"/> does not list.
    /// </summary>
    public IReadOnlyList<NodeProto> SubgraphReaders(string value) =>
        _subgraphReaders.TryGetValue(value, out var l) ? l : [];

    /// <summary>Every node that uses <paramref name="value"/>: direct consumers, then nodes whose subgraphs read it (each once).</summary>
    public IReadOnlyList<NodeProto> Uses(string value)
    {
        var direct = Consumers(value);
        var implicitReads = SubgraphReaders(value);
        if (implicitReads.Count == 0) return direct;
        return direct.Concat(implicitReads.Where(n => !direct.Any(d => ReferenceEquals(d, n)))).ToList();
    }

    /// <summary>True when anything reads <paramref name="value"/>: a node, a subgraph, or the graph's outputs.</summary>
    public bool IsUsed(string value) => Uses(value).Count > 0 || IsGraphOutput(value);

    /// <summary>
    /// True when <paramref name="node"/> is the only user of <paramref name="value"/> and reads it only as a direct
    /// input: the condition a rewrite needs before folding <paramref name="value"/> into <paramref name="node"/>.
    /// </summary>
    public bool IsUsedOnlyBy(string value, NodeProto node)
    {
        var uses = Uses(value);
        return uses.Count == 1 && ReferenceEquals(uses[0], node) && SubgraphReaders(value).Count == 0 && !IsGraphOutput(value);
    }

    public bool IsGraphInput(string value) => _graphInputs.Contains(value);
    public bool IsGraphOutput(string value) => _graphOutputs.Contains(value);

    public TensorProto? Initializer(string value) => _initializers.GetValueOrDefault(value);

    /// <summary>
    /// A FLOAT constant's values, inline or external: external data is read from the model's folder when the model
    /// knows it (<see cref="ModelIO.DataDirectory"/>), one tensor at a time. Unreadable data is an
    /// <see cref="InvalidDataException"/>, which matchers turn into a reason.
    /// </summary>
    public float[] Floats(TensorProto t)
    {
        if (!ExternalData.IsExternal(t) || Model is null) return Tensors.ToFloats(t);
        try { return ModelIO.TensorFloats(Model, t); }
        catch (ModelFormatException e) { throw new InvalidDataException(e.Message, e); }
    }

    /// <summary>
    /// The constant tensor behind <paramref name="value"/>: an initializer that is not overridable as a graph input,
    /// or the value attribute of a Constant node. Null when the value is not a compile-time constant.
    /// </summary>
    public TensorProto? Constant(string value)
    {
        if (_initializers.TryGetValue(value, out var t))
            return _graphInputs.Contains(value) ? null : t; // an initializer that is also an input can be overridden at run time
        var p = Producer(value);
        if (p is not null && p.OpType == Ops.Constant.OpType && Ops.IsDefaultDomain(p.Domain))
            return Attributes.GetTensor(p, Ops.Constant.Value);
        return null;
    }

    public bool IsConstant(string value) => Constant(value) is not null;

    /// <summary>
    /// As <see cref="Constant"/>, also counting initializers listed as graph inputs in IR version &lt; 4 models: that IR
    /// required every initializer to be listed as an input, so the listing does not mark it as meant to be fed (ONNX
    /// Runtime treats them as constants too). Every matcher reads weights through this one rule.
    /// </summary>
    public TensorProto? ConstantWeight(string value)
    {
        var c = Constant(value);
        if (c is null && Model is { IrVersion: < 4 } && IsGraphInput(value)) c = Initializer(value);
        return c;
    }

    public ValueInfoProto? ValueInfo(string value) => _valueInfo.GetValueOrDefault(value);

    /// <summary>Static shape of <paramref name="value"/> from value_info/inputs/outputs or a constant; -1 for unknown dims; null if rank unknown.</summary>
    public long[]? Shape(string value)
    {
        var c = Constant(value);
        if (c is not null) return c.Dims.ToArray();
        var vi = ValueInfo(value);
        var tt = vi?.Type?.TensorType;
        if (tt?.Shape is null) return null;
        return tt.Shape.Dim.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue : -1).ToArray();
    }

    /// <summary>Opset version imported for <paramref name="domain"/> ("" = default ONNX domain), or null if not imported.</summary>
    public long? Opset(string domain) =>
        _opsets.TryGetValue(Ops.IsDefaultDomain(domain) ? Ops.DefaultDomain : domain, out var v) ? v : null;

    public IReadOnlyDictionary<string, long> Opsets => _opsets;

    /// <summary>Every value name the graph defines (inputs, initializers, node outputs).</summary>
    public IEnumerable<string> DefinedNames =>
        _graphInputs.Concat(_initializers.Keys).Concat(_producers.Keys).Distinct(StringComparer.Ordinal);
}
