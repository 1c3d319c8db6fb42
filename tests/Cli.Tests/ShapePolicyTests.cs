using OnnxDeconv.Cli;
using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Shapes;
using OnnxDeconv.GraphRewrite.Verification;
using static OnnxDeconv.Cli.Tests.VerifyFixtures;
using CT = OnnxDeconv.GraphRewrite.Ops.ConvTranspose;

namespace OnnxDeconv.Cli.Tests;

// The one shape policy (docs/shapes.md) as every command applies it. Equivalence through ONNX Runtime at the float32
// tolerance |a-b| <= 1e-5 + 1e-4*|b|.
public sealed class ShapePolicyTests : IDisposable
{
    private readonly VerifyFixtures _f = new();
    public void Dispose() => _f.Dispose();

    /// <summary>x [N,2,H,W] (dims as given, -1 symbolic) -> ConvTranspose k3 s2 with output_shape [10,10] -> y.</summary>
    private static ModelProto OutputShapeModel(long[] dims)
    {
        var b = new ModelBuilder("os");
        b.Input("x", dims, symbolic: ["N", "C", "H", "W"]);
        b.Initializer("w", [2, 3, 3, 3], Random(54, 7));
        b.Initializer("b", [3], Random(3, 8));
        b.Node(CT.OpType, ["x", "w", "b"], [Attributes.Ints(CT.Strides, [2, 2]), Attributes.Ints(CT.OutputShape, [10, 10])], output: "y", name: "up");
        b.Output("y", null);
        return b.Build();
    }

    [Theory]
    [InlineData("info")]
    [InlineData("explain")]
    [InlineData("verify")]
    [InlineData("optimize")]
    [InlineData("test")]
    public void RepeatedShapeName_IsInvalidInput_InEveryCommand(string command)
    {
        var m = _f.Save(ConvTranspose(symbolic: true), "m.onnx");
        string[] args = command switch
        {
            "verify" => ["verify", m, m],
            "optimize" => ["optimize", m, "-o", _f.PathOf("o.onnx")],
            "test" => ["test", "--rewrite", _f.Dir],
            _ => [command, m],
        };
        var (code, _, err) = Run([.. args, "--shape", "X=1,2,5,5", "--shape", "X=1,2,6,6"]);
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Contains("input 'X' is given twice", err);
    }

    [Fact]
    public void ShapeNamingMissingInput_FailsBeforeAnyAutoTiming_NamingTheInputs()
    {
        var m = _f.Save(ConvTranspose(), "m.onnx");
        var (code, _, err) = Run("optimize", m, "-o", _f.PathOf("o.onnx"), "--target", "auto", "--shape", "nope=1,2,5,5");
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Contains("--shape names 'nope', which is not a graph input (inputs: X)", err);
        Assert.DoesNotContain("auto: timing", err);
        Assert.False(File.Exists(_f.PathOf("o.onnx")));
    }

    [Fact]
    public void SymbolicBatch_IsTakenAsOne_ByOptimizeAndVerify_AndSaidSo()
    {
        // Before: optimize --target portable stopped here asking for --shape; explain/info/auto took the batch as 1.
        var b = new ModelBuilder("batch");
        b.Input("X", [-1, 2, 5, 5], symbolic: ["N", "C", "H", "W"]);
        b.Initializer("W", [2, 3, 3, 3], Random(54, 1));
        b.Node(CT.OpType, ["X", "W"], [Attributes.Ints(CT.Strides, [2, 2])], output: "Y", name: "up1");
        b.Output("Y", null);
        var m = _f.Save(b.Build(), "m.onnx");
        var (code, stdout, err) = Run("optimize", m, "-o", _f.PathOf("o.onnx"), "--target", "portable");
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("batch dimension 'N' taken as 1", stdout + err);
        var v = Run("verify", m, _f.PathOf("o.onnx"));
        Assert.Equal(ExitCodes.Ok, v.Exit);
        Assert.Contains("batch dimension 'N' taken as 1", v.Out);
        Assert.Contains("X[1,2,5,5]", v.Out);
    }

    [Fact]
    public void SymbolicSpatialDim_WithoutShape_StopsNamingInputAndExample()
    {
        var m = _f.Save(ConvTranspose(symbolic: true), "m.onnx");
        var (code, _, err) = Run("verify", m, m);
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Contains("input 'X' has symbolic dim 2 ('H') in shape [N,2,H,W]: give it with --shape X=1,2,64,64", err);
    }

    [Fact]
    public void OutputShapeSite_InputSizeFromShape_IsRewrittenSpecialised_AndMatchesOnnxRuntime()
    {
        var original = OutputShapeModel([-1, 2, -1, -1]);
        var m = _f.Save(original, "m.onnx");
        var outPath = _f.PathOf("o.onnx");
        var (code, stdout, err) = Run("optimize", m, "-o", outPath, "--target", "portable", "--shape", "x=1,2,5,5");
        Assert.True(code == ExitCodes.Ok, stdout + err);
        Assert.Contains("specialised to input size 5x5", stdout);
        Assert.Contains("graph input 'x' now declared [N,2,5,5]", stdout);
        var written = ModelIO.Load(outPath);
        Assert.DoesNotContain(written.Graph.Node, n => n.OpType == CT.OpType);
        // Batch 2 still runs (the pads do not depend on it); the result equals the original's through ONNX Runtime.
        var report = Verifier.Verify(ModelSource.FromModel(original), ModelSource.FromModel(written),
            new VerifyOptions { Shapes = new Dictionary<string, long[]> { ["x"] = [2, 2, 5, 5] } });
        Assert.True(report.Passed, report.Error);
        Assert.Equal([2L, 3, 10, 10], report.Outputs[0].ActualDims!);
        // Another size is refused by the declared input, not computed wrongly.
        var other = Assert.Throws<VerificationInputException>(() => Verifier.Verify(ModelSource.FromModel(written), ModelSource.FromModel(written),
            new VerifyOptions { Shapes = new Dictionary<string, long[]> { ["x"] = [1, 2, 4, 4] } }));
        Assert.Contains("dim 2 is fixed to 5", other.Message);
    }

