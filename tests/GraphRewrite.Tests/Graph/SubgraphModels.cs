using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;
using AttrType = OnnxDeconv.GraphRewrite.Onnx.AttributeProto.Types.AttributeType;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Tests.Graph;

/// <summary>Models with If subgraphs for index/editor/topology tests.</summary>
internal static class SubgraphModels
{
    // ONNX's If op and its attributes (the op is not one the rewriter handles, so it has no Ops entry).
    public const string If = "If";
    public const string ThenBranch = "then_branch";
    public const string ElseBranch = "else_branch";

    public static NodeProto Node(string op, string name, string[] inputs, string[] outputs)
    {
        var n = new NodeProto { OpType = op, Name = name };
        n.Input.AddRange(inputs);
        n.Output.AddRange(outputs);
        return n;
    }

    public static GraphProto Branch(string name, params NodeProto[] nodes)
    {
        var g = new GraphProto { Name = name };
        g.Node.AddRange(nodes);
        g.Output.Add(ModelBuilder.ValueInfo(nodes[^1].Output[0], DataType.Float, [2]));
        return g;
    }

    public static NodeProto IfNode(string name, string cond, string output, GraphProto thenBranch, GraphProto elseBranch)
    {
        var n = Node(If, name, [cond], [output]);
        n.Attribute.Add(new AttributeProto { Name = ThenBranch, Type = AttrType.Graph, G = thenBranch });
        n.Attribute.Add(new AttributeProto { Name = ElseBranch, Type = AttrType.Graph, G = elseBranch });
        return n;
    }

    /// <summary>
    /// relu: Relu(X) -> a; if: If(cond) { then: Tanh(a) -> t ; else: Sigmoid(a) -> e } -> y; graph output y.
    /// "a" is read only inside the branches. Initializers: "used_in_branch" (read by the then branch's Add),
    /// "unused", "also_input" (a graph input too), "out_init" (a graph output).
    /// </summary>
    public static ModelProto IfModel()
    {
        var b = new ModelBuilder("main", opset: 17);
        b.Input("X", [2]);
        b.Input("cond", [], DataType.Bool);
        b.Input("also_input", [2]);
        b.Initializer("used_in_branch", [2], [1f, 2f]);
        b.Initializer("unused", [2], [3f, 4f]);
        b.Initializer("also_input", [2], [5f, 6f]);
        b.Initializer("out_init", [2], [7f, 8f]);
        var model = b.Build();
        var g = model.Graph;
        g.Node.Add(Node(Ops.Relu.OpType, "relu", ["X"], ["a"]));
        var thenBranch = Branch("then",
            Node(Ops.Tanh.OpType, "tanh", ["a"], ["t0"]),
            Node(Ops.Add.OpType, "add_in_branch", ["t0", "used_in_branch"], ["t"]));
        var elseBranch = Branch("else", Node(Ops.Sigmoid.OpType, "sigmoid", ["a"], ["e"]));
        g.Node.Add(IfNode("if", "cond", "y", thenBranch, elseBranch));
        g.Output.Add(ModelBuilder.ValueInfo("y", DataType.Float, [2]));
        g.Output.Add(ModelBuilder.ValueInfo("out_init", DataType.Float, [2]));
        return model;
    }

    public static NodeProto Find(ModelProto m, string name) =>
        Topology.AllGraphs(m).SelectMany(g => g.Node).Single(n => n.Name == name);
}
