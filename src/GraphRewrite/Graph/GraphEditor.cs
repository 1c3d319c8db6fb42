using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.GraphRewrite.Graph;

/// <summary>What <see cref="GraphEditor.ReplaceAllUses"/> does when the replaced value is one of the graph's outputs.</summary>
public enum GraphOutputUse
{
    /// <summary>Refuse (the default): the caller must decide, since the model's interface would change.</summary>
    Error,
    /// <summary>Leave the graph output reading the old value; the caller keeps the old value produced.</summary>
    Keep,
    /// <summary>The graph output is renamed to the new value: the model's output name changes.</summary>
    Rename,
    /// <summary>Append Identity(new) -> old so the output keeps its name; the caller removes the old producer.</summary>
    Identity,
}

/// <summary>
/// Small editing operations on a model's main graph that keep it well-formed:
/// <list type="bullet">
/// <item>names: <see cref="UniqueValueName"/> / <see cref="UniqueNodeName"/> never collide with any name in the
/// model, subgraphs included, nor with names handed out earlier by this editor;</item>
/// <item><see cref="ReplaceAllUses"/>: rewires direct inputs, reads inside If/Loop/Scan subgraphs and, as chosen,
/// graph outputs;</item>
/// <item><see cref="RemoveNode"/>, <see cref="InsertAfter"/>, <see cref="InsertBefore"/>, <see cref="AddInitializer"/>,
/// <see cref="RemoveUnusedInitializers"/> (subgraph reads count as uses), <see cref="EnsureOpset"/>.</item>
/// </list>
/// <item><see cref="ReplaceNode"/> (a node by a node list, in place), <see cref="RemoveIfUnused"/> (a constant that lost
/// its last reader), <see cref="AddInitializer(TensorProto, bool)"/> keeping IR &lt; 4's initializers-as-inputs.</item>
/// </list>
/// <see cref="Index"/> is a <see cref="GraphIndex"/> kept current: every edit through this editor invalidates it, and it
/// is rebuilt once on the next read, not once per lookup.
/// Names are collected once; after editing the graph by hand (not through this editor) call <see cref="Refresh"/>.
/// This is the only editor of graphs in src/GraphRewrite: rewrites, lowerings and the auto-tuner's restore all edit here.
/// </summary>
public sealed class GraphEditor
{
    private readonly HashSet<string> _valueNames = new(StringComparer.Ordinal);
    private readonly HashSet<string> _nodeNames = new(StringComparer.Ordinal);
    private GraphIndex? _index;

    public ModelProto Model { get; }
    public GraphProto Graph => Model.Graph;

    /// <summary>Lookups over the main graph as it is now (rebuilt lazily after an edit made through this editor).</summary>
    public GraphIndex Index => _index ??= new GraphIndex(Model);

    /// <summary>Model IR version below 4: every initializer is also listed as a graph input.</summary>
    public bool ListsInitializersAsInputs => Model.IrVersion < 4;

    public GraphEditor(ModelProto model)
    {
        Model = model;
        if (model.Graph is null) throw new ArgumentException("model has no graph", nameof(model));
        Refresh();
    }

    /// <summary>Re-collects every name in the model (call after edits made without this editor).</summary>
    public void Refresh()
    {
        _index = null;
        _valueNames.Clear();
        _nodeNames.Clear();
        foreach (var g in Topology.AllGraphs(Model))
        {
            foreach (var v in g.Input.Concat(g.Output).Concat(g.ValueInfo)) _valueNames.Add(v.Name);
            foreach (var t in g.Initializer) _valueNames.Add(t.Name);
            foreach (var s in g.SparseInitializer) if (s.Values is not null) _valueNames.Add(s.Values.Name);
            foreach (var n in g.Node)
            {
                if (n.Name.Length > 0) _nodeNames.Add(n.Name);
                foreach (var v in n.Input.Concat(n.Output)) if (v.Length > 0) _valueNames.Add(v);
            }
        }
    }

    /// <summary>A value name starting with <paramref name="hint"/> that nothing in the model uses; reserved from now on.</summary>
    public string UniqueValueName(string hint) => Reserve(_valueNames, hint);

    /// <summary>A node name starting with <paramref name="hint"/> that no node in the model has; reserved from now on.</summary>
    public string UniqueNodeName(string hint) => Reserve(_nodeNames, hint);

    /// <summary>A name used neither by a value nor by a node (for lowerings that name a node and its output alike); reserved in both.</summary>
    public string UniqueName(string hint)
    {
        if (string.IsNullOrEmpty(hint)) hint = "v";
        string name = hint;
        for (long i = 1; _valueNames.Contains(name) || _nodeNames.Contains(name); i++) name = $"{hint}_{i}";
        _valueNames.Add(name);
        _nodeNames.Add(name);
        return name;
    }

