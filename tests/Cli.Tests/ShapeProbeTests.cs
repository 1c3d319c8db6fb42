using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;
using CT = OnnxDeconv.GraphRewrite.Ops.ConvTranspose;

namespace OnnxDeconv.Cli.Tests;

/// <summary>ShapeProbe: concrete intermediate shapes from one ONNX Runtime run on zero inputs.</summary>
public class ShapeProbeTests
{
    /// <summary>x [N, 2, H, W] -> ConvTranspose k3 s2 p1 op1 -> Reshape(flatten) : static inference cannot know H, W.</summary>
    private static ModelProto Model(long[] dims)
    {
        var b = new ModelBuilder("probe");
        b.Input("x", dims, symbolic: ["N", "C", "H", "W"]);
        b.Initializer("w", [2, 4, 3, 3], new float[72]);
        var y = b.Node(CT.OpType, ["x", "w"], [Attributes.Ints(CT.Strides, [2, 2]), Attributes.Ints(CT.Pads, [1, 1, 1, 1]), Attributes.Ints(CT.OutputPadding, [1, 1])], output: "y");
        var flat = b.Node(Ops.Reshape.OpType, [y, b.InitializerInt64("flat", [2], [0, -1])], output: "flat_y");
        b.Output(flat, null);
        return b.Build();
    }

    [Fact]
    public void Probe_IntermediateShapes_AreWhatOnnxRuntimeComputes_AndCallerModelIsUnchanged()
    {
        var model = Model([1, 2, 5, 7]);
        var before = ModelIO.Serialize(model);
        var r = ShapeProbe.Probe(model, ["y", "flat_y", "w", "x"]);
        Assert.Equal([1L, 4, 10, 14], r.Shapes["y"]);
        Assert.Equal([1L, 4 * 10 * 14], r.Shapes["flat_y"]);
        Assert.Equal([2L, 4, 3, 3], r.Shapes["w"]);
        Assert.Equal([1L, 2, 5, 7], r.Shapes["x"]);
        Assert.Equal(before, ModelIO.Serialize(model));
    }

    [Fact]
    public void Probe_SymbolicSpatialDims_ThrowNamingTheInputAndTheOption()
    {
        var model = Model([-1, 2, -1, -1]);
        var e = Assert.Throws<ShapeProbeException>(() => ShapeProbe.Probe(model, ["y"]));
        Assert.Equal(["x"], e.InputsNeedingShape);
        Assert.Contains("graph input 'x' has a symbolic or unknown dimension ([N,2,H,W])", e.Message);
        Assert.Contains("--shape x=", e.Message);

        var given = ShapeProbe.Probe(model, ["y"], new Dictionary<string, long[]> { ["x"] = [2, 2, 3, 4] });
        Assert.Equal([2L, 4, 6, 8], given.Shapes["y"]);
    }

    [Fact]
    public void Probe_SymbolicBatchOnly_IsTakenAsOneAndSaidSo()
    {
        var r = ShapeProbe.Probe(Model([-1, 2, 3, 3]), ["y"]);
        Assert.Equal([1L, 4, 6, 6], r.Shapes["y"]);
        Assert.Contains(r.Assumptions, a => a.Contains("input 'x': batch dimension 'N' taken as 1"));
    }

    [Fact]
    public void Probe_ShapeForUnknownInput_ThrowsListingRealInputs()
    {
        var e = Assert.Throws<OnnxDeconv.GraphRewrite.Verification.VerificationInputException>(() =>
            ShapeProbe.Probe(Model([1, 2, 3, 3]), ["y"], new Dictionary<string, long[]> { ["nope"] = [1] }));
        Assert.Contains("'nope', which is not a graph input (inputs: x)", e.Message);
    }

    [Fact]
    public void Probe_ModelOnnxRuntimeCannotRun_ThrowsShapeProbeExceptionNotOrtException()
    {
        var b = new ModelBuilder("bad");
        b.Input("x", [1, 2, 3, 3]);
        b.Initializer("w", [3, 4, 3, 3], new float[108]); // channel mismatch with x
        b.Output(b.Node(CT.OpType, ["x", "w"], output: "y"), null);
        var e = Assert.Throws<ShapeProbeException>(() => ShapeProbe.Probe(b.Build(), ["y"]));
        Assert.Contains("ONNX Runtime could not", e.Message);
    }
}

public class ShapeProbeExternalDataTests
{
    [Fact]
    public void Info_ModelWithExternalWeights_ProbesShapesUsingTheModelFolder()
    {
        // The weight lives in a side file next to the model: the probe runs a modified copy from memory and must
        // still find it (ONNX Runtime is told the model's folder).
        using var tmp = new CliHarness.TempDir();
        var b = new ModelBuilder("external");
        b.Input("x", [1, 2, -1, -1], symbolic: ["N", "C", "H", "W"]);
        var w = new TensorProto { Name = "w", DataType = (int)TensorProto.Types.DataType.Float, DataLocation = TensorProto.Types.DataLocation.External };
        w.Dims.AddRange([2, 4, 2, 2]);
        w.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = "weights.bin" });
        w.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = "0" });
        w.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = $"{32 * sizeof(float)}" });
        b.Graph.Initializer.Add(w);
        File.WriteAllBytes(tmp.File("weights.bin"), new byte[32 * sizeof(float)]);
        b.Output(b.Node(CT.OpType, ["x", "w"], [Attributes.Ints(CT.Strides, [2, 2])], output: "y", name: "up"), null);
        var path = tmp.File("model.onnx");
        ModelIO.Save(b.Build(), path, new ModelSaveOptions { SourceDirectory = tmp.Path });

        var r = CliHarness.Run("info", path, "--shape", "x=1,2,5,6", "--json");
        Assert.True(r.Code == 0, r.ToString());
        var ct = Assert.Single(r.Json().GetProperty("convTranspose").EnumerateArray());
        Assert.Equal([1L, 4, 10, 12], CliHarness.Longs(ct.GetProperty("outputShape")));
        Assert.Equal("probed", r.Json().GetProperty("shapeSource").GetString());
    }
}
