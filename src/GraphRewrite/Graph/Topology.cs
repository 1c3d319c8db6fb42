using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.GraphRewrite.Graph;

/// <summary>A graph's nodes cannot be ordered because they depend on each other; <see cref="Nodes"/> is one such cycle.</summary>
public sealed class GraphCycleException(string graphName, IReadOnlyList<string> nodes)
    : InvalidInputException($"graph '{graphName}' has a cycle: {string.Join(" -> ", nodes)} -> {nodes[0]}")
{
    public string GraphName { get; } = graphName;
    public IReadOnlyList<string> Nodes { get; } = nodes;
}

/// <summary>
/// Structure of graphs with subgraphs (If branches, Loop/Scan bodies, any GRAPH/GRAPHS attribute): walking them,
/// the outer values a subgraph reads, and a stable topological sort.
/// </summary>
public static class Topology
{
    /// <summary>Subgraphs held directly by <paramref name="node"/>'s attributes.</summary>
    public static IEnumerable<GraphProto> Subgraphs(NodeProto node)
    {
        foreach (var a in node.Attribute)
        {
            if (a.G is not null) yield return a.G;
            foreach (var g in a.Graphs) yield return g;
        }
    }

    /// <summary><paramref name="root"/> and every graph nested in it, depth-first, parents first.</summary>
    public static IEnumerable<GraphProto> AllGraphs(GraphProto root)
    {
        yield return root;
        foreach (var n in root.Node)
            foreach (var sg in Subgraphs(n))
                foreach (var g in AllGraphs(sg))
                    yield return g;
    }

    /// <summary>Every graph of the model: main graph and its subgraphs, training graphs, subgraphs inside functions.</summary>
    public static IEnumerable<GraphProto> AllGraphs(ModelProto model)
    {
        if (model.Graph is not null)
            foreach (var g in AllGraphs(model.Graph)) yield return g;
        foreach (var ti in model.TrainingInfo)
        {
            if (ti.Initialization is not null) foreach (var g in AllGraphs(ti.Initialization)) yield return g;
            if (ti.Algorithm is not null) foreach (var g in AllGraphs(ti.Algorithm)) yield return g;
        }
        foreach (var f in model.Functions)
            foreach (var n in f.Node)
                foreach (var sg in Subgraphs(n))
                    foreach (var g in AllGraphs(sg)) yield return g;
    }