    [Fact]
    public void OutputShapeSite_UnknownInputSize_IsLeftAlone_ModelByteIdentical()
    {
        var original = OutputShapeModel([-1, 2, -1, -1]);
        var m = _f.Save(original, "m.onnx");
        var outPath = _f.PathOf("o.onnx");
        var (code, stdout, _) = Run("optimize", m, "-o", outPath, "--target", "portable", "--verify", "none", "--json");
        Assert.Equal(ExitCodes.Ok, code);
        // --json: the reason unwrapped by the terminal-width table.
        Assert.Contains("output_shape with an unknown input size", stdout);
        Assert.True(stdout.Replace("\\u0027", "'").Contains("give the input's size with --shape"), stdout); // JSON escapes quotes
        Assert.Equal(ModelIO.Serialize(original), ModelIO.Serialize(ModelIO.Load(outPath)));
    }

    [Fact]
    public void VerifyNodes_WithShape_OnSymbolicModel_Passes()
    {
        // Before: "--shape names 'x', which is not a graph input (inputs: ...)" and "the shape of '...' is unknown".
        var b = new ModelBuilder("deep");
        b.Input("x", [-1, 2, -1, -1], symbolic: ["N", "C", "H", "W"]);
        b.Initializer("w0", [2, 2, 1, 1], Random(4, 3));
        var h = b.Node(Ops.Conv.OpType, ["x", "w0"], output: "h");
        var r = b.Node(Ops.Relu.OpType, [h], output: "r");
        b.Initializer("w", [2, 3, 3, 3], Random(54, 4));
        b.Node(CT.OpType, [r, "w"], [Attributes.Ints(CT.Strides, [2, 2])], output: "y", name: "up");
        b.Output("y", null);
        var m = _f.Save(b.Build(), "m.onnx");
        var (code, stdout, err) = Run("optimize", m, "-o", _f.PathOf("o.onnx"), "--target", "portable", "--verify", "nodes", "--shape", "x=1,2,6,7");
        Assert.True(code == ExitCodes.Ok, stdout + err);
        Assert.Contains("PASS", stdout);
        // Without --shape the symbolic spatial dims have no value: a clear stop naming the input.
        var (code2, _, err2) = Run("optimize", m, "-o", _f.PathOf("o2.onnx"), "--target", "portable", "--verify", "nodes");
        Assert.Equal(ExitCodes.InvalidInput, code2);
        Assert.Contains("--shape x=", err2);
    }

    [Fact]
    public void Test_OverSeveralFolders_ShapeAppliesWhereTheInputExists()
    {
        static ModelProto Named(string input)
        {
            var b = new ModelBuilder("c");
            b.Input(input, [-1, 2, -1, -1], symbolic: ["N", "C", "H", "W"]);
            b.Initializer("w", [2, 3, 3, 3], Random(54, 5));
            b.Node(CT.OpType, [input, "w"], [Attributes.Ints(CT.Strides, [2, 2])], output: "y", name: "up");
            b.Output("y", null);
            return b.Build();
        }
        var root = _f.PathOf("cases");
        foreach (var (dir, input) in new[] { ("case_a", "a"), ("case_b", "b") })
        {
            Directory.CreateDirectory(Path.Combine(root, dir));
            ModelIO.Save(Named(input), Path.Combine(root, dir, "model.onnx"));
        }
        var (code, stdout, err) = Run("test", "--rewrite", "--target", "portable", root, "--shape", "a=1,2,4,4", "--shape", "b=1,2,3,5");
        Assert.True(code == ExitCodes.Ok, stdout + err);
        Assert.Contains("2 passed, 0 failed", stdout);
        var (bad, _, badErr) = Run("test", "--rewrite", "--target", "portable", root, "--shape", "c=1,2,4,4");
        Assert.Equal(ExitCodes.InvalidInput, bad);
        Assert.Contains("'c', which is not a graph input of any case (inputs: a, b)", badErr);
    }

    [Fact]
    public void ShapeSpecs_ParseAndApplicable()
    {
        var s = ShapeSpecs.Parse(["x=1,2,3x4"]);
        Assert.Equal([1L, 2, 3, 4], s["x"]);
        Assert.Throws<VerificationInputException>(() => ShapeSpecs.Parse(["x=1,0"]));
        Assert.Throws<VerificationInputException>(() => ShapeSpecs.Parse(["=1"]));
        var model = ConvTranspose();
        Assert.Empty(ShapeSpecs.ApplicableTo(model, s));
        Assert.Single(ShapeSpecs.ApplicableTo(model, new Dictionary<string, long[]> { ["X"] = [1, 2, 5, 5], ["x"] = [1] }));
    }
}
