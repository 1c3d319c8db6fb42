using System.Runtime.InteropServices;

namespace OnnxDeconv.Plugin;

/// <summary>The C entry point of libonnxdeconv.so (NativeAOT): what ONNX Runtime's RegisterCustomOpsLibrary calls.</summary>
public static class NativeExports
{
    /// <summary><c>OrtStatus* RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api)</c>.</summary>
    [UnmanagedCallersOnly(EntryPoint = "RegisterCustomOps")]
    public static IntPtr RegisterCustomOps(IntPtr sessionOptions, IntPtr apiBase) =>
        OnnxDeconvPlugin.Register(sessionOptions, apiBase);
}
