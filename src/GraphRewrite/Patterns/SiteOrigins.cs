using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.GraphRewrite.Patterns;

/// <summary>Finds the provenance (<see cref="SiteOrigin"/>) of a ConvTranspose the pre-passes derived.</summary>
public static class SiteOrigins
{
    /// <summary>Nodes an original pattern may have (Resize+Conv, a zero-insertion chain + Pad + Conv, + BatchNormalization).</summary>
    public const int MaxPatternNodes = 24;

    /// <summary>
    /// For a ConvTranspose the pre-passes made: the user's nodes between its input and output (walking back from the
    /// output in <paramref name="original"/> to its input and constants). Null for a ConvTranspose of the user's own, or a
    /// pattern that reads any other non-constant value, has nodes the pre-passed graph still has, or is not plain ONNX.
    /// </summary>
    public static SiteOrigin? Find(ModelProto original, ModelProto prePassed, NodeProto node)
    {
        if (node.Input.Count == 0 || node.Output.Count != 1) return null;
        string x = node.Input[0], y = node.Output[0];
        var producers = new Dictionary<string, NodeProto>(StringComparer.Ordinal);
        foreach (var n in original.Graph.Node)
            foreach (var o in n.Output.Where(o => o.Length > 0))
                producers.TryAdd(o, n);
        if (!producers.TryGetValue(y, out var last) || ConvTransposeNode.Is(last)) return null;
        var stillThere = prePassed.Graph.Node.Where(n => !ReferenceEquals(n, node)).SelectMany(n => n.Output).ToHashSet(StringComparer.Ordinal);
        var initializers = original.Graph.Initializer.GroupBy(t => t.Name).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var graphInputs = original.Graph.Input.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var visited = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        var needed = new Dictionary<string, TensorProto>(StringComparer.Ordinal);
        var stack = new Stack<string>([y]);
        while (stack.Count > 0)
        {
            string t = stack.Pop();
            if (t.Length == 0 || t == x || needed.ContainsKey(t)) continue;
            if (initializers.TryGetValue(t, out var init) && !(graphInputs.Contains(t) && original.IrVersion >= 4))
            {
                needed[t] = init;
                continue;
            }
            if (stillThere.Contains(t) || !producers.TryGetValue(t, out var p)) return null;
            if (!visited.Add(p)) continue;
            if (p.Domain.Length > 0 || p.Attribute.Any(a => a.G is not null || a.Graphs.Count > 0) || visited.Count > MaxPatternNodes) return null;
            foreach (var i in p.Input) stack.Push(i);
        }
        // Every value the pattern computes must stay inside it, except Y.
        var inside = visited.SelectMany(n => n.Output).Where(o => o != y).ToHashSet(StringComparer.Ordinal);
        bool leaks = original.Graph.Node.Where(n => !visited.Contains(n)).Any(n => n.Input.Any(inside.Contains))
            || original.Graph.Output.Any(o => inside.Contains(o.Name));
        if (leaks) return null;
        return new SiteOrigin(original.Graph.Node.Where(visited.Contains).ToList(), needed.Values.ToList(),
            new GraphIndex(original).Opset(Ops.DefaultDomain) ?? 0);
    }
}
