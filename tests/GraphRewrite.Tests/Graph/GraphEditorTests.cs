using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;
using static OnnxDeconv.GraphRewrite.Tests.Graph.SubgraphModels;

namespace OnnxDeconv.GraphRewrite.Tests.Graph;

public class GraphEditorTests
{
    private static IReadOnlyList<TensorValue> RunIfModel(ModelProto model, bool cond)
    {
        var inputs = new[]
        {
            TensorValue.Float("X", [2], [-1.5f, 0.75f]),
            new TensorValue("cond", TensorProto.Types.DataType.Bool, [], new[] { cond }),
            TensorValue.Float("also_input", [2], [0f, 0f]),
        };
        return OrtRunner.RunOnce(model, inputs);
    }

    [Fact]
    public void UniqueNames_NeverCollideWithAnythingInTheModel_IncludingSubgraphs()
    {
        var editor = new GraphEditor(IfModel());
        Assert.Equal("a_1", editor.UniqueValueName("a"));
        Assert.Equal("a_2", editor.UniqueValueName("a")); // handed-out names are reserved
        Assert.Equal("t0_1", editor.UniqueValueName("t0")); // defined only inside the then branch
        Assert.Equal("used_in_branch_1", editor.UniqueValueName("used_in_branch"));
        Assert.Equal("fresh", editor.UniqueValueName("fresh"));
        Assert.Equal("tanh_1", editor.UniqueNodeName("tanh")); // a node name inside a branch
        Assert.Equal("relu_1", editor.UniqueNodeName("relu"));
        Assert.Equal("new_node", editor.UniqueNodeName("new_node"));
    }

    [Fact]
    public void ReplaceAllUses_RewiresBranchReads_AndThePrunedModelComputesTheSame()
    {
        var model = IfModel();
        var expectedThen = RunIfModel(model, true)[0].AsFloats();
        var expectedElse = RunIfModel(model, false)[0].AsFloats();

        var editor = new GraphEditor(model);
        var relu = Find(model, "relu");
        var a2 = editor.UniqueValueName("a");
        editor.InsertAfter(relu, Node(Ops.Relu.OpType, "", ["X"], [a2]));
        Assert.Equal(2, editor.ReplaceAllUses("a", a2)); // the Tanh and the Sigmoid inside the branches
        editor.RemoveNode(relu);

        Assert.Equal(["Relu", "If"], model.Graph.Node.Select(n => n.OpType));
        Assert.Equal(a2, Find(model, "tanh").Input[0]);
        Assert.Equal(a2, Find(model, "sigmoid").Input[0]);
        Assert.Equal("Relu", model.Graph.Node[0].Name); // an unnamed inserted node gets a unique name
        Assert.Equal(expectedThen, RunIfModel(model, true)[0].AsFloats());
        Assert.Equal(expectedElse, RunIfModel(model, false)[0].AsFloats());
    }

    [Fact]
    public void ReplaceAllUses_InsertedReaderCanBeExcluded()
    {
        var model = IfModel();
        var editor = new GraphEditor(model);
        var id = Node(Ops.Identity.OpType, "id", ["a"], ["a_id"]);
        editor.InsertAfter(Find(model, "relu"), id);
        editor.ReplaceAllUses("a", "a_id", except: id);
        Assert.Equal("a", id.Input[0]); // not a self-loop
        Assert.Equal("a_id", Find(model, "tanh").Input[0]);
        Assert.True(Topology.IsSorted(model.Graph));
    }

    [Fact]
    public void ReplaceAllUses_SubgraphDefiningTheSameName_IsLeftAlone()
    {
        var model = IfModel();
        var elseBranch = Find(model, "if").Attribute[1].G;
        elseBranch.Node.Insert(0, Node(Ops.Relu.OpType, "inner", ["X"], ["a"])); // shadows the outer "a"
        new GraphEditor(model).ReplaceAllUses("a", "b");
        Assert.Equal("b", Find(model, "tanh").Input[0]);
        Assert.Equal("a", Find(model, "sigmoid").Input[0]);
    }

    [Fact]
    public void ReplaceAllUses_GraphOutput_IsHandledAsChosen()
    {
        var model = IfModel();
        Assert.Throws<InvalidOperationException>(() => new GraphEditor(model).ReplaceAllUses("y", "z"));

        var keep = IfModel();
        new GraphEditor(keep).ReplaceAllUses("y", "z", GraphOutputUse.Keep);
        Assert.Equal("y", keep.Graph.Output[0].Name);

        var rename = IfModel();
        new GraphEditor(rename).ReplaceAllUses("y", "z", GraphOutputUse.Rename);
        Assert.Equal("z", rename.Graph.Output[0].Name);

        var identity = IfModel();
        var editor = new GraphEditor(identity);
        var ifNode = Find(identity, "if");
        ifNode.Output[0] = "z"; // the If now produces z; the interface still promises y
        editor.ReplaceAllUses("y", "z", GraphOutputUse.Identity);
        Assert.Equal("y", identity.Graph.Output[0].Name);
        var last = identity.Graph.Node[^1];
        Assert.Equal((Ops.Identity.OpType, "z", "y"), (last.OpType, last.Input[0], last.Output[0]));
        Assert.Equal(RunIfModel(IfModel(), true)[0].AsFloats(), RunIfModel(identity, true)[0].AsFloats());
    }

