using Google.Protobuf;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.TestSupport;

namespace OnnxDeconv.GraphRewrite.Tests.IO;

public class CorruptFileTests
{
    private static ModelFormatException LoadFails(string path)
    {
        var e = Assert.Throws<ModelFormatException>(() => ModelIO.Load(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", e.Message, StringComparison.Ordinal); // a message, not a stack dump
        return e;
    }

    [Fact]
    public void Load_EmptyFile_SaysEmpty()
    {
        using var tmp = new TempFolder();
        File.WriteAllBytes(tmp["empty.onnx"], []);
        Assert.Contains("empty", LoadFails(tmp["empty.onnx"]).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_CharacterDevice_DoesNotReadForever()
    {
        if (!File.Exists("/dev/zero")) return; // Unix only
        Assert.Contains("empty", LoadFails("/dev/zero").Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_MissingFileOrDirectory_SaysSo()
    {
        using var tmp = new TempFolder();
        Assert.Contains("not found", LoadFails(tmp["nope.onnx"]).Message, StringComparison.Ordinal);
        Assert.Contains("directory", LoadFails(tmp.Path).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("text", "hello, this is not a model\n")]
    [InlineData("json", "{\"ir_version\": 8, \"graph\": {}}")]
    [InlineData("png", "\u0089PNG\r\n\u001a\n\0\0\0\rIHDR")]
    public void Load_NonOnnxFile_IsRefusedClearly(string kind, string content)
    {
        using var tmp = new TempFolder();
        var path = tmp[$"{kind}.onnx"];
        File.WriteAllBytes(path, System.Text.Encoding.Latin1.GetBytes(content));
        var msg = LoadFails(path).Message;
        Assert.True(msg.Contains("not an ONNX model", StringComparison.Ordinal) || msg.Contains("not a valid ONNX model", StringComparison.Ordinal), msg);
    }

    [Fact]
    public void Load_SmallModelTruncatedAtEveryLength_AlwaysFailsClearly()
    {
        // Every prefix of a valid model is invalid: cut inside a field breaks the protobuf, cut between fields
        // loses ir_version, graph or opset_import (the builder writes opset_import last).
        var bytes = TestModels.ConvModel(c: 1, m: 1).ToByteArray();
        for (int len = 0; len < bytes.Length; len++)
        {
            var e = Assert.Throws<ModelFormatException>(() => ModelIO.Parse(bytes[..len], "cut.onnx"));
            Assert.StartsWith("cut.onnx: ", e.Message, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("models/sed-gen-unet/model.onnx")]
    [InlineData("models/gtcrn-simple/model.onnx")]
    [InlineData("conformance/test_convtranspose_pads/model.onnx")]
    public void Load_RealModelTruncated_FailsNamingTheFile(string relative)
    {
        var bytes = File.ReadAllBytes(Path.Combine(RepoPaths.Shared, relative));
        using var tmp = new TempFolder();
        foreach (var frac in new[] { 0.0001, 0.25, 0.5, 0.75, 0.999 })
        {
            int len = Math.Max(1, (int)(bytes.Length * frac));
            var path = tmp[$"cut_{len}.onnx"];
            File.WriteAllBytes(path, bytes[..len]);
            LoadFails(path);
        }
        var lastByte = tmp["last.onnx"];
        File.WriteAllBytes(lastByte, bytes[..^1]);
        LoadFails(lastByte);
    }

    [Fact]
    public void Load_ByteFlips_GiveAModelOrAClearError()
    {
        // A flip inside a name or a weight still parses (protobuf has no checksum); anything else must be a
        // ModelFormatException naming the file: never another exception type.
        var bytes = File.ReadAllBytes(Path.Combine(RepoPaths.Shared, "models/sed-gen-unet/model.onnx"));
        var rng = new Random(42);
        int errors = 0;
        for (int i = 0; i < 300; i++)
        {
            var copy = (byte[])bytes.Clone();
            int pos = rng.Next(Math.Min(copy.Length, 4096)); // the header and first nodes: structure, not weights
            copy[pos] ^= (byte)(1 << rng.Next(8));
            try { ModelIO.Parse(copy, "flipped.onnx"); }
            catch (ModelFormatException e) { Assert.StartsWith("flipped.onnx: ", e.Message, StringComparison.Ordinal); errors++; }
        }
        Assert.True(errors > 0, "no flip was detected at all");
    }

    [Fact]
    public void SeededMutationsOfEveryModel_LoadIndexAndCheckWithoutCrashing()
    {
        // 20 mutations (cut or flip anywhere) per model: each either loads, or fails with a ModelFormatException.
        // What loads must also survive indexing, ordering (a cycle is a GraphCycleException) and the external
        // data check (a flipped data_location makes a tensor "external": a clear error, not a crash).
        var rng = new Random(2026);
        int loaded = 0, refused = 0;
        foreach (var rel in RoundTripTests.ModelPaths())
        {
            var bytes = File.ReadAllBytes(Path.GetFullPath(Path.Combine(RepoPaths.Shared, rel)));
            for (int i = 0; i < 20; i++)
            {
                var copy = (byte[])bytes.Clone();
                if (i % 4 == 0) copy = copy[..rng.Next(copy.Length)];
                else for (int f = 0; f < 1 + i % 3; f++) copy[rng.Next(copy.Length)] ^= (byte)(1 << rng.Next(8));
                ModelProto model;
                try { model = ModelIO.Parse(copy, "mutant.onnx"); loaded++; }
                catch (ModelFormatException) { refused++; continue; }
                _ = new GraphIndex(model);
                try { foreach (var g in Topology.AllGraphs(model)) Topology.Order(g); }
                catch (GraphCycleException) { }
                try { ModelIO.ValidateExternalData(model); }
                catch (ModelFormatException) { }
            }
        }
        Assert.True(loaded > 0 && refused > 0, $"loaded {loaded}, refused {refused}");
    }

    [Fact]
    public void Load_InvalidWireType_IsCorrupt()
    {
        var bytes = TestModels.ConvModel().ToByteArray();
        bytes[0] = 0x0F; // field 1 with wire type 7, which does not exist
        var e = Assert.Throws<ModelFormatException>(() => ModelIO.Parse(bytes, "bad.onnx"));
        Assert.Contains("truncated or corrupt", e.Message, StringComparison.Ordinal);
    }
}
