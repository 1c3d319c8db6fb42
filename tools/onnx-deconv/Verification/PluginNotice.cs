using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;

namespace OnnxDeconv.Cli.Verification;

/// <summary>
/// What optimize says when the model it wrote holds the OnnxDeconv custom op: such a model does not load in a plain
/// ONNX Runtime, so the report names the op, how many nodes use it, and how each kind of host registers it.
/// </summary>
internal static class PluginNotice
{
    /// <summary>Where NativeAOT publishes the library other hosts load (README "The plugin").</summary>
    public const string PublishCommand = "dotnet publish src/OnnxDeconv -c Release -r linux-x64";
    public const string LibraryPath = "src/OnnxDeconv/bin/Release/net10.0/linux-x64/publish/libonnxdeconv.so";

    /// <summary>How each kind of host registers the op, as lines to copy (each under 80 columns).</summary>
    public static readonly (string Host, string[] How)[] Hosts =
    [
        (".NET", ["using OnnxDeconv.GraphRewrite.Runtime;", "sessionOptions.RegisterOnnxDeconv();"]),
        ("Python", ["so = onnxruntime.SessionOptions()", "so.register_custom_ops_library(\"/path/to/libonnxdeconv.so\")"]),
        ("C/C++", ["OrtApi::RegisterCustomOpsLibrary_V2(session_options,", "                                    \"/path/to/libonnxdeconv.so\")"]),
    ];

    /// <summary>Nodes of the custom-op domain in <paramref name="model"/> (0: the model runs in any ONNX Runtime).</summary>
    public static int PluginNodes(ModelProto model) =>
        OnnxDeconvSessionOptions.UsesPlugin(model) ? model.Graph.Node.Count(n => n.Domain == Ops.TransposedConv.Domain) : 0;

    public static void Write(TextWriter o, ModelProto model)
    {
        int nodes = PluginNodes(model);
        if (nodes == 0) return;
        o.WriteLine($"plugin: the written model needs the OnnxDeconv plugin: {nodes} node(s) of");
        o.WriteLine($"  {Ops.TransposedConv.Domain}:{Ops.TransposedConv.OpType}, which a plain ONNX Runtime refuses to load.");
        o.WriteLine("  Register the op where the model runs:");
        foreach (var (host, how) in Hosts)
            for (int i = 0; i < how.Length; i++) o.WriteLine($"  {(i == 0 ? host + ":" : ""),-8}{how[i]}");
        o.WriteLine("  The .so for Python and C/C++ (NativeAOT, from a clone of OnnxDeconv):");
        o.WriteLine($"    {PublishCommand}");
        o.WriteLine($"    -> {LibraryPath}");
        o.WriteLine("  A model without it: --target portable, or --portable-only with auto.");
    }

    /// <summary>The same for --json (null when the model needs nothing).</summary>
    public static object? Json(ModelProto model)
    {
        int nodes = PluginNodes(model);
        return nodes == 0 ? null : new
        {
            domain = Ops.TransposedConv.Domain,
            opType = Ops.TransposedConv.OpType,
            nodes,
            library = new { build = PublishCommand, path = LibraryPath },
            register = Hosts.ToDictionary(h => h.Host, h => string.Join("\n", h.How.Select(l => l.Trim()))),
        };
    }
}
