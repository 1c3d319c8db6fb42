using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Tests.Verification;

/// <summary>Small models for verifier tests, built in code with fixed seeds.</summary>
internal static class VerificationModels
{
    public static float[] Random(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    }

    /// <summary>X[1,2,5,5] -> ConvTranspose(W[2,3,3,3], B[3], strides 2) -> Y[1,3,11,11]; <paramref name="dims"/> may make X symbolic.</summary>
    public static ModelProto ConvTranspose(float weightScale = 1f, long[]? dims = null)
    {
        var b = new ModelBuilder("ct");
        b.Input("X", dims ?? [1, 2, 5, 5], symbolic: ["N", "C", "H", "W"]);
        b.Initializer("W", [2, 3, 3, 3], Random(54, 1).Select(v => v * weightScale).ToArray());
        b.Initializer("B", [3], Random(3, 2));
        b.Node(Ops.ConvTranspose.OpType, ["X", "W", "B"], [Attributes.Ints(Ops.ConvTranspose.Strides, [2, 2])], output: "Y");
        b.Output("Y", dims is null ? [1, 3, 11, 11] : [-1, 3, -1, -1]);
        return b.Build();
    }

    /// <summary>Integer and bool inputs: Y = Cast(I) + Cast(M) as float.</summary>
    public static ModelProto MixedTypes()
    {
        var b = new ModelBuilder("mixed");
        b.Input("I", [2, 3], DataType.Int64);
        b.Input("M", [2, 3], DataType.Bool);
        var ci = b.Node("Cast", ["I"], [Attributes.Int("to", (long)DataType.Float)]);
        var cm = b.Node("Cast", ["M"], [Attributes.Int("to", (long)DataType.Float)]);
        b.Node(Ops.Add.OpType, [ci, cm], output: "Y");
        b.Output("Y", [2, 3]);
        return b.Build();
    }

    public static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "onnxdeconv-verify-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    public static string Save(ModelProto model, string dir, string name = "model.onnx")
    {
        var path = Path.Combine(dir, name);
        // External data in these hand-built models is relative to the folder they are saved into.
        ModelIO.Save(model, path, new ModelSaveOptions { SourceDirectory = dir });
        return path;
    }
}
