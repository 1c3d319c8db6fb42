using System.Runtime.InteropServices;
using System.Text;

namespace OnnxDeconv.Plugin;

/// <summary>
/// Slot indices of the functions we call in ONNX Runtime's <c>OrtApi</c> table (counted from 0 in
/// <c>struct OrtApi</c> of onnxruntime_c_api.h). The struct is append-only, so an index never changes between
/// versions; a test re-derives every index from the header shipped in the Microsoft.ML.OnnxRuntime package.
/// </summary>
public static class OrtApiSlots
{
    public const int CreateStatus = 0;
    public const int GetErrorCode = 1;
    public const int GetErrorMessage = 2;
    public const int CreateCustomOpDomain = 26;
    public const int CustomOpDomain_Add = 27;
    public const int AddCustomOpDomain = 28;
    public const int GetTensorMutableData = 51;
    public const int CreateTensorTypeAndShapeInfo = 57;
    public const int SetTensorElementType = 58;
    public const int SetDimensions = 59;
    public const int GetTensorElementType = 60;
    public const int GetDimensionsCount = 61;
    public const int GetDimensions = 62;
    public const int GetSymbolicDimensions = 63;
    public const int GetTensorShapeElementCount = 64;
    public const int GetTensorTypeAndShape = 65;
    public const int KernelInfoGetAttribute_float = 85;
    public const int KernelInfoGetAttribute_int64 = 86;
    public const int KernelInfoGetAttribute_string = 87;
    public const int KernelContext_GetInputCount = 88;
    public const int KernelContext_GetInput = 90;
    public const int KernelContext_GetOutput = 91;
    public const int ReleaseStatus = 93;
    public const int ReleaseTensorTypeAndShapeInfo = 99;
    public const int KernelInfoGetAttributeArray_int64 = 163;
    public const int RegisterCustomOpsLibrary_V2 = 228;
    public const int KernelInfo_GetNodeName = 244;
    public const int KernelInfoGetConstantInput_tensor = 249;
    public const int ShapeInferContext_GetInputCount = 267;
    public const int ShapeInferContext_GetInputTypeShape = 268;
    public const int ShapeInferContext_GetAttribute = 269;
    public const int ShapeInferContext_SetOutputTypeShape = 270;
    public const int SetSymbolicDimensions = 271;
    public const int ReadOpAttr = 272;
    public const int KernelContext_ParallelFor = 274;

    /// <summary>Every slot above by its header name (for the header-parsing test).</summary>
    public static IReadOnlyDictionary<string, int> All { get; } = new Dictionary<string, int>
    {
        [nameof(CreateStatus)] = CreateStatus,
        [nameof(GetErrorCode)] = GetErrorCode,
        [nameof(GetErrorMessage)] = GetErrorMessage,
        [nameof(CreateCustomOpDomain)] = CreateCustomOpDomain,
        [nameof(CustomOpDomain_Add)] = CustomOpDomain_Add,
        [nameof(AddCustomOpDomain)] = AddCustomOpDomain,
        [nameof(GetTensorMutableData)] = GetTensorMutableData,
        [nameof(CreateTensorTypeAndShapeInfo)] = CreateTensorTypeAndShapeInfo,
        [nameof(SetTensorElementType)] = SetTensorElementType,
        [nameof(SetDimensions)] = SetDimensions,
        [nameof(GetTensorElementType)] = GetTensorElementType,
        [nameof(GetDimensionsCount)] = GetDimensionsCount,
        [nameof(GetDimensions)] = GetDimensions,
        [nameof(GetSymbolicDimensions)] = GetSymbolicDimensions,
        [nameof(GetTensorShapeElementCount)] = GetTensorShapeElementCount,
        [nameof(GetTensorTypeAndShape)] = GetTensorTypeAndShape,
        [nameof(KernelInfoGetAttribute_float)] = KernelInfoGetAttribute_float,
        [nameof(KernelInfoGetAttribute_int64)] = KernelInfoGetAttribute_int64,
        [nameof(KernelInfoGetAttribute_string)] = KernelInfoGetAttribute_string,
        [nameof(KernelContext_GetInputCount)] = KernelContext_GetInputCount,
        [nameof(KernelContext_GetInput)] = KernelContext_GetInput,
        [nameof(KernelContext_GetOutput)] = KernelContext_GetOutput,
        [nameof(ReleaseStatus)] = ReleaseStatus,
        [nameof(ReleaseTensorTypeAndShapeInfo)] = ReleaseTensorTypeAndShapeInfo,
        [nameof(KernelInfoGetAttributeArray_int64)] = KernelInfoGetAttributeArray_int64,
        [nameof(RegisterCustomOpsLibrary_V2)] = RegisterCustomOpsLibrary_V2,
        [nameof(KernelInfo_GetNodeName)] = KernelInfo_GetNodeName,
        [nameof(KernelInfoGetConstantInput_tensor)] = KernelInfoGetConstantInput_tensor,
        [nameof(ShapeInferContext_GetInputCount)] = ShapeInferContext_GetInputCount,
        [nameof(ShapeInferContext_GetInputTypeShape)] = ShapeInferContext_GetInputTypeShape,
        [nameof(ShapeInferContext_GetAttribute)] = ShapeInferContext_GetAttribute,
        [nameof(ShapeInferContext_SetOutputTypeShape)] = ShapeInferContext_SetOutputTypeShape,
        [nameof(SetSymbolicDimensions)] = SetSymbolicDimensions,
        [nameof(ReadOpAttr)] = ReadOpAttr,
        [nameof(KernelContext_ParallelFor)] = KernelContext_ParallelFor,
    };
}

