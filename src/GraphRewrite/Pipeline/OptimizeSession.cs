using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Verification;

namespace OnnxDeconv.GraphRewrite.Pipeline;

/// <summary>How <see cref="OptimizeSession"/> proves a rewrite before it is written.</summary>
public enum VerifyMode
{
    /// <summary>Whole model under <see cref="OptimizeSession.LargeModelBytes"/> of model and weights, else node by node.</summary>
    Auto,
    /// <summary>Run the original and the rewritten model in ONNX Runtime and compare every output.</summary>
    Model,
    /// <summary>Each rewritten node in isolation with only its weights (models too big to run twice).</summary>
    Nodes,
    /// <summary>Write unverified (the outcome says so).</summary>
    None,
}

/// <summary>One file-to-file optimize run, as the CLI's <c>optimize</c> asks for it.</summary>
public sealed record OptimizeRequest
{
    public required string InputPath { get; init; }
    /// <summary>Where to write; null only with <see cref="InPlace"/> (then the input is overwritten).</summary>
    public string? OutputPath { get; init; }
    /// <summary>Allows the output to be the input file; without it the input is never modified.</summary>
    public bool InPlace { get; init; }
    public OptimizeOptions Options { get; init; } = new();
    public VerifyMode Verify { get; init; } = VerifyMode.Auto;
    public VerifyOptions VerifyOptions { get; init; } = new();
    /// <summary>The rewrite itself; null = <see cref="Optimizer.Run(ModelProto, OptimizeOptions)"/> (tests substitute a broken one).</summary>
    public Func<ModelProto, OptimizeOptions, OptimizeResult>? Optimizer { get; init; }
    /// <summary><see cref="Target.Auto"/> on a model with at least this much model and weights is lowered portable, untimed.</summary>
    public long AutoMaxModelBytes { get; init; } = OptimizeSession.LargeModelBytes;
    /// <summary>Told of a policy change as it happens (e.g. auto falling back to portable on a large model).</summary>
    public Action<string>? Warn { get; init; }
}

/// <summary>Peak memory of the run next to the largest tensor: how far from "one tensor at a time" it was.</summary>
public sealed record MemoryReport(long? PeakRssBytes, long LargestTensorBytes, long ModelBytes);

/// <summary>What an <see cref="OptimizeSession"/> run did, for the report.</summary>
public sealed record OptimizeOutcome
{
    public required ModelProto Input { get; init; }
    public required OptimizeResult Result { get; init; }
    public required string OutputPath { get; init; }
    /// <summary>The target actually used (auto may have fallen back to portable on a large model).</summary>
    public required Target Target { get; init; }
    /// <summary>How the rewrite was verified: Model, Nodes, or None when skipped (never Auto).</summary>
    public required VerifyMode VerifyMode { get; init; }
    /// <summary>Null when nothing changed or verification was skipped.</summary>
    public VerificationReport? Verification { get; init; }
    public required bool Written { get; init; }
    /// <summary>The output is the input file (--in-place).</summary>
    public required bool SameFile { get; init; }
    /// <summary>One line: what was written and how it was verified (or why it was not written).</summary>
    public required string Message { get; init; }
    public required MemoryReport Memory { get; init; }

    public bool Passed => Verification?.Passed ?? true;
}

/// <summary>
/// The policy of one optimize run, load to save: whether to verify the whole model or node by node (by size), auto's
/// large-model fallback, spilling rewritten weights of a model with external data to a side file one node at a
/// time, verification, and the atomic write (nothing is written unless verification passed; the input is never
/// modified unless in place). Front ends parse options and print the <see cref="OptimizeOutcome"/>.
/// </summary>
public static class OptimizeSession
{
    /// <summary>
    /// The size (model file plus external data) from which a model counts as large: verify auto checks it node by
    /// node, and auto lowers it portable without timing (timing holds each candidate's session, with the node's
    /// weights, at once). Whole-model timing of external weights has the same limit (<see cref="AutoTuner.WholeModelMaxExternalBytes"/>).
    /// </summary>
    public const long LargeModelBytes = AutoTuner.WholeModelMaxExternalBytes;