    [Fact]
    public void RemoveNode_RefusesWhileItsOutputIsStillRead_EvenOnlyInsideABranch()
    {
        var model = IfModel();
        var editor = new GraphEditor(model);
        var e = Assert.Throws<InvalidOperationException>(() => editor.RemoveNode(Find(model, "relu")));
        Assert.Contains("'if'", e.Message, StringComparison.Ordinal);
        Assert.Contains("graph output", Assert.Throws<InvalidOperationException>(() => editor.RemoveNode(Find(model, "if"))).Message, StringComparison.Ordinal);

        editor.RemoveNode(Find(model, "relu"), allowDanglingUses: true);
        Assert.Equal(["if"], model.Graph.Node.Select(n => n.Name));
        editor.RemoveNode(Find(model, "tanh"), allowDanglingUses: true); // inside a branch
        Assert.Equal(["add_in_branch"], Find(model, "if").Attribute[0].G.Node.Select(n => n.Name));
    }

    [Fact]
    public void RemoveNode_RemovesThatNodeNotAnEqualOne()
    {
        var model = IfModel();
        var twinA = Node(Ops.Relu.OpType, "", ["X"], []);
        var twinB = Node(Ops.Relu.OpType, "", ["X"], []);
        model.Graph.Node.Add(twinA);
        model.Graph.Node.Add(twinB);
        Assert.Equal(twinA, twinB); // protobuf value equality
        new GraphEditor(model).RemoveNode(twinB);
        Assert.Same(twinA, model.Graph.Node[^1]);
        Assert.Throws<InvalidOperationException>(() => new GraphEditor(model).RemoveNode(twinB)); // no longer in the model
    }

    [Fact]
    public void Insert_BeforeAndAfter_PlacesNodes_AndRefusesDuplicates()
    {
        var model = IfModel();
        var editor = new GraphEditor(model);
        var relu = Find(model, "relu");
        editor.InsertBefore(relu, Node(Ops.Relu.OpType, "n1", ["X"], ["v1"]), Node(Ops.Relu.OpType, "n2", ["v1"], ["v2"]));
        editor.InsertAfter(relu, Node(Ops.Relu.OpType, "n3", ["a"], ["v3"]));
        Assert.Equal(["n1", "n2", "relu", "n3", "if"], model.Graph.Node.Select(n => n.Name));
        Assert.Equal("v1_1", editor.UniqueValueName("v1"));

        Assert.Contains("already defined", Assert.Throws<InvalidOperationException>(() =>
            editor.InsertAfter(relu, Node(Ops.Relu.OpType, "n4", ["X"], ["a"]))).Message, StringComparison.Ordinal);
        Assert.Contains("already defined", Assert.Throws<InvalidOperationException>(() =>
            editor.InsertAfter(relu, Node(Ops.Relu.OpType, "n5", ["X"], ["w"]), Node(Ops.Relu.OpType, "n6", ["X"], ["w"]))).Message, StringComparison.Ordinal);
        Assert.Contains("already used", Assert.Throws<InvalidOperationException>(() =>
            editor.InsertAfter(relu, Node(Ops.Relu.OpType, "tanh", ["X"], ["w2"]))).Message, StringComparison.Ordinal);
        Assert.Equal(5, model.Graph.Node.Count); // nothing inserted by the refused calls
    }

    [Fact]
    public void AddInitializer_RefusesADefinedName()
    {
        var model = IfModel();
        var editor = new GraphEditor(model);
        editor.AddInitializer(Tensors.FromFloats("w_new", [1], [1f]));
        Assert.Equal("w_new_1", editor.UniqueValueName("w_new"));
        Assert.Throws<InvalidOperationException>(() => editor.AddInitializer(Tensors.FromFloats("a", [1], [1f])));
        Assert.Throws<InvalidOperationException>(() => editor.AddInitializer(Tensors.FromFloats("unused", [1], [1f])));
    }

    [Fact]
    public void RemoveUnusedInitializers_KeepsBranchReadsInputsAndOutputs()
    {
        var model = IfModel();
        var removed = new GraphEditor(model).RemoveUnusedInitializers();
        Assert.Equal(["unused"], removed);
        Assert.Equal(["used_in_branch", "also_input", "out_init"], model.Graph.Initializer.Select(t => t.Name));
    }

    [Fact]
    public void EnsureOpset_AddsMissingDomains_AndRefusesSilentUpgrades()
    {
        var model = IfModel();
        var editor = new GraphEditor(model);
        Assert.Equal(17, editor.EnsureOpset("", 11));
        Assert.Equal(17, editor.EnsureOpset(Ops.OnnxDomainAlias, 17)); // "ai.onnx" is the default domain
        Assert.Equal(1, editor.EnsureOpset("com.example", 1));
        Assert.Equal(1, new GraphIndex(model).Opset("com.example"));
        var e = Assert.Throws<InvalidOperationException>(() => editor.EnsureOpset("", 22));
        Assert.Contains("17", e.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => editor.EnsureOpset("com.example", 2));
        Assert.Equal(2, model.OpsetImport.Count);
    }
}
