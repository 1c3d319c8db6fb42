using System.Runtime.InteropServices;
using OnnxDeconv.Geometry;
using OnnxDeconv.Kernels;
using S = OnnxDeconv.Plugin.TransposedConvSchema;

namespace OnnxDeconv.Plugin;

/// <summary>
/// The OrtCustomOp callbacks of TransposedConv. Every [UnmanagedCallersOnly] entry catches everything: an exception
/// escaping into ONNX Runtime aborts the process, so errors become an OrtStatus (or a safe default) instead.
/// </summary>
internal static unsafe partial class TransposedConvOp
{
    internal const int ElementFloat = 1;         // ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
    internal const int ElementFloat16 = 10;      // ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16
    private const int InputRequired = 0;         // INPUT_OUTPUT_REQUIRED
    private const int InputOptional = 1;         // INPUT_OUTPUT_OPTIONAL
    private const int MemTypeDefault = 0;        // OrtMemTypeDefault

    private static OrtApi? _api;
    private static IntPtr _nameUtf8;
    private static IntPtr _halfOp; // the float16 OrtCustomOp (callbacks receive the op pointer)

    /// <summary>The API table used by every callback (one ONNX Runtime per process/runtime).</summary>
    internal static OrtApi Api => _api ?? throw new InvalidOperationException("TransposedConv used before registration");

    /// <summary>
    /// Builds the OrtCustomOp of one element type (<see cref="ElementFloat"/> or <see cref="ElementFloat16"/>) in native
    /// memory (once per process); the pointer is never freed. Both are registered under one name: ONNX Runtime merges
    /// same-named ops of a domain into one schema whose every input/output allows either type, and picks the kernel
    /// whose types match the node (X, W, B and Y all float, or all float16).
    /// </summary>
    internal static IntPtr Create(OrtApi api, int elementType)
    {
        _api = api;
        if (_nameUtf8 == IntPtr.Zero) _nameUtf8 = AllocUtf8(S.OpType);
        bool half = elementType == ElementFloat16;
        if (!half && elementType != ElementFloat) throw new ArgumentException($"element type {elementType} is not float (1) or float16 (10)");
        var op = (OrtCustomOpNative*)NativeMemory.AllocZeroed((nuint)sizeof(OrtCustomOpNative));
        op->Version = api.Version;
        op->CreateKernel = IntPtr.Zero;   // V2 entries are used (version > 15 and KernelCompute == null)
        op->GetName = (IntPtr)(delegate* unmanaged<IntPtr, IntPtr>)&GetName;
        op->GetExecutionProviderType = (IntPtr)(delegate* unmanaged<IntPtr, IntPtr>)&GetExecutionProviderType;
        op->GetInputType = half ? (IntPtr)(delegate* unmanaged<IntPtr, nuint, int>)&GetHalfType : (IntPtr)(delegate* unmanaged<IntPtr, nuint, int>)&GetInputType;
        op->GetInputTypeCount = (IntPtr)(delegate* unmanaged<IntPtr, nuint>)&GetInputTypeCount;
        op->GetOutputType = half ? (IntPtr)(delegate* unmanaged<IntPtr, nuint, int>)&GetHalfType : (IntPtr)(delegate* unmanaged<IntPtr, nuint, int>)&GetOutputType;
        op->GetOutputTypeCount = (IntPtr)(delegate* unmanaged<IntPtr, nuint>)&GetOutputTypeCount;
        op->KernelCompute = IntPtr.Zero;
        op->KernelDestroy = (IntPtr)(delegate* unmanaged<IntPtr, void>)&KernelDestroy;
        op->GetInputCharacteristic = (IntPtr)(delegate* unmanaged<IntPtr, nuint, int>)&GetInputCharacteristic;
        op->GetOutputCharacteristic = (IntPtr)(delegate* unmanaged<IntPtr, nuint, int>)&GetOutputCharacteristic;
        op->GetInputMemoryType = (IntPtr)(delegate* unmanaged<IntPtr, nuint, int>)&GetInputMemoryType;
        op->GetVariadicInputMinArity = (IntPtr)(delegate* unmanaged<IntPtr, int>)&One;
        op->GetVariadicInputHomogeneity = (IntPtr)(delegate* unmanaged<IntPtr, int>)&One;
        op->GetVariadicOutputMinArity = (IntPtr)(delegate* unmanaged<IntPtr, int>)&One;
        op->GetVariadicOutputHomogeneity = (IntPtr)(delegate* unmanaged<IntPtr, int>)&One;
        op->CreateKernelV2 = (IntPtr)(delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr*, IntPtr>)&CreateKernelV2;
        op->KernelComputeV2 = (IntPtr)(delegate* unmanaged<IntPtr, IntPtr, IntPtr>)&KernelComputeV2;
        op->InferOutputShapeFn = (IntPtr)(delegate* unmanaged<IntPtr, IntPtr, IntPtr>)&InferOutputShape;
        op->GetStartVersion = (IntPtr)(delegate* unmanaged<IntPtr, int>)&GetStartVersion;
        op->GetEndVersion = (IntPtr)(delegate* unmanaged<IntPtr, int>)&GetEndVersion;
        op->GetMayInplace = (IntPtr)(delegate* unmanaged<int**, int**, nuint>)&NoIndexMap;
        op->ReleaseMayInplace = (IntPtr)(delegate* unmanaged<int*, int*, void>)&ReleaseIndexMap;
        op->GetAliasMap = (IntPtr)(delegate* unmanaged<int**, int**, nuint>)&NoIndexMap;
        op->ReleaseAliasMap = (IntPtr)(delegate* unmanaged<int*, int*, void>)&ReleaseIndexMap;
        if (half) _halfOp = (IntPtr)op;
        return (IntPtr)op;
    }

