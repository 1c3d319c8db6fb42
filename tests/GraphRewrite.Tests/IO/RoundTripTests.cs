using Google.Protobuf;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.TestSupport;

namespace OnnxDeconv.GraphRewrite.Tests.IO;

public class RoundTripTests
{
    /// <summary>Every model we can find: conformance cases, real models and the bundled demo models (enumerated, not listed).</summary>
    public static TheoryData<string> AllModels() => new(ModelPaths());

    internal static List<string> ModelPaths()
    {
        var data = new List<string>();
        foreach (var dir in Directory.GetDirectories(RepoPaths.Conformance).Concat(Directory.GetDirectories(RepoPaths.RealModels)).Order(StringComparer.Ordinal))
        {
            var p = Path.Combine(dir, "model.onnx");
            if (File.Exists(p)) data.Add(Path.GetRelativePath(RepoPaths.Shared, p));
        }
        if (Directory.Exists(RepoPaths.DemoModels))
            foreach (var p in Directory.GetFiles(RepoPaths.DemoModels, "*.onnx", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
                data.Add(Path.GetRelativePath(RepoPaths.Shared, p));
        return data;
    }

    [Theory]
    [MemberData(nameof(AllModels))]
    public void LoadThenSave_WithoutEdits_GivesIdenticalBytes(string relativePath)
    {
        var path = Path.GetFullPath(Path.Combine(RepoPaths.Shared, relativePath));
        var original = File.ReadAllBytes(path);
        var model = ModelIO.Load(path);
        Assert.Equal(original, ModelIO.Serialize(model));
        // Saved elsewhere, a model with external data gets its data (and locations) carried along: bytes differ by design.
        if (ModelIO.AllTensors(model).Any(ExternalData.IsExternal)) return;

        var dir = Directory.CreateTempSubdirectory("odx-rt-");
        try
        {
            var outPath = Path.Combine(dir.FullName, "model.onnx");
            ModelIO.Save(model, outPath);
            Assert.Equal(original, File.ReadAllBytes(outPath));
        }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public void AllModels_FindsConformanceAndRealModels()
    {
        // Guards the theory above against silently enumerating nothing.
        var models = ModelPaths();
        Assert.True(models.Count(m => m.StartsWith("conformance", StringComparison.Ordinal)) >= 10);
        Assert.Equal(3, models.Count(m => m.StartsWith("models", StringComparison.Ordinal)));
    }

    [Fact]
    public void UnknownFields_SurviveLoadAndSave()
    {
        // Unknown fields at three levels: node (field 555, fixed32), graph (field 777, bytes), model (field 999, varint).
        var node = new NodeProto { OpType = "Relu", Name = "n" }.ToByteArray();
        byte[] nodeUnknown = Concat(Tag(555, 5), [1, 2, 3, 4]);
        byte[] graphUnknown = Concat(Tag(777, 2), Varint(3), "abc"u8.ToArray());
        byte[] modelUnknown = Concat(Tag(999, 0), Varint(12345));
        var nodeBytes = Concat(node, nodeUnknown);
        var graphBytes = Concat(Tag(1, 2), Varint(nodeBytes.Length), nodeBytes, Tag(2, 2), Varint(1), "g"u8.ToArray(), graphUnknown);
        byte[] opset = Concat(Tag(2, 0), Varint(17));
        var crafted = Concat(Tag(1, 0), Varint(10), Tag(7, 2), Varint(graphBytes.Length), graphBytes,
            Tag(8, 2), Varint(opset.Length), opset, modelUnknown);

        var loaded = ModelIO.Parse(crafted, "crafted.onnx");
        Assert.Equal("g", loaded.Graph.Name);
        Assert.Equal("Relu", loaded.Graph.Node[0].OpType);
        Assert.Equal(crafted, ModelIO.Serialize(loaded));

        // An edit elsewhere keeps every unknown field.
        loaded.Graph.Node[0].Name = "renamed";
        var hex = Convert.ToHexString(ModelIO.Serialize(loaded));
        Assert.Contains(Convert.ToHexString(nodeUnknown), hex, StringComparison.Ordinal);
        Assert.Contains(Convert.ToHexString(graphUnknown), hex, StringComparison.Ordinal);
        Assert.EndsWith(Convert.ToHexString(modelUnknown), hex, StringComparison.Ordinal);
    }

    internal static byte[] Tag(int field, int wire) => Varint(((long)field << 3) | (uint)wire);

    internal static byte[] Varint(long v)
    {
        var list = new List<byte>();
        ulong u = (ulong)v;
        do { byte b = (byte)(u & 0x7F); u >>= 7; if (u != 0) b |= 0x80; list.Add(b); } while (u != 0);
        return [.. list];
    }

    internal static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();
}