/// <summary>OrtErrorCode values used here (onnxruntime_c_api.h).</summary>
internal static class OrtErrorCode
{
    public const int Ok = 0;
    public const int Fail = 1;
    public const int InvalidArgument = 2;
}

/// <summary>An OrtStatus error returned by ONNX Runtime, or a failure we raise to be turned into one.</summary>
internal sealed class OrtCallException(int code, string message) : Exception(message)
{
    public int Code { get; } = code;
}

/// <summary>
/// Typed calls into one <c>OrtApi</c> function table. Every returned OrtStatus* is checked and released
/// (<see cref="Check"/>): a non-null status becomes an <see cref="OrtCallException"/> carrying its message.
/// </summary>
internal sealed unsafe class OrtApi
{
    private readonly void** _t;

    public OrtApi(IntPtr table, uint version)
    {
        if (table == IntPtr.Zero) throw new ArgumentNullException(nameof(table));
        _t = (void**)table;
        Version = version;
    }

    public IntPtr Table => (IntPtr)_t;
    public uint Version { get; }

    /// <summary>
    /// The OrtApi version the plugin asks for: the oldest that has every entry it calls (KernelContext_ParallelFor,
    /// ReadOpAttr and the custom-op shape-inference calls arrived in 1.17; every other slot used is older). Asking for
    /// the oldest sufficient version, not the header's newest, is what lets one build run on every ONNX Runtime from
    /// 1.17 on: GetApi(v) returns null on a runtime older than v. OrtCustomOp.version is set to it as well, so ONNX
    /// Runtime reads no struct field newer than this.
    /// </summary>
    public const uint RequiredVersion = 17;

    /// <summary>The ONNX Runtime release that introduced <see cref="RequiredVersion"/>.</summary>
    public const string OldestRuntime = "1.17";

    /// <summary>Reads the OrtApi table of <see cref="RequiredVersion"/> from an OrtApiBase*; a runtime too old is a clear error.</summary>
    public static OrtApi FromBase(IntPtr apiBase)
    {
        if (apiBase == IntPtr.Zero) throw new OrtCallException(OrtErrorCode.InvalidArgument, "OrtApiBase pointer is null");
        IntPtr api = GetApi(apiBase, RequiredVersion);
        if (api != IntPtr.Zero) return new OrtApi(api, RequiredVersion);
        throw new OrtCallException(OrtErrorCode.Fail,
            $"ONNX Runtime {RuntimeVersion(apiBase)} does not offer OrtApi version {RequiredVersion}: the plugin needs ONNX Runtime {OldestRuntime} or newer");
    }

