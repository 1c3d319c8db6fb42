using Google.Protobuf;
using OnnxDeconv.Cli;
using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;

namespace OnnxDeconv.Cli.Tests;

/// <summary>A temp folder with small models for the verify/optimize/test command tests, and an in-process CLI runner.</summary>
public sealed class VerifyFixtures : IDisposable
{
    public string Dir { get; } = Path.Combine(Path.GetTempPath(), "onnxdeconv-cli-" + Guid.NewGuid().ToString("N"));

    public VerifyFixtures() => Directory.CreateDirectory(Dir);

    public void Dispose() { try { Directory.Delete(Dir, true); } catch (IOException) { } }

    public string PathOf(string name) => Path.Combine(Dir, name);

    public string Save(ModelProto model, string name)
    {
        ModelIO.Save(model, PathOf(name));
        return PathOf(name);
    }

    public static float[] Random(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    }

    /// <summary>X[1,2,5,5] (or symbolic) -> ConvTranspose(W[2,3,3,3], B, strides 2) -> Y.</summary>
    /// <param name="batchOnly">Only the batch dim symbolic ([N,2,5,5]): the shape policy takes it as 1 (docs/shapes.md).</param>
    public static ModelProto ConvTranspose(float weightScale = 1f, bool symbolic = false, bool batchOnly = false)
    {
        var b = new ModelBuilder("ct");
        b.Input("X", symbolic ? [-1, 2, -1, -1] : batchOnly ? [-1, 2, 5, 5] : [1, 2, 5, 5], symbolic: ["N", "C", "H", "W"]);
        b.Initializer("W", [2, 3, 3, 3], Random(54, 1).Select(v => v * weightScale).ToArray());
        b.Initializer("B", [3], Random(3, 2));
        b.Node(Ops.ConvTranspose.OpType, ["X", "W", "B"], [Attributes.Ints(Ops.ConvTranspose.Strides, [2, 2])], output: "Y", name: "up1");
        b.Output("Y", symbolic ? [-1, 3, -1, -1] : batchOnly ? [-1, 3, 11, 11] : [1, 3, 11, 11]);
        return b.Build();
    }

    private static NodeReport Report(ModelProto m) => new()
    {
        Node = m.Graph.Node.First(n => n.OpType == Ops.ConvTranspose.OpType).Name,
        Pattern = Ops.ConvTranspose.OpType,
        Rewritten = true,
        Lowering = "test fake",
        MacsBefore = 4000,
        MacsAfter = 1000,
    };

    /// <summary>A "rewrite" that keeps the math (adds an Identity after the node): must verify and be written.</summary>
    public static OptimizeResult FaithfulRewrite(ModelProto m, OptimizeOptions _)
    {
        var ct = m.Graph.Node.First(n => n.OpType == Ops.ConvTranspose.OpType);
        var report = Report(m);
        var y = ct.Output[0];
        ct.Output[0] = y + "_pre";
        m.Graph.Node.Add(new NodeProto { OpType = Ops.Identity.OpType, Name = "id", Input = { y + "_pre" }, Output = { y } });
        return new OptimizeResult(m, [report]);
    }

    /// <summary>A deliberately wrong "rewrite" (weights scaled by 1.1) that claims success: verification must catch it.</summary>
    public static OptimizeResult BrokenRewrite(ModelProto m, OptimizeOptions _)
    {
        var w = m.Graph.Initializer.First(t => t.Dims.Count >= 3);
        var data = Tensors.ToFloats(w).Select(v => v * 1.1f).ToArray();
        w.ClearRawData();
        w.FloatData.Clear();
        w.RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()));
        return new OptimizeResult(m, [Report(m)]);
    }

    public static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var r = CliHarness.Run(args);
        return (r.Code, r.Out, r.Err);
    }
}
