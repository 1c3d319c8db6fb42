using System.Runtime.InteropServices;

namespace OnnxDeconv.Plugin;

/// <summary>
/// Registers the <c>ai.onnxdeconv</c> custom-op domain on an ONNX Runtime <c>OrtSessionOptions*</c>.
/// In a .NET host use <c>sessionOptions.RegisterOnnxDeconv()</c> (OnnxDeconv.GraphRewrite.Runtime), which calls
/// <see cref="RegisterInProcess"/>; every other host loads libonnxdeconv.so, whose exported
/// <c>RegisterCustomOps</c> lands in <see cref="Register"/>.
/// The op struct and the domain are created once per process and reused by every session: ONNX Runtime keeps
/// their pointers, so they are never freed.
/// </summary>
public static unsafe class OnnxDeconvPlugin
{
    private static readonly Lock Gate = new();
    private static OrtApi? _api;
    private static IntPtr _domain;

    [DllImport("onnxruntime", EntryPoint = "OrtGetApiBase")]
    private static extern IntPtr OrtGetApiBase();

    /// <summary>
    /// Registers the op on <paramref name="sessionOptions"/> (an <c>OrtSessionOptions*</c>, e.g.
    /// <c>SessionOptions.DangerousGetHandle()</c>) using the onnxruntime library already loaded in this process.
    /// Throws <see cref="InvalidOperationException"/> with ONNX Runtime's message on failure.
    /// </summary>
    public static void RegisterInProcess(IntPtr sessionOptions)
    {
        if (sessionOptions == IntPtr.Zero) throw new ArgumentNullException(nameof(sessionOptions));
        try { RegisterCore(sessionOptions, OrtGetApiBase()); }
        catch (OrtCallException e) { throw new InvalidOperationException($"registering {TransposedConvSchema.Domain}: {e.Message}", e); }
    }

    /// <summary>The native entry's body: returns null (success) or an OrtStatus*; never throws.</summary>
    internal static IntPtr Register(IntPtr sessionOptions, IntPtr apiBase)
    {
        try
        {
            RegisterCore(sessionOptions, apiBase);
            return IntPtr.Zero;
        }
        catch (Exception e)
        {
            try
            {
                // FromBase may be what failed (a runtime too old): every version can still create a status.
                var api = _api ?? OrtApi.ForStatus(apiBase);
                if (api is not null)
                    return api.CreateStatus(OrtErrorCode.Fail, $"{TransposedConvSchema.Domain}: registration failed: {e.Message}");
            }
            catch
            {
                // Nothing left to report through; fall through to the last resort below.
            }
            // No status can be created without a table: say it on stderr rather than pretending success silently.
            try { Console.Error.WriteLine($"{TransposedConvSchema.Domain}: registration failed: {e.Message}"); } catch { }
            return IntPtr.Zero;
        }
    }

    private static void RegisterCore(IntPtr sessionOptions, IntPtr apiBase)
    {
        if (sessionOptions == IntPtr.Zero) throw new OrtCallException(OrtErrorCode.InvalidArgument, "OrtSessionOptions pointer is null");
        IntPtr domain;
        OrtApi api;
        lock (Gate)
        {
            if (_api is null)
            {
                api = OrtApi.FromBase(apiBase);
                IntPtr d = api.CreateCustomOpDomain(TransposedConvSchema.Domain);
                // One kernel per element type under one op name (float X/W/B/Y, float16 X/W/B/Y).
                api.CustomOpDomainAdd(d, TransposedConvOp.Create(api, TransposedConvOp.ElementFloat));
                api.CustomOpDomainAdd(d, TransposedConvOp.Create(api, TransposedConvOp.ElementFloat16));
                _domain = d;
                _api = api;
            }
            domain = _domain;
            api = _api;
        }
        api.AddCustomOpDomain(sessionOptions, domain);
    }
}
