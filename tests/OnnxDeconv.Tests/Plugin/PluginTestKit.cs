using System.Xml.Linq;
using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.TestSupport;

namespace OnnxDeconv.Tests.Plugin;

/// <summary>Shared helpers of the plugin tests: ORT package paths, runs with the plugin registered, float comparison.</summary>
internal static class PluginTestKit
{
    /// <summary>float32 tolerance of the project: |a-b| &lt;= 1e-5 + 1e-4*|b|.</summary>
    public const float Atol = 1e-5f, Rtol = 1e-4f;

    public static string OrtVersion => OrtVersionLazy.Value;
    private static readonly Lazy<string> OrtVersionLazy = new(() =>
        XDocument.Load(Path.Combine(RepoPaths.Root, "Directory.Packages.props")).Descendants("PackageVersion")
            .First(e => (string?)e.Attribute("Include") == "Microsoft.ML.OnnxRuntime").Attribute("Version")!.Value);

    /// <summary>The restored Microsoft.ML.OnnxRuntime package (C headers under build/native/include, libonnxruntime.so under runtimes).</summary>
    public static string OrtPackageDir
    {
        get
        {
            string root = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            string dir = Path.Combine(root, "microsoft.ml.onnxruntime", OrtVersion);
            if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"Microsoft.ML.OnnxRuntime {OrtVersion} not restored at {dir}");
            return dir;
        }
    }

    public static string OrtIncludeDir => Path.Combine(OrtPackageDir, "build", "native", "include");
    public static string OrtNativeDir => Path.Combine(OrtPackageDir, "runtimes", "linux-x64", "native");

    public static OrtRunOptions WithPlugin(int threads = 1) => new()
    {
        IntraOpThreads = threads,
        Configure = so => so.RegisterOnnxDeconv(),
    };

    public static float[] RunSingle(ModelProto model, TensorValue input, OrtRunOptions? options = null) =>
        OrtRunner.RunOnce(model, [input], options)[0].AsFloats();

    /// <summary>Asserts |a-b| &lt;= 1e-5 + 1e-4*|b| elementwise (b = expected), naming the first offending index.</summary>
    public static void AssertClose(float[] expected, float[] actual, string what)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: {actual.Length} values, expected {expected.Length}");
        for (int i = 0; i < expected.Length; i++)
        {
            float b = expected[i], a = actual[i];
            if (!(MathF.Abs(a - b) <= Atol + Rtol * MathF.Abs(b)))
                Assert.Fail($"{what}: element {i}: got {a}, expected {b} (|diff| {MathF.Abs(a - b)} > {Atol} + {Rtol}*|b|)");
        }
    }

    /// <summary>Seeded values in [-1, 1).</summary>
    public static float[] RandomFloats(Random rng, long n)
    {
        var v = new float[n];
        for (long i = 0; i < n; i++) v[i] = (float)(rng.NextDouble() * 2 - 1);
        return v;
    }

    /// <summary>Binds graph inputs other than <paramref name="keep"/> to the given values as initializers (ONNX node tests feed W as an input).</summary>
    public static void Freeze(ModelProto model, IEnumerable<TensorValue> values, string keep)
    {
        // Old-IR models list initializers as graph inputs too (overridable at run time): make those constant.
        foreach (var input in model.Graph.Input.Where(i => i.Name != keep && model.Graph.Initializer.Any(t => t.Name == i.Name)).ToList())
            model.Graph.Input.Remove(input);
        foreach (var v in values.Where(v => v.Name != keep))
        {
            var input = model.Graph.Input.First(i => i.Name == v.Name);
            model.Graph.Input.Remove(input);
            model.Graph.Initializer.Add(v.ToProto());
        }
    }

    public static int Count(ModelProto model, string opType) => model.Graph.Node.Count(n => n.OpType == opType);

    /// <summary>A one-node TransposedConv model (for bad-input tests): X of unknown shape so the kernel sees whatever is fed.</summary>
    public static ModelProto PluginModel(IEnumerable<AttributeProto> attributes, long packedLength, long? biasLength = null,
        TensorProto.Types.DataType xType = TensorProto.Types.DataType.Float)
    {
        var mb = new ModelBuilder("plugin_only");
        mb.ImportOpset(Ops.TransposedConv.Domain, Ops.TransposedConv.Version);
        mb.Input("X", null, xType);
        var inputs = new List<string> { "X", mb.Initializer("W", [packedLength], new float[packedLength]) };
        if (biasLength is { } bl) inputs.Add(mb.Initializer("B", [bl], new float[bl]));
        mb.Node(Ops.TransposedConv.OpType, inputs, attributes, output: "Y", name: "tconv", domain: Ops.TransposedConv.Domain);
        mb.Output("Y", null);
        return mb.Build();
    }
}
