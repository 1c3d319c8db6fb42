using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.GraphRewrite.Tests.IO;

/// <summary>Small deterministic models for IO tests.</summary>
internal static class TestModels
{
    /// <summary>Y = Conv(X[1,c,8,8], W[m,c,3,3], B[m]) with pads 1, seeded weights: W is m*c*9*4 bytes, B is m*4 bytes.</summary>
    public static ModelProto ConvModel(int c = 4, int m = 8, int seed = 1)
    {
        var rng = new Random(seed);
        var b = new ModelBuilder("conv", opset: 17);
        b.Input("X", [1, c, 8, 8]);
        var w = b.Initializer("W", [m, c, 3, 3], Enumerable.Range(0, m * c * 9).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray());
        var bias = b.Initializer("B", [m], Enumerable.Range(0, m).Select(_ => (float)rng.NextDouble()).ToArray());
        b.Node(Ops.Conv.OpType, ["X", w, bias], [Attributes.Ints(Ops.Conv.Pads, [1, 1, 1, 1])], output: "Y");
        b.Output("Y", [1, m, 8, 8]);
        return b.Build();
    }

    public static string TempDir()
    {
        var d = Directory.CreateTempSubdirectory("odx-io-");
        return d.FullName;
    }
}

/// <summary>A temp folder removed at the end of a test.</summary>
internal sealed class TempFolder : IDisposable
{
    public string Path { get; } = TestModels.TempDir();
    public string this[string name] => System.IO.Path.Combine(Path, name);
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}