    /// <summary>
    /// A table good only for creating a status (CreateStatus is slot 0 of every version, and every runtime offers
    /// version 1): used to report that <see cref="FromBase"/> failed. Null if even that is missing.
    /// </summary>
    public static OrtApi? ForStatus(IntPtr apiBase)
    {
        if (apiBase == IntPtr.Zero) return null;
        IntPtr api = GetApi(apiBase, 1);
        return api == IntPtr.Zero ? null : new OrtApi(api, 1);
    }

    // struct OrtApiBase { const OrtApi* (*GetApi)(uint32_t version); const char* (*GetVersionString)(void); }
    // (order must match the C header)
    private static IntPtr GetApi(IntPtr apiBase, uint version) =>
        ((delegate* unmanaged<uint, IntPtr>)((void**)apiBase)[0])(version);

    /// <summary>The runtime's own version string (OrtApiBase.GetVersionString), or "(unknown)".</summary>
    public static string RuntimeVersion(IntPtr apiBase)
    {
        var f = (delegate* unmanaged<byte*>)((void**)apiBase)[1];
        if (f is null) return "(unknown)";
        byte* s = f();
        return s is null ? "(unknown)" : Marshal.PtrToStringUTF8((IntPtr)s) ?? "(unknown)";
    }

    private void* Slot(int index) => _t[index];

    // ---- status handling ----

    public IntPtr CreateStatus(int code, string message)
    {
        byte[] utf8 = Utf8Z(message);
        fixed (byte* p = utf8)
            return ((delegate* unmanaged<int, byte*, IntPtr>)Slot(OrtApiSlots.CreateStatus))(code, p);
    }

    public void ReleaseStatus(IntPtr status) =>
        ((delegate* unmanaged<IntPtr, void>)Slot(OrtApiSlots.ReleaseStatus))(status);

    /// <summary>Throws (after releasing the status) when an API call returned an error.</summary>
    public void Check(IntPtr status, string what)
    {
        if (status == IntPtr.Zero) return;
        int code = ((delegate* unmanaged<IntPtr, int>)Slot(OrtApiSlots.GetErrorCode))(status);
        byte* msg = ((delegate* unmanaged<IntPtr, byte*>)Slot(OrtApiSlots.GetErrorMessage))(status);
        string text = msg is null ? "(no message)" : Marshal.PtrToStringUTF8((IntPtr)msg) ?? "(no message)";
        ReleaseStatus(status);
        throw new OrtCallException(code, $"{what}: {text}");
    }

    /// <summary>True when the call succeeded; releases and ignores an error status (for optional attributes).</summary>
    public bool Succeeded(IntPtr status)
    {
        if (status == IntPtr.Zero) return true;
        ReleaseStatus(status);
        return false;
    }

    // ---- registration ----

    public IntPtr CreateCustomOpDomain(string domain)
    {
        IntPtr result;
        byte[] name = Utf8Z(domain);
        fixed (byte* p = name)
            Check(((delegate* unmanaged<byte*, IntPtr*, IntPtr>)Slot(OrtApiSlots.CreateCustomOpDomain))(p, &result), "CreateCustomOpDomain");
        return result;
    }

    public void CustomOpDomainAdd(IntPtr domain, IntPtr op) =>
        Check(((delegate* unmanaged<IntPtr, IntPtr, IntPtr>)Slot(OrtApiSlots.CustomOpDomain_Add))(domain, op), "CustomOpDomain_Add");

    public void AddCustomOpDomain(IntPtr sessionOptions, IntPtr domain) =>
        Check(((delegate* unmanaged<IntPtr, IntPtr, IntPtr>)Slot(OrtApiSlots.AddCustomOpDomain))(sessionOptions, domain), "AddCustomOpDomain");

    // ---- kernel info (attributes) ----