    internal static IntPtr AllocUtf8(string s)
    {
        byte[] b = OrtApi.Utf8Z(s);
        var p = (byte*)NativeMemory.Alloc((nuint)b.Length);
        b.CopyTo(new Span<byte>(p, b.Length));
        return (IntPtr)p;
    }

    [UnmanagedCallersOnly] private static IntPtr GetName(IntPtr op) => _nameUtf8;
    [UnmanagedCallersOnly] private static IntPtr GetExecutionProviderType(IntPtr op) => IntPtr.Zero; // CPU
    [UnmanagedCallersOnly] private static int GetInputType(IntPtr op, nuint index) => ElementFloat;
    [UnmanagedCallersOnly] private static nuint GetInputTypeCount(IntPtr op) => 3;
    [UnmanagedCallersOnly] private static int GetOutputType(IntPtr op, nuint index) => ElementFloat;
    [UnmanagedCallersOnly] private static int GetHalfType(IntPtr op, nuint index) => ElementFloat16;
    [UnmanagedCallersOnly] private static nuint GetOutputTypeCount(IntPtr op) => 1;
    [UnmanagedCallersOnly] private static int GetInputCharacteristic(IntPtr op, nuint index) => index == S.InputB ? InputOptional : InputRequired;
    [UnmanagedCallersOnly] private static int GetOutputCharacteristic(IntPtr op, nuint index) => InputRequired;
    [UnmanagedCallersOnly] private static int GetInputMemoryType(IntPtr op, nuint index) => MemTypeDefault;
    [UnmanagedCallersOnly] private static int One(IntPtr op) => 1;
    [UnmanagedCallersOnly] private static int GetStartVersion(IntPtr op) => S.Version;
    [UnmanagedCallersOnly] private static int GetEndVersion(IntPtr op) => S.Version;

    [UnmanagedCallersOnly]
    private static nuint NoIndexMap(int** inputIndex, int** outputIndex)
    {
        if (inputIndex is not null) *inputIndex = null;
        if (outputIndex is not null) *outputIndex = null;
        return 0;
    }

    [UnmanagedCallersOnly] private static void ReleaseIndexMap(int* inputIndex, int* outputIndex) { }

