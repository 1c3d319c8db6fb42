using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Verification;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Tests.Verification;

// Verification tolerance: |a-b| <= atol + rtol*|b|, atol 1e-5, rtol 1e-4 (float32 defaults) unless a test says otherwise.
public class VerifierTests
{
    [Fact]
    public void Verify_IdenticalModels_PassesWithZeroError()
    {
        var m = VerificationModels.ConvTranspose();
        var r = Verifier.Verify(ModelSource.FromModel(m), ModelSource.FromModel(m.Clone()));
        Assert.True(r.Passed);
        var y = Assert.Single(r.Outputs);
        Assert.Equal("Y", y.Name);
        Assert.Equal(0, y.MaxAbsError);
        Assert.Equal(new long[] { 1, 3, 11, 11 }, y.ActualDims);
        Assert.Equal(new long[] { 1, 2, 5, 5 }, Assert.Single(r.Inputs).Dims);
    }

    [Fact]
    public void Verify_PerturbedWeights_FailsWithErrorAndWorstIndex()
    {
        var r = Verifier.Verify(ModelSource.FromModel(VerificationModels.ConvTranspose()),
            ModelSource.FromModel(VerificationModels.ConvTranspose(weightScale: 1.01f)));
        Assert.False(r.Passed);
        var y = Assert.Single(r.Outputs);
        Assert.True(y.MaxAbsError > 1e-3, $"max abs {y.MaxAbsError}");
        Assert.NotNull(y.WorstIndex);
        Assert.True(y.Mismatches > 0);
    }

    [Fact]
    public void Verify_RandomInputs_AreSeededAndUniformInMinusOneToOne()
    {
        var m = VerificationModels.ConvTranspose();
        var a = Verifier.Verify(ModelSource.FromModel(m), ModelSource.FromModel(m), new VerifyOptions { Seed = 7 });
        var b = Verifier.Verify(ModelSource.FromModel(m), ModelSource.FromModel(m), new VerifyOptions { Seed = 7 });
        var c = Verifier.Verify(ModelSource.FromModel(m), ModelSource.FromModel(m), new VerifyOptions { Seed = 8 });
        var xa = a.Inputs[0].AsFloats();
        Assert.Equal(xa, b.Inputs[0].AsFloats());
        Assert.NotEqual(xa, c.Inputs[0].AsFloats());
        Assert.All(xa, v => Assert.InRange(v, -1f, 1f));
        Assert.Contains(xa, v => v < -0.5f);
        Assert.Contains(xa, v => v > 0.5f);
    }

    [Fact]
    public void Verify_SymbolicBatchOnly_WithoutShape_TakesBatchAsOne_AndSaysSo()
    {
        // docs/shapes.md: a symbolic batch (dim 0) is taken as 1 and the report says so.
        var m = VerificationModels.ConvTranspose(dims: [-1, 2, 5, 5]);
        var r = Verifier.Verify(ModelSource.FromModel(m), ModelSource.FromModel(m));
        Assert.True(r.Passed);
        Assert.Equal(new long[] { 1, 2, 5, 5 }, r.Inputs.Single(t => t.Name == "X").Dims);
        Assert.Contains("batch dimension 'N' taken as 1", r.InputSource);
        Assert.Contains("--shape X=1,2,5,5", r.InputSource);
    }

    [Fact]
    public void Verify_SymbolicSpatialDims_WithoutShape_NamesInputAndDim_WithShape_Passes()
    {
        // The batch is taken as 1, the first symbolic spatial dim has no value: the error names it and an example --shape.
        var m = VerificationModels.ConvTranspose(dims: [-1, 2, -1, -1]);
        var e = Assert.Throws<VerificationInputException>(() => Verifier.Verify(ModelSource.FromModel(m), ModelSource.FromModel(m)));
        Assert.Contains("input 'X'", e.Message);
        Assert.Contains("dim 2 ('H')", e.Message);
        Assert.Contains("--shape X=1,2,64,64", e.Message);
        var r = Verifier.Verify(ModelSource.FromModel(m), ModelSource.FromModel(m),
            new VerifyOptions { Shapes = ShapeOverrides.Parse(["X=2,2,4,6"]) });
        Assert.True(r.Passed);
        Assert.Equal(new long[] { 2, 3, 9, 13 }, r.Outputs[0].ActualDims);
        Assert.DoesNotContain("taken as 1", r.InputSource);
    }

    [Fact]
    public void Verify_ShapeForUnknownInput_IsRejected()
    {
        var m = VerificationModels.ConvTranspose();
        var e = Assert.Throws<VerificationInputException>(() => Verifier.Verify(ModelSource.FromModel(m), ModelSource.FromModel(m),
            new VerifyOptions { Shapes = ShapeOverrides.Parse(["nope=1"]) }));
        Assert.Contains("'nope'", e.Message);
    }