    public string? KernelInfoNodeName(IntPtr info)
    {
        nuint size = 0;
        var f = (delegate* unmanaged<IntPtr, byte*, nuint*, IntPtr>)Slot(OrtApiSlots.KernelInfo_GetNodeName);
        if (!Succeeded(f(info, null, &size)) || size == 0) return null;
        var buf = new byte[(int)size];
        fixed (byte* p = buf)
            if (!Succeeded(f(info, p, &size))) return null;
        return Encoding.UTF8.GetString(buf, 0, Math.Max(0, (int)size - 1));
    }

    public long[]? KernelInfoInts(IntPtr info, string name)
    {
        byte[] n = Utf8Z(name);
        var f = (delegate* unmanaged<IntPtr, byte*, long*, nuint*, IntPtr>)Slot(OrtApiSlots.KernelInfoGetAttributeArray_int64);
        nuint size = 0;
        fixed (byte* pn = n)
        {
            if (!Succeeded(f(info, pn, null, &size))) return null;
            var values = new long[(int)size];
            if (size == 0) return values;
            fixed (long* pv = values)
                Check(f(info, pn, pv, &size), $"reading attribute '{name}'");
            return values;
        }
    }

    public long? KernelInfoInt(IntPtr info, string name)
    {
        byte[] n = Utf8Z(name);
        long v;
        fixed (byte* pn = n)
            return Succeeded(((delegate* unmanaged<IntPtr, byte*, long*, IntPtr>)Slot(OrtApiSlots.KernelInfoGetAttribute_int64))(info, pn, &v)) ? v : null;
    }

    public float? KernelInfoFloat(IntPtr info, string name)
    {
        byte[] n = Utf8Z(name);
        float v;
        fixed (byte* pn = n)
            return Succeeded(((delegate* unmanaged<IntPtr, byte*, float*, IntPtr>)Slot(OrtApiSlots.KernelInfoGetAttribute_float))(info, pn, &v)) ? v : null;
    }

    public string? KernelInfoString(IntPtr info, string name)
    {
        byte[] n = Utf8Z(name);
        var f = (delegate* unmanaged<IntPtr, byte*, byte*, nuint*, IntPtr>)Slot(OrtApiSlots.KernelInfoGetAttribute_string);
        nuint size = 0;
        fixed (byte* pn = n)
        {
            if (!Succeeded(f(info, pn, null, &size))) return null;
            if (size == 0) return "";
            var buf = new byte[(int)size];
            fixed (byte* pb = buf)
                Check(f(info, pn, pb, &size), $"reading attribute '{name}'");
            return Encoding.UTF8.GetString(buf, 0, Math.Max(0, (int)size - 1));
        }
    }

    // ---- kernel context and tensors ----

    /// <summary>
    /// The node's input <paramref name="index"/> when it is a constant initializer (owned by the session, valid for the
    /// kernel's life), else IntPtr.Zero: also when the input is absent or the query fails.
    /// </summary>
    public IntPtr KernelInfoConstantInput(IntPtr info, nuint index)
    {
        int isConstant = 0;
        IntPtr value = IntPtr.Zero;
        IntPtr status = ((delegate* unmanaged<IntPtr, nuint, int*, IntPtr*, IntPtr>)Slot(OrtApiSlots.KernelInfoGetConstantInput_tensor))(info, index, &isConstant, &value);
        if (status != IntPtr.Zero) { ReleaseStatus(status); return IntPtr.Zero; }
        return isConstant != 0 ? value : IntPtr.Zero;
    }

    public nuint KernelContextInputCount(IntPtr context)
    {
        nuint n;
        Check(((delegate* unmanaged<IntPtr, nuint*, IntPtr>)Slot(OrtApiSlots.KernelContext_GetInputCount))(context, &n), "KernelContext_GetInputCount");
        return n;
    }

    public IntPtr KernelContextInput(IntPtr context, nuint index)
    {
        IntPtr v;
        Check(((delegate* unmanaged<IntPtr, nuint, IntPtr*, IntPtr>)Slot(OrtApiSlots.KernelContext_GetInput))(context, index, &v), "KernelContext_GetInput");
        return v;
    }

