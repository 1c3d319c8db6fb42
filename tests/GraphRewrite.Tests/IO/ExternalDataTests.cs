using Google.Protobuf;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Tests.IO;

public class ExternalDataTests
{
    private static TensorProto Init(ModelProto m, string name) => m.Graph.Initializer.Single(t => t.Name == name);

    private static string Entry(TensorProto t, string key) => t.ExternalData.Single(e => e.Key == key).Value;

    [Fact]
    public void Save_WithThreshold_MovesLargeInitializersToSideFile_AndReadsThemBack()
    {
        using var tmp = new TempFolder();
        var model = TestModels.ConvModel(); // W: 8*4*9 floats = 1152 bytes, B: 32 bytes
        var before = model.ToByteArray();
        var path = tmp["model.onnx"];
        ModelIO.Save(model, path, new ModelSaveOptions { ExternalDataThreshold = 256 });

        Assert.Equal(before, model.ToByteArray()); // the in-memory model is untouched
        Assert.True(File.Exists(tmp["model.onnx.data"]));
        Assert.Empty(Directory.GetFiles(tmp.Path, "*.tmp")); // no temp files left behind

        var loaded = ModelIO.Load(path);
        var w = Init(loaded, "W");
        Assert.True(ExternalData.IsExternal(w));
        Assert.False(w.HasRawData);
        Assert.Equal("model.onnx.data", Entry(w, ExternalData.LocationKey));
        Assert.Equal("0", Entry(w, ExternalData.OffsetKey));
        Assert.Equal("1152", Entry(w, ExternalData.LengthKey));
        Assert.False(ExternalData.IsExternal(Init(loaded, "B")));
        Assert.Equal(Tensors.ToFloats(Init(model, "W")), ModelIO.TensorFloats(loaded, w));
        Assert.Equal(Tensors.ToFloats(Init(model, "B")), ModelIO.TensorFloats(loaded, Init(loaded, "B")));
        Assert.True(new FileInfo(path).Length < 600, "the weights should not be in the model file");
    }

    [Fact]
    public void Save_TypedFieldTensor_IsExternalizedWithTheSameValues()
    {
        using var tmp = new TempFolder();
        var model = TestModels.ConvModel();
        var w = Init(model, "W");
        var values = Tensors.ToFloats(w);
        w.ClearRawData();
        w.FloatData.AddRange(values); // float_data instead of raw_data
        ModelIO.Save(model, tmp["m.onnx"], new ModelSaveOptions { ExternalDataThreshold = 16, Alignment = 4096 });
        var loaded = ModelIO.Load(tmp["m.onnx"]);
        Assert.Equal(values, ModelIO.TensorFloats(loaded, Init(loaded, "W")));
        Assert.Equal(Tensors.ToFloats(Init(TestModels.ConvModel(), "B")), ModelIO.TensorFloats(loaded, Init(loaded, "B")));
        Assert.Equal("0", Entry(Init(loaded, "W"), ExternalData.OffsetKey));
        Assert.Equal("4096", Entry(Init(loaded, "B"), ExternalData.OffsetKey)); // next aligned offset after 1152 bytes
    }