    /// <summary>Names <paramref name="graph"/> defines itself: inputs, initializers (dense and sparse) and node outputs.</summary>
    public static HashSet<string> DefinedNames(GraphProto graph)
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var i in graph.Input) set.Add(i.Name);
        foreach (var t in graph.Initializer) set.Add(t.Name);
        foreach (var s in graph.SparseInitializer) if (s.Values is not null) set.Add(s.Values.Name);
        foreach (var n in graph.Node) foreach (var o in n.Output) if (o.Length > 0) set.Add(o);
        return set;
    }

    /// <summary>
    /// Values <paramref name="graph"/> reads from its enclosing scopes: names used by its nodes (or nested subgraphs)
    /// or listed as its outputs that it does not define itself.
    /// </summary>
    public static HashSet<string> OuterReads(GraphProto graph)
    {
        var defined = DefinedNames(graph);
        var reads = new HashSet<string>(StringComparer.Ordinal);
        foreach (var n in graph.Node)
            foreach (var r in NodeReads(n))
                if (!defined.Contains(r)) reads.Add(r);
        foreach (var o in graph.Output)
            if (o.Name.Length > 0 && !defined.Contains(o.Name)) reads.Add(o.Name);
        return reads;
    }

    /// <summary>Every value <paramref name="node"/> needs before it runs: its inputs and what its subgraphs read from outside.</summary>
    public static IEnumerable<string> NodeReads(NodeProto node)
    {
        foreach (var i in node.Input) if (i.Length > 0) yield return i;
        foreach (var sg in Subgraphs(node))
            foreach (var r in OuterReads(sg)) yield return r;
    }

    /// <summary>A readable label for a node in messages: its name, or its position and op type when unnamed.</summary>
    public static string Label(NodeProto node, int index) =>
        node.Name.Length > 0 ? $"'{node.Name}'" : $"#{index} {node.OpType}";

    /// <summary>
    /// A topological order of <paramref name="graph"/>'s nodes that keeps the original order wherever it is already
    /// valid (Kahn's algorithm, always taking the earliest ready node). Values produced outside the graph (inputs,
    /// initializers, outer scope, or produced by nobody) impose no order. Throws <see cref="GraphCycleException"/>.
    /// </summary>
    public static List<NodeProto> Order(GraphProto graph)
    {
        var nodes = graph.Node;
        int count = nodes.Count;
        var producer = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < count; i++)
            foreach (var o in nodes[i].Output)
                if (o.Length > 0) producer.TryAdd(o, i);

        var preds = new List<int>[count];
        var succs = new List<int>[count];
        var indegree = new int[count];
        for (int i = 0; i < count; i++) { preds[i] = []; succs[i] = []; }
        for (int i = 0; i < count; i++)
        {
            foreach (var r in NodeReads(nodes[i]).Distinct(StringComparer.Ordinal))
            {
                if (!producer.TryGetValue(r, out var p)) continue;
                if (preds[i].Contains(p)) continue;
                preds[i].Add(p);
                succs[p].Add(i);
                indegree[i]++;
            }
        }

        var ready = new PriorityQueue<int, int>();
        for (int i = 0; i < count; i++) if (indegree[i] == 0) ready.Enqueue(i, i);
        var order = new List<NodeProto>(count);
        var done = new bool[count];
        while (ready.TryDequeue(out var i, out _))
        {
            order.Add(nodes[i]);
            done[i] = true;
            foreach (var s in succs[i])
                if (--indegree[s] == 0) ready.Enqueue(s, s);
        }
        if (order.Count == count) return order;

        // Every node left has a predecessor that is also left: walk predecessors until one repeats to name a cycle.
        int start = Array.FindIndex(done, d => !d);
        var seenAt = new Dictionary<int, int>();
        var path = new List<int>();
        int cur = start;
        while (!seenAt.ContainsKey(cur))
        {
            seenAt[cur] = path.Count;
            path.Add(cur);
            cur = preds[cur].First(p => !done[p]);
        }
        var cycle = path.Skip(seenAt[cur]).Reverse().Select(k => Label(nodes[k], k)).ToList();
        throw new GraphCycleException(graph.Name, cycle);
    }

    /// <summary>True when every node comes after the producers of what it reads (subgraphs not checked).</summary>
    public static bool IsSorted(GraphProto graph)
    {
        var producer = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < graph.Node.Count; i++)
            foreach (var o in graph.Node[i].Output)
                if (o.Length > 0) producer.TryAdd(o, i);
        for (int i = 0; i < graph.Node.Count; i++)
            foreach (var r in NodeReads(graph.Node[i]))
                if (producer.TryGetValue(r, out var p) && p >= i) return false;
        return true;
    }

    /// <summary>
    /// Sorts <paramref name="graph"/> and every subgraph in place; returns true if anything moved.
    /// Graphs already in a valid order are left untouched (so their bytes do not change).
    /// </summary>
    public static bool SortInPlace(GraphProto graph) => SortAll(AllGraphs(graph).ToList());

    /// <summary>Sorts every graph of <paramref name="model"/> in place (see <see cref="SortInPlace(GraphProto)"/>).</summary>
    public static bool SortInPlace(ModelProto model) => SortAll(AllGraphs(model).ToList());

    private static bool SortAll(List<GraphProto> graphs)
    {
        bool changed = false;
        foreach (var g in graphs)
        {
            if (IsSorted(g)) continue;
            var order = Order(g);
            g.Node.Clear();
            g.Node.AddRange(order);
            changed = true;
        }
        return changed;
    }
}
