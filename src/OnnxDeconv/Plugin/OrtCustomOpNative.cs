using System.Runtime.InteropServices;

namespace OnnxDeconv.Plugin;

/// <summary>
/// <c>struct OrtCustomOp</c> of onnxruntime_c_api.h (ORT_API_VERSION 31: 208 bytes on 64-bit).
/// The field order must match onnxruntime_c_api.h exactly: ONNX Runtime reads it as that C struct.
/// It lives in native memory for the life of the process (ONNX Runtime keeps the pointer).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct OrtCustomOpNative
{
    // order must match onnxruntime_c_api.h
    public uint Version;
    public IntPtr CreateKernel;
    public IntPtr GetName;
    public IntPtr GetExecutionProviderType;
    public IntPtr GetInputType;
    public IntPtr GetInputTypeCount;
    public IntPtr GetOutputType;
    public IntPtr GetOutputTypeCount;
    public IntPtr KernelCompute;
    public IntPtr KernelDestroy;
    public IntPtr GetInputCharacteristic;
    public IntPtr GetOutputCharacteristic;
    public IntPtr GetInputMemoryType;
    public IntPtr GetVariadicInputMinArity;
    public IntPtr GetVariadicInputHomogeneity;
    public IntPtr GetVariadicOutputMinArity;
    public IntPtr GetVariadicOutputHomogeneity;
    public IntPtr CreateKernelV2;
    public IntPtr KernelComputeV2;
    public IntPtr InferOutputShapeFn;
    public IntPtr GetStartVersion;
    public IntPtr GetEndVersion;
    public IntPtr GetMayInplace;
    public IntPtr ReleaseMayInplace;
    public IntPtr GetAliasMap;
    public IntPtr ReleaseAliasMap;
}