    private static string Reserve(HashSet<string> taken, string hint)
    {
        if (string.IsNullOrEmpty(hint)) hint = "v";
        if (taken.Add(hint)) return hint;
        for (long i = 1; ; i++)
        {
            var name = $"{hint}_{i}";
            if (taken.Add(name)) return name;
        }
    }

    /// <summary>
    /// Makes every reader of <paramref name="oldValue"/> read <paramref name="newValue"/> instead: node inputs of the
    /// main graph, nodes (and outputs) of subgraphs that read it from the outer scope (not those that define their own
    /// value of that name), and the main graph's outputs as <paramref name="graphOutputs"/> says.
    /// <paramref name="except"/> keeps its inputs (e.g. a node just inserted after the producer that reads the old value).
    /// Returns how many references changed.
    /// </summary>
    public int ReplaceAllUses(string oldValue, string newValue, GraphOutputUse graphOutputs = GraphOutputUse.Error, NodeProto? except = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(oldValue);
        ArgumentException.ThrowIfNullOrEmpty(newValue);
        if (oldValue == newValue) return 0;
        var outputs = Graph.Output.Where(o => o.Name == oldValue).ToList();
        if (outputs.Count > 0 && graphOutputs == GraphOutputUse.Error)
            throw new InvalidOperationException(
                $"value '{oldValue}' is a graph output; choose how to handle it (GraphOutputUse.Keep, Rename or Identity)");

        _index = null;
        int changed = ReplaceInNodes(Graph, oldValue, newValue, except);
        switch (graphOutputs)
        {
            case GraphOutputUse.Rename:
                foreach (var o in outputs) { o.Name = newValue; changed++; }
                break;
            case GraphOutputUse.Identity when outputs.Count > 0:
                var id = new NodeProto { OpType = Ops.Identity.OpType, Name = UniqueNodeName($"{oldValue}_identity") };
                id.Input.Add(newValue);
                id.Output.Add(oldValue);
                Graph.Node.Add(id);
                changed++;
                break;
        }
        _valueNames.Add(newValue);
        return changed;
    }

    private static int ReplaceInNodes(GraphProto graph, string oldValue, string newValue, NodeProto? except)
    {
        int changed = 0;
        foreach (var n in graph.Node)
        {
            if (ReferenceEquals(n, except)) continue;
            for (int i = 0; i < n.Input.Count; i++)
                if (n.Input[i] == oldValue) { n.Input[i] = newValue; changed++; }
            foreach (var sg in Topology.Subgraphs(n))
            {
                // A subgraph that defines its own value of that name shadows the outer one: its reads are not ours.
                if (Topology.DefinedNames(sg).Contains(oldValue)) continue;
                changed += ReplaceInNodes(sg, oldValue, newValue, except);
                foreach (var o in sg.Output)
                    if (o.Name == oldValue) { o.Name = newValue; changed++; }
            }
        }
        return changed;
    }

    /// <summary>
    /// Removes <paramref name="node"/> from whichever graph holds it. Refuses while its outputs are still used
    /// (by nodes, subgraphs or graph outputs) unless <paramref name="allowDanglingUses"/>.
    /// </summary>
    public void RemoveNode(NodeProto node, bool allowDanglingUses = false)
    {
        var graph = Owner(node);
        if (!allowDanglingUses)
        {
            var outs = node.Output.Where(o => o.Length > 0).ToHashSet(StringComparer.Ordinal);
            var user = graph.Node.FirstOrDefault(n => !ReferenceEquals(n, node) && Topology.NodeReads(n).Any(outs.Contains));
            if (user is not null)
                throw new InvalidOperationException(
                    $"cannot remove node {Topology.Label(node, IndexOf(graph, node))}: node {Topology.Label(user, IndexOf(graph, user))} still reads its output");
            var output = graph.Output.FirstOrDefault(o => outs.Contains(o.Name));
            if (output is not null)
                throw new InvalidOperationException(
                    $"cannot remove node {Topology.Label(node, IndexOf(graph, node))}: its output '{output.Name}' is a graph output");
        }
        _index = null;
        graph.Node.RemoveAt(IndexOf(graph, node));
    }

    /// <summary>Inserts <paramref name="nodes"/> right after <paramref name="anchor"/>, in its graph (see <see cref="Prepare"/>; all are checked before any is inserted).</summary>
    public void InsertAfter(NodeProto anchor, params NodeProto[] nodes)
    {
        var graph = Owner(anchor);
        Insert(graph, IndexOf(graph, anchor) + 1, nodes);
    }

    /// <summary>Inserts <paramref name="nodes"/> right before <paramref name="anchor"/>, in its graph (see <see cref="Prepare"/>; all are checked before any is inserted).</summary>
    public void InsertBefore(NodeProto anchor, params NodeProto[] nodes)
    {
        var graph = Owner(anchor);
        Insert(graph, IndexOf(graph, anchor), nodes);
    }