    [Fact]
    public void Verify_IntegerAndBoolInputs_HonourDeclaredTypes()
    {
        var m = VerificationModels.MixedTypes();
        var r = Verifier.Verify(ModelSource.FromModel(m), ModelSource.FromModel(m), new VerifyOptions { Seed = 3 });
        Assert.True(r.Passed);
        var i = Assert.IsType<long[]>(r.Inputs.Single(t => t.Name == "I").Data);
        Assert.All(i, v => Assert.InRange(v, 0, 3));
        Assert.Equal(DataType.Bool, r.Inputs.Single(t => t.Name == "M").ElementType);
    }

    [Fact]
    public void Verify_RewrittenMissingAnOutput_Fails()
    {
        var orig = VerificationModels.ConvTranspose();
        var rew = orig.Clone();
        rew.Graph.Output[0].Name = "Z";
        rew.Graph.Node[0].Output[0] = "Z";
        var r = Verifier.Verify(ModelSource.FromModel(orig), ModelSource.FromModel(rew));
        Assert.False(r.Passed);
        Assert.Contains("missing", r.Outputs[0].Problem);
    }

    [Fact]
    public void Verify_RewrittenThatOnnxRuntimeRejects_FailsWithError_DoesNotThrow()
    {
        var orig = VerificationModels.ConvTranspose();
        var rew = orig.Clone();
        rew.Graph.Node[0].OpType = "NoSuchOp";
        var r = Verifier.Verify(ModelSource.FromModel(orig), ModelSource.FromModel(rew, "broken"));
        Assert.False(r.Passed);
        Assert.StartsWith("broken: ONNX Runtime cannot load it", r.Error);
    }

    [Fact]
    public void Verify_OriginalThatOnnxRuntimeRejects_IsAnInputError()
    {
        var orig = VerificationModels.ConvTranspose();
        orig.Graph.Node[0].OpType = "NoSuchOp";
        var e = Assert.Throws<VerificationInputException>(() => Verifier.Verify(ModelSource.FromModel(orig, "orig.onnx"), ModelSource.FromModel(orig)));
        Assert.StartsWith("orig.onnx: ONNX Runtime cannot load it", e.Message);
    }

    [Fact]
    public void Verify_InputFiles_AreBoundInOrder_AndBadFileIsNamed()
    {
        var dir = VerificationModels.TempDir();
        try
        {
            var m = VerificationModels.ConvTranspose();
            var x = Tensors.FromFloats("whatever", [1, 2, 5, 5], VerificationModels.Random(50, 9));
            File.WriteAllBytes(Path.Combine(dir, "input_0.pb"), x.ToByteArray());
            var r = Verifier.Verify(ModelSource.FromModel(m), ModelSource.FromModel(m), new VerifyOptions { InputsDir = dir });
            Assert.True(r.Passed);
            Assert.Equal("X", r.Inputs[0].Name);
            Assert.Equal(VerificationModels.Random(50, 9), r.Inputs[0].AsFloats());

            File.WriteAllBytes(Path.Combine(dir, "input_0.pb"), [0xff, 0xff, 0xff]);
            var e = Assert.Throws<VerificationInputException>(() => Verifier.Verify(ModelSource.FromModel(m), ModelSource.FromModel(m), new VerifyOptions { InputsDir = dir }));
            Assert.Contains("input_0.pb", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Verify_ModelWithExternalData_ByPathAndInMemoryWithDataFolder_Passes()
    {
        var dir = VerificationModels.TempDir();
        try
        {
            var m = VerificationModels.ConvTranspose();
            var w = m.Graph.Initializer.Single(t => t.Name == "W");
            File.WriteAllBytes(Path.Combine(dir, "weights.bin"), w.RawData.ToByteArray());
            var ext = m.Clone();
            var we = ext.Graph.Initializer.Single(t => t.Name == "W");
            we.ClearRawData();
            we.DataLocation = TensorProto.Types.DataLocation.External;
            we.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = "weights.bin" });
            var path = VerificationModels.Save(ext, dir);

            var byPath = Verifier.Verify(ModelSource.FromModel(m), ModelSource.FromFile(path));
            Assert.True(byPath.Passed);
            Assert.Equal(0, byPath.Outputs[0].MaxAbsError);
            var inMemory = Verifier.Verify(ModelSource.FromModel(m), ModelSource.FromModel(ext, "ext", externalDataFolder: dir));
            Assert.True(inMemory.Passed, inMemory.Error);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Verify_ConfigureHook_IsAppliedToSessions()
    {
        var m = VerificationModels.ConvTranspose();
        int calls = 0;
        var r = Verifier.Verify(ModelSource.FromModel(m), ModelSource.FromModel(m), new VerifyOptions
        {
            Configure = so => { calls++; Assert.Equal(GraphOptimizationLevel.ORT_DISABLE_ALL, so.GraphOptimizationLevel); },
        });
        Assert.True(r.Passed);
        Assert.Equal(2, calls);
    }
}