    /// <summary>Turns any exception into an OrtStatus; never throws itself.</summary>
    private static IntPtr ToStatus(Exception e, string? node)
    {
        try
        {
            int code = e switch
            {
                OrtCallException o => o.Code == OrtErrorCode.Ok ? OrtErrorCode.Fail : o.Code,
                TransposedConvException or ArgumentException => OrtErrorCode.InvalidArgument,
                _ => OrtErrorCode.Fail,
            };
            string where = node is null ? $"{S.Domain}:{S.OpType}" : $"node '{node}' ({S.Domain}:{S.OpType})";
            string detail = e is OrtCallException or TransposedConvException ? e.Message : $"{e.GetType().Name}: {e.Message}";
            return Api.CreateStatus(code, $"{where}: {detail}");
        }
        catch
        {
            // Building the message failed (e.g. out of memory): still report a failure, never throw.
            try { return _api?.CreateStatus(OrtErrorCode.Fail, "TransposedConv: internal error") ?? IntPtr.Zero; }
            catch { return IntPtr.Zero; }
        }
    }

    [UnmanagedCallersOnly]
    private static IntPtr CreateKernelV2(IntPtr op, IntPtr apiTable, IntPtr info, IntPtr* kernel)
    {
        string? node = null;
        try
        {
            *kernel = IntPtr.Zero;
            var api = Api;
            node = api.KernelInfoNodeName(info);
            var attrs = TransposedConvAttributes.Read(
                n => api.KernelInfoInts(info, n), n => api.KernelInfoInt(info, n),
                n => api.KernelInfoFloat(info, n), n => api.KernelInfoString(info, n));
            var state = new KernelState(attrs, string.IsNullOrEmpty(node) ? null : node);
            if (op == _halfOp) ConvertConstantHalfInputs(api, info, state);
            *kernel = GCHandle.ToIntPtr(GCHandle.Alloc(state));
            return IntPtr.Zero;
        }
        catch (Exception e) { return ToStatus(e, node); }
    }

    [UnmanagedCallersOnly]
    private static void KernelDestroy(IntPtr kernel)
    {
        try { if (kernel != IntPtr.Zero) GCHandle.FromIntPtr(kernel).Free(); }
        catch { /* nothing sensible to report from a void callback; never let it escape */ }
    }

    [UnmanagedCallersOnly]
    private static IntPtr KernelComputeV2(IntPtr kernel, IntPtr context)
    {
        KernelState? state = null;
        try
        {
            state = (KernelState)GCHandle.FromIntPtr(kernel).Target!;
            Compute(state, Api, context);
            return IntPtr.Zero;
        }
        catch (Exception e) { return ToStatus(e, state?.Node); }
    }

    private static void Compute(KernelState state, OrtApi api, IntPtr context)
    {
        var a = state.Attributes;
        nuint inputs = api.KernelContextInputCount(context);
        IntPtr xv = api.KernelContextInput(context, S.InputX);
        IntPtr wv = inputs > S.InputW ? api.KernelContextInput(context, S.InputW) : IntPtr.Zero;
        IntPtr bv = inputs > S.InputB ? api.KernelContextInput(context, S.InputB) : IntPtr.Zero;
        if (xv == IntPtr.Zero) throw new TransposedConvException("X", "input X is missing");
        if (wv == IntPtr.Zero) throw new TransposedConvException("W", "input W (packed weights) is missing");

        var (xType, xShape) = api.TensorTypeAndShape(xv);
        RequireFloat("X", xType, xType);
        var (g, wanted, plan) = state.GeometryFor(xShape);

        var (wType, wShape) = api.TensorTypeAndShape(wv);
        RequireFloat("W", wType, xType);
        if (wShape.Length != 1 || wShape[0] != wanted)
            throw new TransposedConvException("W", $"packed W has shape [{string.Join(",", wShape)}]; this geometry needs a 1-D tensor of {wanted} values (in_channels {a.InChannels}, out_channels {a.OutChannels}, group {a.Group}, kernel_shape [{string.Join(",", a.KernelShape)}])");

        long biasCount = 0;
        if (bv != IntPtr.Zero)
        {
            var (bType, bShape) = api.TensorTypeAndShape(bv);
            RequireFloat("B", bType, xType);
            if (bShape.Length != 1 || bShape[0] != a.OutChannels)
                throw new TransposedConvException("B", $"B has shape [{string.Join(",", bShape)}]; must be [{a.OutChannels}] (out_channels)");
            biasCount = a.OutChannels;
        }

        long[] yShape = g.OutputShape;
        IntPtr yv = api.KernelContextOutput(context, 0, yShape);
        long xCount = Count(xShape), yCount = Count(yShape);
        if (yCount == 0) return; // empty batch: nothing to compute
        if (xCount > int.MaxValue || yCount > int.MaxValue || wanted > int.MaxValue)
            throw new TransposedConvException("X", $"tensors above {int.MaxValue} elements are not supported (X {xCount}, Y {yCount})");

        var parallel = new OrtParallelFor(api, context);
        if (xType == ElementFloat16)
        {
            RunHalf(state, plan, api, xv, wv, biasCount > 0 ? bv : IntPtr.Zero, yv, xCount, wanted, biasCount, yCount, parallel);
            return;
        }
        float* px = api.TensorData(xv), pw = api.TensorData(wv), py = api.TensorData(yv);
        float* pb = biasCount > 0 ? api.TensorData(bv) : null;
        DeconvKernel.Run(plan, a.Epilogue,
            new ReadOnlySpan<float>(px, (int)xCount), new ReadOnlySpan<float>(pw, (int)wanted),
            biasCount > 0 ? new ReadOnlySpan<float>(pb, (int)biasCount) : ReadOnlySpan<float>.Empty,
            new Span<float>(py, (int)yCount), parallel);
    }