    public IntPtr KernelContextOutput(IntPtr context, nuint index, ReadOnlySpan<long> dims)
    {
        IntPtr v;
        fixed (long* pd = dims)
            Check(((delegate* unmanaged<IntPtr, nuint, long*, nuint, IntPtr*, IntPtr>)Slot(OrtApiSlots.KernelContext_GetOutput))(context, index, pd, (nuint)dims.Length, &v), "KernelContext_GetOutput");
        return v;
    }

    public void KernelContextParallelFor(IntPtr context, delegate* unmanaged<void*, nuint, void> fn, nuint total, void* state) =>
        Check(((delegate* unmanaged<IntPtr, delegate* unmanaged<void*, nuint, void>, nuint, nuint, void*, IntPtr>)Slot(OrtApiSlots.KernelContext_ParallelFor))(context, fn, total, 0, state), "KernelContext_ParallelFor");

    public float* TensorData(IntPtr value)
    {
        void* p;
        Check(((delegate* unmanaged<IntPtr, void**, IntPtr>)Slot(OrtApiSlots.GetTensorMutableData))(value, &p), "GetTensorMutableData");
        return (float*)p;
    }

    /// <summary>Element type (ONNXTensorElementDataType) and dims of a tensor value.</summary>
    public (int ElementType, long[] Dims) TensorTypeAndShape(IntPtr value)
    {
        IntPtr info;
        Check(((delegate* unmanaged<IntPtr, IntPtr*, IntPtr>)Slot(OrtApiSlots.GetTensorTypeAndShape))(value, &info), "GetTensorTypeAndShape");
        try { return TypeAndShapeOf(info); }
        finally { ReleaseTensorTypeAndShapeInfo(info); }
    }

    public (int ElementType, long[] Dims) TypeAndShapeOf(IntPtr info)
    {
        int type;
        nuint count;
        Check(((delegate* unmanaged<IntPtr, int*, IntPtr>)Slot(OrtApiSlots.GetTensorElementType))(info, &type), "GetTensorElementType");
        Check(((delegate* unmanaged<IntPtr, nuint*, IntPtr>)Slot(OrtApiSlots.GetDimensionsCount))(info, &count), "GetDimensionsCount");
        var dims = new long[(int)count];
        if (count > 0)
            fixed (long* pd = dims)
                Check(((delegate* unmanaged<IntPtr, long*, nuint, IntPtr>)Slot(OrtApiSlots.GetDimensions))(info, pd, count), "GetDimensions");
        return (type, dims);
    }

    public void ReleaseTensorTypeAndShapeInfo(IntPtr info) =>
        ((delegate* unmanaged<IntPtr, void>)Slot(OrtApiSlots.ReleaseTensorTypeAndShapeInfo))(info);

    // ---- shape inference ----

    /// <summary>
    /// Symbolic dim names of a type/shape info ("" where the dim is numeric or unknown). The strings are copied:
    /// the pointers ORT hands out live only as long as the info.
    /// </summary>
    public string[] SymbolicDimensions(IntPtr info, int rank)
    {
        var names = new string[rank];
        if (rank == 0) return names;
        var ptrs = new IntPtr[rank];
        fixed (IntPtr* pp = ptrs)
            Check(((delegate* unmanaged<IntPtr, IntPtr*, nuint, IntPtr>)Slot(OrtApiSlots.GetSymbolicDimensions))(info, pp, (nuint)rank), "GetSymbolicDimensions");
        for (int i = 0; i < rank; i++) names[i] = ptrs[i] == IntPtr.Zero ? "" : Marshal.PtrToStringUTF8(ptrs[i]) ?? "";
        return names;
    }

    public IntPtr ShapeInferInputTypeShape(IntPtr context, nuint index)
    {
        IntPtr info;
        Check(((delegate* unmanaged<IntPtr, nuint, IntPtr*, IntPtr>)Slot(OrtApiSlots.ShapeInferContext_GetInputTypeShape))(context, index, &info), "ShapeInferContext_GetInputTypeShape");
        return info;
    }

