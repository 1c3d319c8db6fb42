using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.Plugin;

namespace OnnxDeconv.GraphRewrite.Runtime;

/// <summary>
/// In-process registration of the OnnxDeconv custom op for .NET hosts. It lives here rather than in src/OnnxDeconv
/// so that project stays free of the managed ONNX Runtime package: it is also published with NativeAOT as
/// libonnxdeconv.so, which must not drag the managed wrapper (and a second copy of libonnxruntime.so) along.
/// </summary>
public static class OnnxDeconvSessionOptions
{
    /// <summary>Registers the <c>ai.onnxdeconv</c> domain (op TransposedConv) on these options; returns them for chaining.</summary>
    public static SessionOptions RegisterOnnxDeconv(this SessionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        OnnxDeconvPlugin.RegisterInProcess(options.DangerousGetHandle());
        return options;
    }

    /// <summary>
    /// The session-options hook a runner needs for <paramref name="model"/>: registers the plugin when the model uses it,
    /// null otherwise (e.g. <c>new OrtRunOptions { Configure = OnnxDeconvSessionOptions.ConfigureFor(model) }</c>).
    /// </summary>
    public static Action<SessionOptions>? ConfigureFor(ModelProto model) =>
        UsesPlugin(model) ? so => so.RegisterOnnxDeconv() : null;

    /// <summary>True when the model imports the plugin's domain or has a node in it (so a runner must register it).</summary>
    public static bool UsesPlugin(ModelProto model) =>
        model.OpsetImport.Any(o => o.Domain == TransposedConvSchema.Domain)
        || model.Graph.Node.Any(n => n.Domain == TransposedConvSchema.Domain);
}