    /// <summary>Every input is float, or every input is float16 (<paramref name="xType"/> decides which).</summary>
    private static void RequireFloat(string input, int type, int xType)
    {
        if (type != ElementFloat && type != ElementFloat16)
            throw new TransposedConvException(input, $"input {input} has element type {type} (ONNXTensorElementDataType); TransposedConv takes float (1) or float16 (10)");
        if (type != xType)
            throw new TransposedConvException(input, $"input {input} has element type {type} but X has {xType}; X, W and B must have one type");
    }

    private static long Count(long[] dims)
    {
        long n = 1;
        foreach (var d in dims) n = checked(n * d);
        return n;
    }

    /// <summary>Output type and shape from X's (possibly symbolic) shape, so ONNX Runtime knows Y before running.</summary>
    [UnmanagedCallersOnly]
    private static IntPtr InferOutputShape(IntPtr op, IntPtr context)
    {
        try
        {
            var api = Api;
            // The context owns this info (the C++ wrapper release()s it unfreed): never release it here.
            IntPtr xInfo = api.ShapeInferInputTypeShape(context, S.InputX);
            var (xType, x) = api.TypeAndShapeOf(xInfo);
            string[] xNames = api.SymbolicDimensions(xInfo, x.Length);
            long[]? k = api.ShapeInferInts(context, S.KernelShape);
            long[]? s = api.ShapeInferInts(context, S.Strides);
            long[]? d = api.ShapeInferInts(context, S.Dilations);
            long[]? p = api.ShapeInferInts(context, S.Pads);
            long[]? opad = api.ShapeInferInts(context, S.OutputPadding);
            long? cout = api.ShapeInferInt(context, S.OutChannels);
            // Leave the shape to run time when anything is missing; CreateKernel reports the missing attribute.
            if (k is null || s is null || d is null || p is null || opad is null || cout is null) return IntPtr.Zero;
            int r = k.Length;
            if (x.Length == 0) return IntPtr.Zero; // rank unknown
            if (x.Length != r + 2 || s.Length != r || d.Length != r || p.Length != 2 * r || opad.Length != r)
                throw new TransposedConvException("X", $"X has rank {x.Length}; kernel_shape has {r} axes, so X must have rank {r + 2}");
            var y = new long[r + 2];
            y[0] = x[0];
            y[1] = cout.Value;
            for (int i = 0; i < r; i++)
                y[i + 2] = x[i + 2] < 0 ? -1 : s[i] * (x[i + 2] - 1) + opad[i] + d[i] * (k[i] - 1) + 1 - p[i] - p[i + r];
            // Unknown dims must get names: ONNX Runtime's memory planner treats two unnamed unknown dims as equal and
            // reuses buffers of different real sizes (seen on a VAE decoder with dynamic H/W). The batch keeps X's name;
            // a spatial dim is named after X's dim and the attributes (same formula on the same dim = same size, which
            // is true), or gets a process-unique name when X's dim has none.
            var names = new string[r + 2];
            Array.Fill(names, "");
            if (x[0] < 0) names[0] = xNames[0].Length > 0 ? xNames[0] : UniqueDimName();
            for (int i = 0; i < r; i++)
                if (x[i + 2] < 0)
                    names[i + 2] = xNames[i + 2].Length > 0
                        ? $"{xNames[i + 2]}*{s[i]}+{opad[i] + d[i] * (k[i] - 1) + 1 - s[i] - p[i] - p[i + r]}"
                        : UniqueDimName();
            // Y has X's type (float or float16; unknown X: the op's own type).
            int yType = xType is ElementFloat or ElementFloat16 ? xType : op == _halfOp ? ElementFloat16 : ElementFloat;
            api.ShapeInferSetOutput(context, 0, yType, y, names);
            return IntPtr.Zero;
        }
        catch (Exception e) { return ToStatus(e, null); }
    }

