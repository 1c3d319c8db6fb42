using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.GraphRewrite.Rewrites;

/// <summary>
/// Small graph edits the rewrites need: unique names, replacing a node by a node list in place, dropping constants
/// that lost their last reader. Kept private to the rewrites until the shared GraphEditor lands.
/// </summary>
internal sealed class RewriteContext
{
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    public GraphProto Graph { get; }

    public RewriteContext(GraphProto graph)
    {
        Graph = graph;
        foreach (var v in graph.Input) _names.Add(v.Name);
        foreach (var v in graph.Output) _names.Add(v.Name);
        foreach (var v in graph.ValueInfo) _names.Add(v.Name);
        foreach (var t in graph.Initializer) _names.Add(t.Name);
        foreach (var n in graph.Node)
        {
            _names.Add(n.Name);
            foreach (var o in n.Output) _names.Add(o);
        }
    }

    /// <summary>A name used nowhere in the graph yet (values and node names share one namespace here, which is stricter than needed).</summary>
    public string UniqueName(string stem)
    {
        string name = stem;
        for (int i = 1; !_names.Add(name); i++) name = $"{stem}_{i}";
        return name;
    }

    /// <summary>Replaces <paramref name="node"/> by <paramref name="replacement"/> at the same position (inputs are defined before it, so order stays topological).</summary>
    public void ReplaceNode(NodeProto node, IReadOnlyList<NodeProto> replacement)
    {
        int at = Graph.Node.IndexOf(node);
        if (at < 0) throw new InvalidOperationException($"node '{node.Name}' is not in graph '{Graph.Name}'");
        Graph.Node.RemoveAt(at);
        for (int i = 0; i < replacement.Count; i++) Graph.Node.Insert(at + i, replacement[i]);
    }

    /// <summary>
    /// Removes the initializer or Constant node defining <paramref name="value"/> when nothing reads it any more
    /// (nodes at any depth, including subgraphs that capture outer values, and graph outputs). With
    /// <paramref name="alsoGraphInput"/> (IR &lt; 4, where initializers are listed as inputs) its input entry goes too.
    /// </summary>
    public void RemoveIfUnused(string value, bool alsoGraphInput = false)
    {
        if (string.IsNullOrEmpty(value) || IsRead(Graph, value) || Graph.Output.Any(o => o.Name == value)) return;
        var init = Graph.Initializer.FirstOrDefault(t => t.Name == value);
        if (init is not null)
        {
            Graph.Initializer.Remove(init);
            var vi = Graph.ValueInfo.FirstOrDefault(v => v.Name == value);
            if (vi is not null) Graph.ValueInfo.Remove(vi);
            var input = alsoGraphInput ? Graph.Input.FirstOrDefault(v => v.Name == value) : null;
            if (input is not null) Graph.Input.Remove(input);
            return;
        }
        var constant = Graph.Node.FirstOrDefault(n => n.OpType == Ops.Constant.OpType && Ops.IsDefaultDomain(n.Domain) && n.Output.Contains(value));
        if (constant is not null) Graph.Node.Remove(constant);
    }

    private static bool IsRead(GraphProto graph, string value)
    {
        foreach (var n in graph.Node)
        {
            if (n.Input.Contains(value)) return true;
            foreach (var a in n.Attribute)
            {
                if (a.G is not null && IsRead(a.G, value)) return true;
                foreach (var g in a.Graphs)
                    if (IsRead(g, value)) return true;
            }
        }
        return false;
    }
}