    /// <summary>A model that came with external data is written with initializers of at least this many bytes in "OUT.data".</summary>
    public const long ExternalDataThreshold = 1024;

    /// <summary>New initializers of at least this size go to a spill file next to OUT while a model with external data is rewritten.</summary>
    public const long SpillThreshold = 1L << 20;

    public static OptimizeOutcome Run(OptimizeRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        string inPath = request.InputPath;
        if (!File.Exists(inPath)) throw new ModelFormatException($"{inPath}: input model file not found");
        string outPath = request.OutputPath
            ?? (request.InPlace ? inPath : throw new VerificationInputException("-o OUT is required (or --in-place to overwrite IN)"));
        bool sameFile = string.Equals(Path.GetFullPath(outPath), Path.GetFullPath(inPath), StringComparison.Ordinal);
        if (sameFile && !request.InPlace)
            throw new VerificationInputException($"-o {outPath} is the input model; IN is never modified unless you pass --in-place");

        var inBytes = File.ReadAllBytes(inPath);
        var model = ModelIO.Parse(inBytes, inPath);
        var inDir = Path.GetDirectoryName(Path.GetFullPath(inPath))!;
        bool external = ModelIO.AllTensors(model).Any(ExternalData.IsExternal);
        long modelBytes = inBytes.LongLength + ModelIO.AllTensors(model).Where(ExternalData.IsExternal).Sum(TensorBytes);
        var verifyMode = request.Verify == VerifyMode.Auto ? modelBytes < LargeModelBytes ? VerifyMode.Model : VerifyMode.Nodes : request.Verify;

        // The optimizer may edit what it is given: hand it a copy so the original stays intact for verification.
        // External weights stay external (checked against the disk now, read one node at a time by the rewrites,
        // relative to IN's folder); the output writes large tensors to a side file next to OUT.
        var work = model.Clone();
        if (external)
        {
            ModelIO.SetSourceDirectory(model, inDir);
            ModelIO.SetSourceDirectory(work, inDir);
            ModelIO.ValidateExternalData(work);
        }
        // Unless the whole rewritten model is run in memory anyway (verify Model), each node's new weights leave
        // memory right after its rewrite, so a model bigger than memory is rewritten one node at a time.
        using var spill = external && verifyMode is VerifyMode.Nodes or VerifyMode.None
            ? NewSpill(Path.GetDirectoryName(Path.GetFullPath(outPath))!, Path.GetFileName(outPath))
            : null;
        var options = request.Options;
        if (options.Target == Target.Auto && modelBytes >= request.AutoMaxModelBytes)
        {
            request.Warn?.Invoke($"--target auto: {inPath} holds {Mib(modelBytes, "N0")} of model and weights, over the " +
                                 $"{Mib(request.AutoMaxModelBytes, "N0")} auto times node by node in memory; lowering with --target portable " +
                                 "instead (pass --target plugin or portable to choose)");
            options = options with { Target = Target.Portable, PortableOnly = false, Cache = null, Progress = null };
        }
        int spilled = 0;
        var result = (request.Optimizer ?? Optimizer.Run)(work, options with
        {
            // The lowerings write large rearranged weights straight into the spill, slice by slice.
            Spill = spill,
            AfterNode = spill is null ? null : m =>
            {
                // The node's weights (read, and any new ones built in memory) are garbage once spilled; collect them
                // now so the peak is one node's weights, not however many the GC would let pile up on the large
                // object heap (measured on the 2.3 GB model with --verify none: 302 MiB with this, 1,849 MiB without).
                spill.SpillInitializers(m);
                if (spill.Tensors == spilled) return;
                spilled = spill.Tensors;
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            },
        });

        var outcome = new OptimizeOutcome
        {
            Input = model, Result = result, OutputPath = outPath, Target = options.Target, SameFile = sameFile,
            VerifyMode = verifyMode, Written = false, Message = "", Memory = Memory(model, result.Model, modelBytes),
        };
        if (!result.Changed)
        {
            bool otherFolder = !string.Equals(Path.GetDirectoryName(Path.GetFullPath(outPath)), inDir, StringComparison.Ordinal);
            if (!sameFile && external && otherFolder)
                // The side files are relative to IN's folder: carry them along (the model bytes stay as they were).
                Write(outPath, () => ModelIO.Save(model, outPath, new ModelSaveOptions { SourceDirectory = inDir, SortTopologically = false }));
            else if (!sameFile)
                Write(outPath, () => AtomicFile.WriteAllBytes(outPath, inBytes));
            return outcome with
            {
                VerifyMode = VerifyMode.None, Written = !sameFile, Memory = Memory(model, result.Model, modelBytes),
                Message = sameFile ? $"nothing to rewrite: {inPath} left unchanged" : $"nothing to rewrite: wrote {outPath} as a byte-identical copy of {inPath}",
            };
        }

        VerificationReport? verification = null;
        if (verifyMode != VerifyMode.None)
        {
            try
            {
                verification = verifyMode == VerifyMode.Nodes
                    ? NodeVerifier.Verify(model, result.Model, request.VerifyOptions)
                    : Verifier.Verify(ModelSource.FromFile(inPath),
                        ModelSource.FromModel(result.Model, "rewritten model", external ? inDir : null), request.VerifyOptions);
            }
            catch (VerificationInputException e)
            {
                throw new VerificationInputException($"cannot verify the rewrite, {outPath} not written: {e.Message} (or pass --no-verify to skip verification)", e);
            }
        }
        bool ok = verification?.Passed ?? true;
        if (ok)
            Write(outPath, () => ModelIO.Save(result.Model, outPath, external
                ? new ModelSaveOptions { ExternalDataThreshold = ExternalDataThreshold, SourceDirectory = inDir }
                : new ModelSaveOptions()));
        return outcome with
        {
            Verification = verification, Written = ok, Memory = Memory(model, result.Model, modelBytes),
            Message = !ok ? $"verification failed: {outPath} NOT written"
                : verifyMode == VerifyMode.None ? $"verification skipped (--no-verify): wrote {outPath} UNVERIFIED"
                : verifyMode == VerifyMode.Nodes ? $"verified node by node: wrote {outPath}"
                : $"verified: wrote {outPath}",
        };
    }

