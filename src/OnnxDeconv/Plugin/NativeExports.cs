using System.Runtime.InteropServices;
using OnnxDeconv.Kernels;

namespace OnnxDeconv.Plugin;

/// <summary>
/// The C entry points of each NativeAOT build of the plugin (libonnxdeconv-VARIANT.so). Hosts load
/// libonnxdeconv.so (src/OnnxDeconv/Native/dispatch.c), which picks the build for the CPU and forwards to these.
/// </summary>
public static class NativeExports
{
    /// <summary><c>OrtStatus* RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api)</c>.</summary>
    [UnmanagedCallersOnly(EntryPoint = "RegisterCustomOps")]
    public static IntPtr RegisterCustomOps(IntPtr sessionOptions, IntPtr apiBase) =>
        OnnxDeconvPlugin.Register(sessionOptions, apiBase);

    /// <summary>
    /// <c>int OnnxDeconvKernelIsa(void)</c>: the <see cref="KernelIsa"/> this build's kernel runs (what the JIT picks
    /// in-process on the same CPU, when the dispatcher chose the right build). Never throws: reading a static.
    /// </summary>
    [UnmanagedCallersOnly(EntryPoint = "OnnxDeconvKernelIsa")]
    public static int KernelIsaOfThisBuild()
    {
        try { return (int)KernelIsaSelector.Active; }
        catch { return -1; }
    }
}