    private static long _unknownDims;

    private static string UniqueDimName() => $"onnxdeconv_dim_{Interlocked.Increment(ref _unknownDims)}";

    /// <summary>Per-node state behind the opaque kernel pointer (a GCHandle).</summary>
    private sealed class KernelState(TransposedConvAttributes attributes, string? node)
    {
        public TransposedConvAttributes Attributes { get; } = attributes;
        public string? Node { get; } = node;
        /// <summary>float16 kernels: W and B widened to float32 once at creation when they are constant initializers.</summary>
        public float[]? ConstantW { get; set; }
        public float[]? ConstantB { get; set; }

        // The last geometry, reused while X's shape repeats (the usual case): no geometry rebuild per call.
        // Immutable and swapped as a whole, so concurrent Run calls on one session are safe.
        // The plan is held here rather than only in the kernel's shared plan cache, which a process running many
        // distinct geometries could otherwise churn into a plan rebuild per call.
        private sealed record Cached(long[] XShape, ConvTransposeGeometry Geometry, long PackedLength, DeconvPlan Plan);
        private Cached? _last;

        public (ConvTransposeGeometry Geometry, long PackedLength, DeconvPlan Plan) GeometryFor(long[] xShape)
        {
            var last = Volatile.Read(ref _last);
            if (last is not null && last.Plan.Isa == KernelIsaSelector.Active && last.XShape.AsSpan().SequenceEqual(xShape))
                return (last.Geometry, last.PackedLength, last.Plan);
            var g = Attributes.Geometry(xShape);
            var fresh = new Cached(xShape, g, DeconvKernel.PackedWeightLength(g), DeconvKernel.GetPlan(g, KernelIsaSelector.Active, null));
            Volatile.Write(ref _last, fresh);
            return (fresh.Geometry, fresh.PackedLength, fresh.Plan);
        }
    }

    /// <summary>Runs the kernel's work items on the session's intra-op pool (KernelContext_ParallelFor).</summary>
    private sealed class OrtParallelFor(OrtApi api, IntPtr context) : IParallelFor
    {
        public void For(int count, Action<int> body)
        {
            if (count <= 0) return;
            if (count == 1) { body(0); return; }
            var job = new ParallelJob(body);
            var handle = GCHandle.Alloc(job);
            try
            {
                api.KernelContextParallelFor(context, &RunItem, (nuint)count, (void*)GCHandle.ToIntPtr(handle));
            }
            finally { handle.Free(); }
            if (job.Error is { } e) throw new OrtCallException(OrtErrorCode.Fail, $"kernel work item failed: {e.GetType().Name}: {e.Message}");
        }

        [UnmanagedCallersOnly]
        private static void RunItem(void* state, nuint index)
        {
            ParallelJob? job = null;
            try
            {
                job = (ParallelJob)GCHandle.FromIntPtr((IntPtr)state).Target!;
                if (job.Error is null) job.Body((int)index);
            }
            catch (Exception e)
            {
                if (job is not null) Interlocked.CompareExchange(ref job.Error, e, null);
            }
        }
    }

    private sealed class ParallelJob(Action<int> body)
    {
        public readonly Action<int> Body = body;
        public Exception? Error;
    }
}
