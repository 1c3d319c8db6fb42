using Google.Protobuf;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Runtime;

namespace OnnxDeconv.GraphRewrite.Tests.IO;

// The spill file that keeps a large rewrite's new weights out of memory, and the location mapping that lets reads and
// Save find them next to the output while the model's other external data stays relative to the input's folder.
public class SpillFileTests
{
    private static TensorProto Init(ModelProto m, string name) => m.Graph.Initializer.Single(t => t.Name == name);

    [Fact]
    public void Spill_MovesLargeInitializersOnly_ReadsBack_AndIsDeletedOnDispose()
    {
        using var tmp = new TempFolder();
        var model = TestModels.ConvModel(); // W 1152 bytes, B 32 bytes
        var w = Tensors.ToFloats(Init(model, "W"));
        var b = Tensors.ToFloats(Init(model, "B"));
        string spillPath;
        using (var spill = new SpillFile(tmp.Path, "out.onnx", threshold: 1024))
        {
            spillPath = Path.Combine(spill.Directory, spill.Location);
            Assert.Equal(1, spill.SpillInitializers(model));
            Assert.Equal(0, spill.SpillInitializers(model)); // already external: nothing moves twice
            Assert.True(ExternalData.IsExternal(Init(model, "W")));
            Assert.False(ExternalData.IsExternal(Init(model, "B"))); // under the threshold: stays inline
            Assert.Equal(1152, spill.Bytes);
            Assert.Equal(w, ModelIO.TensorFloats(model, Init(model, "W")));
            Assert.Equal(b, ModelIO.TensorFloats(model, Init(model, "B")));
            Assert.True(File.Exists(spillPath));
        }
        Assert.False(File.Exists(spillPath));
    }

    [Fact]
    public void Save_StreamsSpilledAndInputExternalData_IntoOneSideFile_ThatRuns()
    {
        using var tmp = new TempFolder();
        var inDir = Directory.CreateDirectory(tmp["in"]).FullName;
        var outDir = Directory.CreateDirectory(tmp["out"]).FullName;
        ModelIO.Save(TestModels.ConvModel(m: 16), Path.Combine(inDir, "m.onnx"), new ModelSaveOptions { ExternalDataThreshold = 1024 });
        var input = ModelIO.Load(Path.Combine(inDir, "m.onnx"));
        Assert.True(ExternalData.IsExternal(Init(input, "W")));
        var x = TensorValue.Float("X", [1, 4, 8, 8], Enumerable.Range(0, 256).Select(i => (i % 7) * 0.1f).ToArray());
        float[] expected;
        using (var ort = new OrtRunner(Path.Combine(inDir, "m.onnx"))) expected = ort.Run([x])[0].AsFloats();

        // A new inline weight (here: W re-added under another name with the bias doubled) goes to the spill file.
        var work = input.Clone();
        ModelIO.InheritSource(input, work);
        var b2 = Tensors.FromFloats("B2", [16], new float[16]);
        var big = Tensors.FromFloats("Wcopy", [16, 4, 3, 3], ModelIO.TensorFloats(work, Init(work, "W")));
        work.Graph.Initializer.Add(big);
        work.Graph.Initializer.Add(b2);
        work.Graph.Node[0].Input[1] = "Wcopy";
        work.Graph.Initializer.Remove(Init(work, "W"));
        using var spill = new SpillFile(outDir, "out.onnx", threshold: 1024);
        Assert.Equal(1, spill.SpillInitializers(work));

        var outPath = Path.Combine(outDir, "out.onnx");
        ModelIO.Save(work, outPath, new ModelSaveOptions { ExternalDataThreshold = 1024, SourceDirectory = inDir });
        var written = ModelIO.Load(outPath);
        Assert.Equal("out.onnx.data", ExternalData.Describe(Init(written, "Wcopy")).Location);
        ModelIO.ValidateExternalData(written);
        // Tolerance |a-b| <= 1e-5 + 1e-4*|b| (float32): the same weights, so the same outputs.
        float[] actual;
        using (var ort = new OrtRunner(outPath)) actual = ort.Run([x])[0].AsFloats();
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-5 + 1e-4 * Math.Abs(expected[i]), $"Y[{i}] = {actual[i]}, expected {expected[i]}");
    }

    [Fact]
    public void Spill_WithoutMapping_ExternalReadFailsClearly()
    {
        // Negative: a spilled location read relative to the wrong folder is a clear error, not wrong data.
        using var tmp = new TempFolder();
        var model = TestModels.ConvModel();
        using var spill = new SpillFile(tmp["out"], "o.onnx", threshold: 1024);
        spill.SpillInitializers(model);
        var other = model.Clone();
        ModelIO.SetSourceDirectory(other, tmp.Path);
        var e = Assert.Throws<ModelFormatException>(() => ModelIO.TensorFloats(other, Init(other, "W")));
        Assert.Contains("W", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FromFloatsOwned_SameBytesAsFromFloats()
    {
        var data = Enumerable.Range(0, 100).Select(i => i * 0.25f - 3f).ToArray();
        Assert.Equal(Tensors.FromFloats("t", [10, 10], data).ToByteArray(), Tensors.FromFloatsOwned("t", [10, 10], data).ToByteArray());
        Assert.Throws<ArgumentException>(() => Tensors.FromFloatsOwned("t", [3, 3], data));
    }

    [Fact]
    public void Optimizer_ExternalWeights_CallsAfterNodePerRewrite_AndReadsThemLazily()
    {
        using var tmp = new TempFolder();
        var b = new GraphRewrite.Graph.ModelBuilder("ct", opset: 17);
        b.Input("X", [1, 4, 5, 5]);
        b.Initializer("W", [4, 8, 3, 3], Enumerable.Range(0, 288).Select(i => (i % 11) * 0.05f).ToArray());
        b.Node(Ops.ConvTranspose.OpType, ["X", "W"], [GraphRewrite.Graph.Attributes.Ints(Ops.ConvTranspose.Strides, [2, 2])], output: "Y", name: "up");
        b.Output("Y", [1, 8, 11, 11]);
        var path = tmp["ct.onnx"];
        ModelIO.Save(b.Build(), path, new ModelSaveOptions { ExternalDataThreshold = 1024 });
        var model = ModelIO.Load(path);
        int calls = 0;
        var result = Optimizer.Run(model, new OptimizeOptions { AfterNode = _ => calls++ });
        Assert.True(result.Changed, string.Join("; ", result.Nodes.Select(n => n.Reason)));
        Assert.True(calls >= 1);
        Assert.True(ExternalData.IsExternal(Init(model, "W"))); // the input model is untouched

        // Negative: a clone nobody told where its data lives is left alone, with the reason.
        var orphan = Optimizer.Run(model.Clone(), new OptimizeOptions());
        Assert.False(orphan.Changed);
        Assert.Contains("external data", orphan.Nodes.Single().Reason, StringComparison.Ordinal);
    }
}