    public long[]? ShapeInferInts(IntPtr context, string name)
    {
        byte[] n = Utf8Z(name);
        IntPtr attr;
        fixed (byte* pn = n)
            if (!Succeeded(((delegate* unmanaged<IntPtr, byte*, IntPtr*, IntPtr>)Slot(OrtApiSlots.ShapeInferContext_GetAttribute))(context, pn, &attr)) || attr == IntPtr.Zero)
                return null;
        var read = (delegate* unmanaged<IntPtr, int, void*, nuint, nuint*, IntPtr>)Slot(OrtApiSlots.ReadOpAttr);
        const int OrtOpAttrInts = 2;
        nuint bytes = 0;
        // A first call with no buffer reports the size needed (and fails); the second reads.
        IntPtr probe = read(attr, OrtOpAttrInts, null, 0, &bytes);
        if (probe != IntPtr.Zero) ReleaseStatus(probe);
        var values = new long[(int)(bytes / sizeof(long))];
        if (values.Length == 0) return values;
        fixed (long* pv = values)
            Check(read(attr, OrtOpAttrInts, pv, bytes, &bytes), $"reading attribute '{name}'");
        return values;
    }

    public long? ShapeInferInt(IntPtr context, string name)
    {
        byte[] n = Utf8Z(name);
        IntPtr attr;
        fixed (byte* pn = n)
            if (!Succeeded(((delegate* unmanaged<IntPtr, byte*, IntPtr*, IntPtr>)Slot(OrtApiSlots.ShapeInferContext_GetAttribute))(context, pn, &attr)) || attr == IntPtr.Zero)
                return null;
        const int OrtOpAttrInt = 1;
        long v;
        nuint bytes;
        return Succeeded(((delegate* unmanaged<IntPtr, int, void*, nuint, nuint*, IntPtr>)Slot(OrtApiSlots.ReadOpAttr))(attr, OrtOpAttrInt, &v, sizeof(long), &bytes)) ? v : null;
    }

    public void ShapeInferSetOutput(IntPtr context, nuint index, int elementType, ReadOnlySpan<long> dims, IReadOnlyList<string>? symbolic = null)
    {
        IntPtr info;
        Check(((delegate* unmanaged<IntPtr*, IntPtr>)Slot(OrtApiSlots.CreateTensorTypeAndShapeInfo))(&info), "CreateTensorTypeAndShapeInfo");
        try
        {
            Check(((delegate* unmanaged<IntPtr, int, IntPtr>)Slot(OrtApiSlots.SetTensorElementType))(info, elementType), "SetTensorElementType");
            fixed (long* pd = dims)
                Check(((delegate* unmanaged<IntPtr, long*, nuint, IntPtr>)Slot(OrtApiSlots.SetDimensions))(info, pd, (nuint)dims.Length), "SetDimensions");
            if (symbolic is not null && symbolic.Any(n => n.Length > 0))
            {
                var utf8 = symbolic.Select(Utf8Z).ToArray();
                var handles = utf8.Select(b => GCHandle.Alloc(b, GCHandleType.Pinned)).ToArray();
                try
                {
                    var ptrs = handles.Select(h => h.AddrOfPinnedObject()).ToArray();
                    fixed (IntPtr* pp = ptrs)
                        Check(((delegate* unmanaged<IntPtr, IntPtr*, nuint, IntPtr>)Slot(OrtApiSlots.SetSymbolicDimensions))(info, pp, (nuint)ptrs.Length), "SetSymbolicDimensions");
                }
                finally { foreach (var h in handles) h.Free(); }
            }
            Check(((delegate* unmanaged<IntPtr, nuint, IntPtr, IntPtr>)Slot(OrtApiSlots.ShapeInferContext_SetOutputTypeShape))(context, index, info), "ShapeInferContext_SetOutputTypeShape");
        }
        finally { ReleaseTensorTypeAndShapeInfo(info); }
    }

    internal static byte[] Utf8Z(string s)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
        Encoding.UTF8.GetBytes(s, bytes);
        return bytes;
    }
}
