using Google.Protobuf;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Tests.IO;
using static OnnxDeconv.GraphRewrite.Tests.Graph.SubgraphModels;

namespace OnnxDeconv.GraphRewrite.Tests.Graph;

public class TopologyTests
{
    private static GraphProto Chain(params NodeProto[] nodes)
    {
        var g = new GraphProto { Name = "g" };
        g.Node.AddRange(nodes);
        return g;
    }

    private static string[] Names(IEnumerable<NodeProto> nodes) => nodes.Select(n => n.Name).ToArray();

    [Fact]
    public void Order_KeepsTheOriginalOrderWhereItIsValid()
    {
        // B reads A's output but comes first; C is independent and must keep its place relative to A.
        var g = Chain(
            Node(Ops.Relu.OpType, "B", ["a"], ["b"]),
            Node(Ops.Relu.OpType, "C", ["x"], ["c"]),
            Node(Ops.Relu.OpType, "A", ["x"], ["a"]),
            Node(Ops.Relu.OpType, "D", ["b", "c"], ["d"]));
        Assert.False(Topology.IsSorted(g));
        Assert.Equal(["C", "A", "B", "D"], Names(Topology.Order(g)));

        var sorted = Chain(g.Node.Select(n => n.Clone()).ToArray());
        Assert.True(Topology.SortInPlace(sorted));
        Assert.True(Topology.IsSorted(sorted));
        Assert.False(Topology.SortInPlace(sorted)); // already sorted: nothing moves
        Assert.Equal(["C", "A", "B", "D"], Names(sorted.Node));
    }

    [Fact]
    public void Order_AnIfReadingAValueInsideItsBranch_ComesAfterTheProducer()
    {
        var model = IfModel();
        var g = model.Graph;
        var relu = g.Node[0];
        g.Node.RemoveAt(0);
        g.Node.Add(relu); // If first, then the Relu whose output its branches read
        Assert.False(Topology.IsSorted(g));
        Assert.Equal(["relu", "if"], Names(Topology.Order(g)));
        Assert.Equal(["a", "used_in_branch"], Topology.OuterReads(g.Node[0].Attribute[0].G).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Order_Cycle_IsAClearErrorNamingTheNodes()
    {
        var g = Chain(
            Node(Ops.Relu.OpType, "start", ["x"], ["s"]),
            Node(Ops.Add.OpType, "p", ["s", "q_out"], ["p_out"]),
            Node(Ops.Relu.OpType, "q", ["p_out"], ["q_out"]),
            Node(Ops.Relu.OpType, "after", ["q_out"], ["z"]));
        var e = Assert.Throws<GraphCycleException>(() => Topology.Order(g));
        Assert.Equal(["'p'", "'q'"], e.Nodes.Order(StringComparer.Ordinal));
        Assert.Contains("graph 'g' has a cycle", e.Message, StringComparison.Ordinal);

        var self = Chain(new NodeProto { OpType = Ops.Relu.OpType, Input = { "r" }, Output = { "r" } });
        Assert.Equal(["#0 Relu"], Assert.Throws<GraphCycleException>(() => Topology.Order(self)).Nodes);
    }

    [Fact]
    public void Save_SortsUnsortedGraphsAndSubgraphs_AndRefusesCycles()
    {
        using var tmp = new TempFolder();
        var model = IfModel();
        var thenBranch = model.Graph.Node[1].Attribute[0].G;
        var first = thenBranch.Node[0];
        thenBranch.Node.RemoveAt(0);
        thenBranch.Node.Add(first); // Add before the Tanh it reads
        var before = model.ToByteArray();
        ModelIO.Save(model, tmp["m.onnx"]);
        Assert.Equal(before, model.ToByteArray()); // the caller's model is not reordered
        var saved = ModelIO.Load(tmp["m.onnx"]);
        Assert.Equal(["tanh", "add_in_branch"], Names(saved.Graph.Node[1].Attribute[0].G.Node));

        var cyclic = IfModel();
        cyclic.Graph.Node[0].Input[0] = "y"; // relu reads the If's output, the If reads relu's output
        var e = Assert.Throws<ModelFormatException>(() => ModelIO.Save(cyclic, tmp["c.onnx"]));
        Assert.Contains(tmp["c.onnx"], e.Message, StringComparison.Ordinal);
        Assert.Contains("'relu'", e.Message, StringComparison.Ordinal);
        Assert.Contains("'if'", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(tmp["c.onnx"]));
    }
}
