using OnnxDeconv.GraphRewrite.Graph;
using static OnnxDeconv.GraphRewrite.Tests.Graph.SubgraphModels;

namespace OnnxDeconv.GraphRewrite.Tests.Graph;

public class GraphIndexTests
{
    [Fact]
    public void ValueReadOnlyByAnIfBranch_CountsAsUsed()
    {
        var model = IfModel();
        var index = new GraphIndex(model);
        var ifNode = Find(model, "if");

        Assert.Empty(index.Consumers("a")); // direct inputs only, as before
        Assert.Same(ifNode, Assert.Single(index.SubgraphReaders("a")));
        Assert.Same(ifNode, Assert.Single(index.Uses("a")));
        Assert.True(index.IsUsed("a"));
        Assert.False(index.IsUsedOnlyBy("a", ifNode)); // an implicit read cannot be folded into the If
        Assert.Same(ifNode, Assert.Single(index.Uses("used_in_branch")));
        Assert.False(index.IsUsed("unused"));
        Assert.True(index.IsUsed("out_init")); // a graph output
    }

    [Fact]
    public void DirectSingleConsumer_IsUsedOnlyByIt()
    {
        var model = IfModel();
        var index = new GraphIndex(model);
        var relu = Find(model, "relu");
        Assert.Same(relu, Assert.Single(index.Uses("X")));
        Assert.True(index.IsUsedOnlyBy("X", relu));
        Assert.False(index.IsUsedOnlyBy("y", Find(model, "if"))); // graph output, produced by the If
    }
}
