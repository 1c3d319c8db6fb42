using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.Cli.Output;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Timing;

namespace OnnxDeconv.Cli.Verification;

/// <summary>
/// What optimize/test use to rewrite a model and to configure ONNX Runtime sessions. Tests override them per call
/// (AsyncLocal, so parallel tests do not see each other's fakes), e.g. with a deliberately broken rewrite.
/// </summary>
internal static class CliHooks
{
    private static readonly AsyncLocal<Func<ModelProto, OptimizeOptions, OptimizeResult>?> OptimizerOverride = new();
    private static readonly AsyncLocal<Action<SessionOptions>?> ConfigureOverride = new();
    private static readonly AsyncLocal<ICandidateTimer?> TimerOverride = new();
    private static readonly AsyncLocal<string?> CacheDirectoryOverride = new();
    private static readonly AsyncLocal<long?> AutoMaxModelBytesOverride = new();

    /// <summary>
    /// --target auto times each node's candidates side by side in ONNX Runtime, each session holding the node's weights;
    /// for a model with more weights than this (as --verify auto's whole-model limit), that would hold several copies of
    /// the largest tensor, so optimize lowers it with the portable target instead (tests lower the limit).
    /// </summary>
    public static long AutoMaxModelBytes => AutoMaxModelBytesOverride.Value ?? OptimizeSession.LargeModelBytes;

    /// <summary>How --target auto times candidates: null = in ONNX Runtime; tests script it.</summary>
    public static ICandidateTimer? Timer => TimerOverride.Value;

    /// <summary>Where --target auto keeps its decisions (tests use a temp folder, never the user's cache).</summary>
    public static string CacheDirectory => CacheDirectoryOverride.Value ?? DecisionCache.DefaultDirectory();

    public static IDisposable OverrideAuto(ICandidateTimer? timer = null, string? cacheDirectory = null, long? maxModelBytes = null)
    {
        var (oldTimer, oldDir, oldMax) = (TimerOverride.Value, CacheDirectoryOverride.Value, AutoMaxModelBytesOverride.Value);
        if (timer is not null) TimerOverride.Value = timer;
        if (cacheDirectory is not null) CacheDirectoryOverride.Value = cacheDirectory;
        if (maxModelBytes is not null) AutoMaxModelBytesOverride.Value = maxModelBytes;
        return new Restore(() => { TimerOverride.Value = oldTimer; CacheDirectoryOverride.Value = oldDir; AutoMaxModelBytesOverride.Value = oldMax; });
    }

    public static Func<ModelProto, OptimizeOptions, OptimizeResult> Optimizer =>
        OptimizerOverride.Value ?? GraphRewrite.Pipeline.Optimizer.Run;

    /// <summary>
    /// Session configuration used for verification and test runs. By default the OnnxDeconv custom op is registered
    /// in-process, so models rewritten with --target plugin run (registration is harmless for models that do not use it).
    /// </summary>
    public static Action<SessionOptions>? ConfigureSession => ConfigureOverride.Value ?? RegisterPlugin;

    private static readonly Action<SessionOptions> RegisterPlugin = so => so.RegisterOnnxDeconv();

    public static IDisposable Override(Func<ModelProto, OptimizeOptions, OptimizeResult>? optimizer = null, Action<SessionOptions>? configure = null)
    {
        var (oldOpt, oldConf) = (OptimizerOverride.Value, ConfigureOverride.Value);
        if (optimizer is not null) OptimizerOverride.Value = optimizer;
        if (configure is not null) ConfigureOverride.Value = configure;
        return new Restore(() => { OptimizerOverride.Value = oldOpt; ConfigureOverride.Value = oldConf; });
    }
}