    /// <summary>Appends <paramref name="nodes"/> to the main graph (see <see cref="Prepare"/>; all are checked before any is inserted).</summary>
    public void Append(params NodeProto[] nodes) => Insert(Graph, Graph.Node.Count, nodes);

    private void Insert(GraphProto graph, int index, NodeProto[] nodes)
    {
        var defined = Topology.DefinedNames(graph);
        foreach (var n in nodes) Prepare(graph, n, defined);
        _index = null;
        for (int i = 0; i < nodes.Length; i++) graph.Node.Insert(index + i, nodes[i]);
    }

    /// <summary>
    /// Checks a node before insertion: unnamed nodes get a unique name, a name already used by another node is refused,
    /// and an output that something in the graph already produces (or that is an input/initializer) is refused.
    /// </summary>
    private void Prepare(GraphProto graph, NodeProto node, HashSet<string> defined)
    {
        if (IndexOf(graph, node) >= 0) throw new InvalidOperationException($"node {Topology.Label(node, IndexOf(graph, node))} is already in the graph");
        if (node.Name.Length == 0) node.Name = UniqueNodeName(node.OpType.Length > 0 ? node.OpType : "node");
        else if (!_nodeNames.Add(node.Name))
            throw new InvalidOperationException($"node name '{node.Name}' is already used in the model");
        foreach (var o in node.Output.Where(o => o.Length > 0))
        {
            if (!defined.Add(o))
                throw new InvalidOperationException($"node '{node.Name}': output '{o}' is already defined in graph '{graph.Name}'");
            _valueNames.Add(o);
        }
        foreach (var i in node.Input) if (i.Length > 0) _valueNames.Add(i);
    }

    /// <summary>Adds an initializer to the main graph; its name must not be defined there yet.</summary>
    public void AddInitializer(TensorProto tensor)
    {
        ArgumentException.ThrowIfNullOrEmpty(tensor.Name);
        if (Topology.DefinedNames(Graph).Contains(tensor.Name))
            throw new InvalidOperationException($"initializer '{tensor.Name}': the name is already defined in graph '{Graph.Name}'");
        _index = null;
        Graph.Initializer.Add(tensor);
        _valueNames.Add(tensor.Name);
    }

    /// <summary>
    /// Removes initializers that nothing reads — no node, no subgraph, no graph output — in the main graph and in
    /// every subgraph. Initializers that are also graph inputs are part of the interface and are kept.
    /// Returns the removed names.
    /// </summary>
    public IReadOnlyList<string> RemoveUnusedInitializers()
    {
        var removed = new List<string>();
        foreach (var g in Topology.AllGraphs(Model))
        {
            var reads = new HashSet<string>(StringComparer.Ordinal);
            foreach (var n in g.Node) foreach (var r in Topology.NodeReads(n)) reads.Add(r);
            foreach (var o in g.Output) reads.Add(o.Name);
            var inputs = g.Input.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
            for (int i = g.Initializer.Count - 1; i >= 0; i--)
            {
                var name = g.Initializer[i].Name;
                if (reads.Contains(name) || inputs.Contains(name)) continue;
        _index = null;
                g.Initializer.RemoveAt(i);
                removed.Add(name);
            }
        }
        removed.Reverse();
        return removed;
    }