    private static string Mib(long bytes, string format) => $"{(bytes / (1024.0 * 1024.0)).ToString(format, System.Globalization.CultureInfo.InvariantCulture)} MiB";

    private static SpillFile NewSpill(string outDir, string outName)
    {
        try { return new SpillFile(outDir, outName, SpillThreshold); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new ModelFormatException($"{Path.Combine(outDir, outName)}: cannot create a spill file for the rewritten weights in {outDir}: {e.Message}", e); }
    }

    private static void Write(string outPath, Action write)
    {
        try { write(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new ModelFormatException($"{outPath}: cannot write the output model: {e.Message}", e); }
    }

    /// <summary>Bytes of a tensor's data (external length or inline size); 0 when its shape is unusable.</summary>
    private static long TensorBytes(TensorProto t)
    {
        try
        {
            if (ExternalData.IsExternal(t)) return ExternalData.ExpectedByteLength(t) ?? 0;
            return t.HasRawData ? t.RawData.Length : ExternalData.ExpectedByteLength(t) ?? 0;
        }
        catch (Exception e) when (e is InvalidDataException or OverflowException) { return 0; }
    }

    private static MemoryReport Memory(ModelProto input, ModelProto output, long modelBytes)
    {
        long largest = ModelIO.AllTensors(input).Concat(ModelIO.AllTensors(output)).Select(TensorBytes).DefaultIfEmpty(0).Max();
        return new MemoryReport(PeakRss(), largest, modelBytes);
    }

    /// <summary>The process's peak resident set (VmHWM in /proc/self/status), or the runtime's peak working set elsewhere.</summary>
    public static long? PeakRss()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal)
                    && long.TryParse(line["VmHWM:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture, out var kb))
                    return kb * 1024;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        try { return System.Diagnostics.Process.GetCurrentProcess().PeakWorkingSet64; }
        catch (PlatformNotSupportedException) { return null; }
    }
}