    [Fact]
    public void Save_WithChecksums_WritesSha1_AndReadDetectsCorruption()
    {
        using var tmp = new TempFolder();
        ModelIO.Save(TestModels.ConvModel(), tmp["m.onnx"], new ModelSaveOptions { ExternalDataThreshold = 100, WriteChecksums = true });
        var loaded = ModelIO.Load(tmp["m.onnx"]);
        var w = Init(loaded, "W");
        Assert.Equal(40, Entry(w, ExternalData.ChecksumKey).Length);
        ModelIO.TensorBytes(loaded, w); // intact: reads fine

        var data = File.ReadAllBytes(tmp["m.onnx.data"]);
        data[10] ^= 0xFF;
        File.WriteAllBytes(tmp["m.onnx.data"], data);
        var e = Assert.Throws<ModelFormatException>(() => ModelIO.TensorBytes(loaded, w));
        Assert.Contains("checksum mismatch", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SavedExternalDataModel_RunsInOnnxRuntime_WithTheSameOutputsAsInline()
    {
        using var tmp = new TempFolder();
        var model = TestModels.ConvModel();
        ModelIO.Save(model, tmp["ext.onnx"], new ModelSaveOptions { ExternalDataThreshold = 32 }); // W and B (32 bytes)
        Assert.True(ExternalData.IsExternal(Init(ModelIO.Load(tmp["ext.onnx"]), "B")));

        var rng = new Random(7);
        var x = TensorValue.Float("X", [1, 4, 8, 8], Enumerable.Range(0, 256).Select(_ => (float)rng.NextDouble()).ToArray());
        using var inline = new OrtRunner(model);
        using var external = new OrtRunner(tmp["ext.onnx"]); // from the path, so ONNX Runtime resolves the side file
        // Same kernel, same weights: the outputs must be bit-identical, not merely within tolerance.
        Assert.Equal(inline.Run([x])[0].AsFloats(), external.Run([x])[0].AsFloats());
    }

    [Fact]
    public void Save_ExternalModelToAnotherFolder_CarriesItsDataAlong()
    {
        using var a = new TempFolder();
        using var b = new TempFolder();
        var original = TestModels.ConvModel();
        ModelIO.Save(original, a["model.onnx"], new ModelSaveOptions { ExternalDataThreshold = 100 });
        var loaded = ModelIO.Load(a["model.onnx"]);

        // Same folder, no options: references kept, bytes identical.
        var bytes = File.ReadAllBytes(a["model.onnx"]);
        ModelIO.Save(loaded, a["model.onnx"]);
        Assert.Equal(bytes, File.ReadAllBytes(a["model.onnx"]));

        // Elsewhere: the data is copied next to the new file, under the new name.
        var target = Path.Combine(b.Path, "sub", "copy.onnx");
        ModelIO.Save(loaded, target);
        Directory.Delete(a.Path, recursive: true);
        var copy = ModelIO.Load(target);
        Assert.Equal("copy.onnx.data", Entry(Init(copy, "W"), ExternalData.LocationKey));
        Assert.Equal(Tensors.ToFloats(Init(original, "W")), ModelIO.TensorFloats(copy, Init(copy, "W")));
        Assert.Equal(Tensors.ToFloats(Init(original, "B")), ModelIO.TensorFloats(copy, Init(copy, "B")));
    }

    [Fact]
    public void Save_InPlaceWithNewThreshold_RewritesTheSideFileItReadsFrom()
    {
        using var tmp = new TempFolder();
        var original = TestModels.ConvModel();
        ModelIO.Save(original, tmp["m.onnx"], new ModelSaveOptions { ExternalDataThreshold = 1000 }); // W only
        var loaded = ModelIO.Load(tmp["m.onnx"]);
        ModelIO.Save(loaded, tmp["m.onnx"], new ModelSaveOptions { ExternalDataThreshold = 16, Alignment = 256 }); // W and B, same side file
        var again = ModelIO.Load(tmp["m.onnx"]);
        Assert.Equal("1280", Entry(Init(again, "B"), ExternalData.OffsetKey)); // after W's 1152 bytes, aligned to 256
        Assert.Equal(Tensors.ToFloats(Init(original, "W")), ModelIO.TensorFloats(again, Init(again, "W")));
        Assert.Equal(Tensors.ToFloats(Init(original, "B")), ModelIO.TensorFloats(again, Init(again, "B")));
        Assert.Equal(["m.onnx", "m.onnx.data"], Directory.GetFiles(tmp.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Save_ExternalModelWithUnknownSourceFolder_IsRefused()
    {
        using var tmp = new TempFolder();
        ModelIO.Save(TestModels.ConvModel(), tmp["m.onnx"], new ModelSaveOptions { ExternalDataThreshold = 100 });
        var clone = ModelIO.Load(tmp["m.onnx"]).Clone(); // a clone has no known source folder
        var e = Assert.Throws<ModelFormatException>(() => ModelIO.Save(clone, tmp["other/m.onnx"]));
        Assert.Contains("SourceDirectory", e.Message, StringComparison.Ordinal);
        ModelIO.Save(clone, tmp["other/m.onnx"], new ModelSaveOptions { SourceDirectory = tmp.Path }); // told where: works
        Assert.True(File.Exists(tmp["other/m.onnx.data"]));
    }

    /// <summary>A model whose tensor W [2,2] FLOAT (16 bytes) points at <paramref name="location"/>.</summary>
    private static TensorProto ExternalTensor(string location, long offset = 0, long? length = 16)
    {
        var t = new TensorProto { Name = "W", DataType = (int)DataType.Float };
        t.Dims.AddRange([2, 2]);
        ExternalData.SetExternal(t, location, offset, length ?? 0, null);
        if (length is null) t.ExternalData.Remove(t.ExternalData.Single(e => e.Key == ExternalData.LengthKey));
        return t;
    }

    private static string Refused(TensorProto t, string dir)
    {
        var e = Assert.Throws<ModelFormatException>(() => ExternalData.ReadBytes(t, dir));
        Assert.Contains("'W'", e.Message, StringComparison.Ordinal);
        return e.Message;
    }

    [Fact]
    public void Read_UntrustedLocations_AreRefused()
    {
        using var outside = new TempFolder();
        using var tmp = new TempFolder();
        File.WriteAllBytes(outside["secret.bin"], new byte[64]);
        var modelDir = Path.Combine(tmp.Path, "model");
        Directory.CreateDirectory(Path.Combine(modelDir, "sub"));
        File.WriteAllBytes(Path.Combine(modelDir, "ok.bin"), new byte[64]);
        File.CreateSymbolicLink(Path.Combine(modelDir, "link.bin"), outside["secret.bin"]);
        Directory.CreateSymbolicLink(Path.Combine(modelDir, "linkdir"), outside.Path);
        File.WriteAllBytes(Path.Combine(tmp.Path, "sibling.bin"), new byte[64]);

        Assert.Equal(16, ExternalData.ReadBytes(ExternalTensor("ok.bin"), modelDir).Length);
        Assert.Equal(16, ExternalData.ReadBytes(ExternalTensor("sub/../ok.bin"), modelDir).Length); // stays inside: fine

        Assert.Contains("absolute", Refused(ExternalTensor(outside["secret.bin"]), modelDir), StringComparison.Ordinal);
        Assert.Contains("escapes", Refused(ExternalTensor("../sibling.bin"), modelDir), StringComparison.Ordinal);
        Assert.Contains("escapes", Refused(ExternalTensor("sub/../../sibling.bin"), modelDir), StringComparison.Ordinal);
        Assert.Contains("symlink", Refused(ExternalTensor("link.bin"), modelDir), StringComparison.Ordinal);
        Assert.Contains("symlink", Refused(ExternalTensor("linkdir/secret.bin"), modelDir), StringComparison.Ordinal);
        Assert.Contains("memory", Refused(ExternalTensor("*/_ORT_MEM_ADDR_/*"), modelDir), StringComparison.Ordinal);
        Assert.Contains("does not exist", Refused(ExternalTensor("missing.bin"), modelDir), StringComparison.Ordinal);
        Assert.Contains("directory", Refused(ExternalTensor("sub"), modelDir), StringComparison.Ordinal);
    }

    [Fact]
    public void Read_BadRangesAndLengths_AreRefused()
    {
        using var tmp = new TempFolder();
        File.WriteAllBytes(tmp["d.bin"], new byte[64]);
        Assert.Equal(16, ExternalData.ReadBytes(ExternalTensor("d.bin", offset: 48), tmp.Path).Length); // last 16 bytes: fine
        Assert.Equal(16, ExternalData.ReadBytes(ExternalTensor("d.bin", length: null), tmp.Path).Length); // length from shape

        Assert.Contains("beyond the end", Refused(ExternalTensor("d.bin", offset: 49), tmp.Path), StringComparison.Ordinal);
        Assert.Contains("beyond the end", Refused(ExternalTensor("d.bin", offset: long.MaxValue - 4), tmp.Path), StringComparison.Ordinal);
        Assert.Contains("disagrees with its shape", Refused(ExternalTensor("d.bin", length: 32), tmp.Path), StringComparison.Ordinal);
        Assert.Contains("disagrees with its shape", Refused(ExternalTensor("d.bin", length: 8), tmp.Path), StringComparison.Ordinal);

        var badOffset = ExternalTensor("d.bin");
        badOffset.ExternalData.Single(e => e.Key == ExternalData.OffsetKey).Value = "-5";
        Assert.Contains("not a non-negative integer", Refused(badOffset, tmp.Path), StringComparison.Ordinal);

        var noLocation = ExternalTensor("d.bin");
        noLocation.ExternalData.Remove(noLocation.ExternalData.Single(e => e.Key == ExternalData.LocationKey));
        Assert.Contains("no 'location'", Refused(noLocation, tmp.Path), StringComparison.Ordinal);

        var huge = ExternalTensor("d.bin", length: null);
        huge.Dims[0] = long.MaxValue / 2;
        Assert.Contains("invalid shape", Refused(huge, tmp.Path), StringComparison.Ordinal);
    }

    [Fact]
    public void ValidateExternalData_ReportsTheFileAndTensor_WithoutReadingData()
    {
        using var tmp = new TempFolder();
        ModelIO.Save(TestModels.ConvModel(), tmp["m.onnx"], new ModelSaveOptions { ExternalDataThreshold = 100 });
        var loaded = ModelIO.Load(tmp["m.onnx"]);
        ModelIO.ValidateExternalData(loaded); // intact

        using (var fs = new FileStream(tmp["m.onnx.data"], FileMode.Open)) fs.SetLength(1000); // W needs 1152 bytes
        var e = Assert.Throws<ModelFormatException>(() => ModelIO.ValidateExternalData(loaded));
        Assert.StartsWith(tmp["m.onnx"] + ": tensor 'W'", e.Message, StringComparison.Ordinal);
        Assert.Contains("beyond the end", e.Message, StringComparison.Ordinal);
        Assert.StartsWith(tmp["m.onnx"] + ": tensor 'W'", Assert.Throws<ModelFormatException>(() => ModelIO.TensorFloats(loaded, Init(loaded, "W"))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Save_CarryingAlongABadReference_FailsNamingTheFileAndTensor_AndLeavesNoFiles()
    {
        using var tmp = new TempFolder();
        var model = TestModels.ConvModel();
        var w = Init(model, "W");
        ExternalData.SetExternal(w, "../escape.bin", 0, 1152, null);
        ModelIO.SetSourceDirectory(model, tmp["src"]);
        var target = tmp["out/m.onnx"];
        var e = Assert.Throws<ModelFormatException>(() => ModelIO.Save(model, target));
        Assert.Contains(target, e.Message, StringComparison.Ordinal);
        Assert.Contains("'W'", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(tmp["out"]));
    }

    [Fact]
    public void Save_NeverWritesThroughASymlinkOutOfTheOutputFolder()
    {
        using var outside = new TempFolder();
        using var tmp = new TempFolder();
        var victim = outside["victim.bin"];
        File.WriteAllBytes(victim, [1, 2, 3]);
        File.CreateSymbolicLink(tmp["m.onnx.data"], victim);
        File.CreateSymbolicLink(tmp["m.onnx"], victim);
        Directory.CreateSymbolicLink(tmp["linkdir"], outside.Path);

        ModelIO.Save(TestModels.ConvModel(), tmp["m.onnx"], new ModelSaveOptions { ExternalDataThreshold = 100 });
        Assert.Equal([1, 2, 3], File.ReadAllBytes(victim));
        Assert.Null(new FileInfo(tmp["m.onnx"]).LinkTarget);      // the links were replaced, not followed
        Assert.Null(new FileInfo(tmp["m.onnx.data"]).LinkTarget);
        Assert.Equal(Tensors.ToFloats(Init(TestModels.ConvModel(), "W")), ModelIO.TensorFloats(ModelIO.Load(tmp["m.onnx"]), Init(ModelIO.Load(tmp["m.onnx"]), "W")));

        foreach (var bad in new[] { "linkdir/w.data", "../w.data", outside["w.data"], "a/./b.data", "n.onnx" })
        {
            var e = Assert.Throws<ModelFormatException>(() => ModelIO.Save(TestModels.ConvModel(), tmp["n.onnx"],
                new ModelSaveOptions { ExternalDataThreshold = 100, ExternalDataFile = bad }));
            Assert.Contains("refused", e.Message, StringComparison.Ordinal);
        }
        Assert.Equal(["victim.bin"], Directory.GetFiles(outside.Path).Select(Path.GetFileName));
        Assert.False(File.Exists(tmp["n.onnx"]));
    }

    [Fact]
    public void Save_ModelOverTheProtobufLimit_FailsClearly_UnlessExternalDataIsUsed()
    {
        // The real limit is 2 GB; the test lowers it to 1000 bytes to exercise the same check cheaply.
        using var tmp = new TempFolder();
        var model = TestModels.ConvModel();
        var e = Assert.Throws<ModelFormatException>(() => ModelIO.Save(model, tmp["m.onnx"], new ModelSaveOptions { MaxModelBytes = 1000 }));
        Assert.Contains("external data", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(tmp["m.onnx"]));
        ModelIO.Save(model, tmp["m.onnx"], new ModelSaveOptions { MaxModelBytes = 1000, ExternalDataThreshold = 1024 });
        Assert.True(new FileInfo(tmp["m.onnx"]).Length <= 1000);
    }
}