    /// <summary>
    /// Makes sure <paramref name="domain"/> is imported at least at <paramref name="version"/>; adds the import when
    /// missing. An existing lower version is refused: raising it would change the meaning of nodes already there.
    /// Returns the imported version.
    /// </summary>
    public long EnsureOpset(string domain, long version)
    {
        var existing = Model.OpsetImport.FirstOrDefault(o =>
            Ops.IsDefaultDomain(domain) ? Ops.IsDefaultDomain(o.Domain) : o.Domain == domain);
        if (existing is null)
        {
            Model.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = version });
            return version;
        }
        if (existing.Version < version)
            throw new InvalidOperationException(
                $"model imports domain '{(Ops.IsDefaultDomain(domain) ? Ops.OnnxDomainAlias : domain)}' at version {existing.Version}, {version} is needed; upgrading an opset is not done implicitly");
        return existing.Version;
    }

    /// <summary>
    /// Replaces <paramref name="node"/> by <paramref name="replacement"/> at its position (its inputs are defined before
    /// it, so the order stays topological); <paramref name="alsoRemove"/> (e.g. a fused activation whose output the
    /// replacement now writes) goes too, with the value_info of the value that no longer exists. Unnamed replacement
    /// nodes get a unique name; an output something else in the graph already defines is refused (the replaced
    /// nodes' outputs excepted).
    /// </summary>
    public void ReplaceNode(NodeProto node, IReadOnlyList<NodeProto> replacement, NodeProto? alsoRemove = null)
    {
        var graph = Owner(node);
        int at = IndexOf(graph, node);
        graph.Node.RemoveAt(at);
        if (alsoRemove is not null)
        {
            int extra = IndexOf(graph, alsoRemove);
            if (extra < 0) throw new InvalidOperationException($"node {Topology.Label(alsoRemove, -1)} is not in the graph of {Topology.Label(node, at)}");
            graph.Node.RemoveAt(extra);
            if (extra < at) at--;
            var gone = node.Output.Where(o => o.Length > 0 && !replacement.Any(r => r.Output.Contains(o))).ToHashSet(StringComparer.Ordinal);
            foreach (var vi in graph.ValueInfo.Where(v => gone.Contains(v.Name)).ToList()) graph.ValueInfo.Remove(vi);
        }
        _index = null;
        // The replaced nodes' own outputs may be written again (even where a broken graph defines them twice).
        var freed = node.Output.Concat(alsoRemove?.Output ?? []).ToHashSet(StringComparer.Ordinal);
        var defined = Topology.DefinedNames(graph);
        defined.ExceptWith(freed);
        foreach (var n in replacement)
        {
            if (n.Name.Length == 0) n.Name = UniqueNodeName(n.OpType.Length > 0 ? n.OpType : "node");
            else _nodeNames.Add(n.Name);
            foreach (var o in n.Output.Where(o => o.Length > 0))
            {
                if (!defined.Add(o) && !freed.Contains(o))
                    throw new InvalidOperationException($"node '{n.Name}': output '{o}' is already defined in graph '{graph.Name}'");
                _valueNames.Add(o);
            }
        }
        for (int i = 0; i < replacement.Count; i++) graph.Node.Insert(at + i, replacement[i]);
    }

    /// <summary>
    /// Adds an initializer to the main graph; with <paramref name="keepIrConvention"/> and a model of IR &lt; 4 it is
    /// listed as a graph input too, as that IR requires of every initializer.
    /// </summary>
    public void AddInitializer(TensorProto tensor, bool keepIrConvention)
    {
        AddInitializer(tensor);
        if (keepIrConvention && ListsInitializersAsInputs)
            Graph.Input.Add(ModelBuilder.ValueInfo(tensor.Name, (TensorProto.Types.DataType)tensor.DataType, tensor.Dims.ToArray()));
    }

    /// <summary>
    /// Removes the initializer (with its value_info) or Constant node defining <paramref name="value"/> in the main graph
    /// when nothing reads it any more: no node at any depth (subgraphs capture outer values), no graph output. In an IR
    /// &lt; 4 model its graph-input entry goes too (it was listed only because that IR lists every initializer).
    /// Returns true when something was removed.
    /// </summary>
    public bool RemoveIfUnused(string value)
    {
        if (string.IsNullOrEmpty(value) || Graph.Output.Any(o => o.Name == value)) return false;
        if (Graph.Node.Any(n => Reads(n, value))) return false;
        _index = null;
        var init = Graph.Initializer.FirstOrDefault(t => t.Name == value);
        if (init is not null)
        {
            Graph.Initializer.Remove(init);
            var vi = Graph.ValueInfo.FirstOrDefault(v => v.Name == value);
            if (vi is not null) Graph.ValueInfo.Remove(vi);
            var input = ListsInitializersAsInputs ? Graph.Input.FirstOrDefault(v => v.Name == value) : null;
            if (input is not null) Graph.Input.Remove(input);
            return true;
        }
        var constant = Graph.Node.FirstOrDefault(n => n.OpType == Ops.Constant.OpType && Ops.IsDefaultDomain(n.Domain) && n.Output.Contains(value));
        if (constant is null) return false;
        Graph.Node.Remove(constant);
        return true;
    }

    private static bool Reads(NodeProto n, string value) =>
        n.Input.Contains(value) || Topology.Subgraphs(n).Any(g => g.Node.Any(m => Reads(m, value)));

    /// <summary>Stable topological sort of every graph (see <see cref="Topology.Order"/>); true if anything moved.</summary>
    public bool SortTopologically()
    {
        _index = null;
        return Topology.SortInPlace(Model);
    }

    // Protobuf messages compare by value: two identical nodes are equal, so nodes are found by reference.
    private static int IndexOf(GraphProto graph, NodeProto node)
    {
        for (int i = 0; i < graph.Node.Count; i++) if (ReferenceEquals(graph.Node[i], node)) return i;
        return -1;
    }

    private GraphProto Owner(NodeProto node) =>
        Topology.AllGraphs(Model).FirstOrDefault(g => IndexOf(g, node) >= 0)
        ?? throw new InvalidOperationException($"node {Topology.Label(node, -1)} is not in the model");
}
