using System.Runtime.CompilerServices;
using Google.Protobuf;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.GraphRewrite.IO;

/// <summary>A model file could not be read or written; the message names the file and what is wrong.</summary>
public sealed class ModelFormatException(string message, Exception? inner = null) : InvalidInputException(message, inner);

/// <summary>How <see cref="ModelIO.Save(ModelProto, string, ModelSaveOptions)"/> writes a model.</summary>
public sealed record ModelSaveOptions
{
    /// <summary>
    /// Initializers whose data has at least this many bytes are written to the side file <see cref="ExternalDataFile"/>.
    /// Null: tensors that are inline stay inline; tensors that are already external stay where they are when the
    /// model is saved into the folder it came from, and are copied into the side file when it is saved elsewhere.
    /// </summary>
    public long? ExternalDataThreshold { get; init; }

    /// <summary>Side file name, relative to the model's folder (no <c>..</c>, not absolute). Default: "{model file name}.data".</summary>
    public string? ExternalDataFile { get; init; }

    /// <summary>Folder the model's existing external locations are relative to. Default: where <see cref="ModelIO.Load(string)"/> read it.</summary>
    public string? SourceDirectory { get; init; }

    /// <summary>Each tensor's offset in the side file is a multiple of this (ONNX Runtime can map aligned data directly).</summary>
    public int Alignment { get; init; } = 64;

    /// <summary>Writes a SHA-1 "checksum" entry for each external tensor.</summary>
    public bool WriteChecksums { get; init; }

    /// <summary>Puts every graph in topological order first (graphs already in order are untouched).</summary>
    public bool SortTopologically { get; init; } = true;

    /// <summary>The largest serialized model protobuf can hold; lowered only by tests to exercise the check cheaply.</summary>
    internal long MaxModelBytes { get; init; } = int.MaxValue;
}

/// <summary>
/// Lossless model IO: load then save without edits gives the same bytes (Google.Protobuf keeps unknown fields,
/// onnx.proto mirrors upstream packing). Saves are atomic: temp file in the target folder, then rename.
/// External data (tensor bytes in side files) is resolved against the folder the model was loaded from and is
/// treated as untrusted (see <see cref="ExternalData"/>).
/// </summary>
public static class ModelIO
{
    // Where each loaded model came from (file, or only a folder when declared by SetSourceDirectory), by reference.
    // Locations maps an external location to the folder it is relative to when that is not Directory (e.g. a spill file
    // next to the output while the model is being rewritten).
    private sealed record Source(string? File, string Directory)
    {
        public System.Collections.Immutable.ImmutableDictionary<string, string> Locations { get; init; } =
            System.Collections.Immutable.ImmutableDictionary<string, string>.Empty.WithComparers(StringComparer.Ordinal);
    }
    private static readonly ConditionalWeakTable<ModelProto, Source> Sources = new();

    public static ModelProto Load(string path)
    {
        var full = Path.GetFullPath(path);
        byte[] bytes;
        try
        {
            if (Directory.Exists(full)) throw new ModelFormatException($"{path}: is a directory, not a model file");
            if (!File.Exists(full)) throw new ModelFormatException($"{path}: file not found");
            // Read exactly the length the file reports: a device or a growing file cannot make this read forever.
            using var fs = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read);
            long length = fs.Length;
            if (length == 0) throw new ModelFormatException($"{path}: empty file (0 bytes), not an ONNX model");
            if (length > Array.MaxLength)
                throw new ModelFormatException($"{path}: {length} bytes is over protobuf's 2 GB limit; such models must keep their weights in external data");
            bytes = new byte[length];
            fs.ReadExactly(bytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new ModelFormatException($"{path}: cannot read: {e.Message}", e); }
        var model = Parse(bytes, path);
        Sources.AddOrUpdate(model, new Source(full, Path.GetDirectoryName(full) ?? "."));
        return model;
    }

    public static ModelProto Parse(byte[] bytes, string sourceName)
    {
        if (bytes.Length == 0) throw new ModelFormatException($"{sourceName}: empty file (0 bytes), not an ONNX model");
        ModelProto model;
        try { model = ModelProto.Parser.ParseFrom(bytes); }
        catch (InvalidProtocolBufferException e)
        { throw new ModelFormatException($"{sourceName}: not a valid ONNX model, the file is truncated or corrupt ({e.Message})", e); }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or OverflowException or IndexOutOfRangeException)
        { throw new ModelFormatException($"{sourceName}: not a valid ONNX model, the file is corrupt ({e.Message})", e); }

        // A file cut exactly between two fields still parses; what ONNX requires tells it apart.
        if (!model.HasIrVersion)
            throw new ModelFormatException($"{sourceName}: not an ONNX model (no ir_version; wrong file type or truncated)");
        if (model.Graph is null)
            throw new ModelFormatException($"{sourceName}: not an ONNX model or truncated (no graph)");
        if (model.IrVersion >= 3 && model.OpsetImport.Count == 0)
            throw new ModelFormatException($"{sourceName}: no opset_import (required since IR version 3; truncated file?)");
        return model;
    }

    /// <summary>The folder the model was loaded from (its external data is relative to it), or null for models built in memory.</summary>
    public static string? SourceDirectory(ModelProto model) => Sources.TryGetValue(model, out var s) ? s.Directory : null;

    /// <summary>The file the model was loaded from, or null.</summary>
    public static string? SourcePath(ModelProto model) => Sources.TryGetValue(model, out var s) ? s.File : null;

    /// <summary>Declares the folder <paramref name="model"/>'s external locations are relative to (e.g. after cloning a loaded model).</summary>
    public static void SetSourceDirectory(ModelProto model, string directory) =>
        Sources.AddOrUpdate(model, new Source(null, Path.GetFullPath(directory)));

    /// <summary>
    /// Declares that external tensors of <paramref name="model"/> at <paramref name="location"/> are relative to
    /// <paramref name="directory"/> rather than the model's folder (a spill file next to the output during a rewrite).
    /// Reads and <see cref="Save(ModelProto, string, ModelSaveOptions)"/> honour it; the usual path checks still apply.
    /// </summary>
    public static void MapLocation(ModelProto model, string location, string directory)
    {
        var s = Sources.TryGetValue(model, out var found) ? found : new Source(null, Path.GetFullPath(directory));
        Sources.AddOrUpdate(model, s with { Locations = s.Locations.SetItem(location, Path.GetFullPath(directory)) });
    }

    /// <summary>Gives <paramref name="to"/> (e.g. a clone) the same source folder and location mappings as <paramref name="from"/>.</summary>
    public static void InheritSource(ModelProto from, ModelProto to)
    {
        if (!ReferenceEquals(from, to) && Sources.TryGetValue(from, out var s)) Sources.AddOrUpdate(to, s);
    }

    /// <summary>The folder <paramref name="tensor"/>'s external location is relative to (null when unknown).</summary>
    public static string? DataDirectory(ModelProto model, TensorProto tensor)
    {
        if (!Sources.TryGetValue(model, out var s)) return null;
        if (!s.Locations.IsEmpty && ExternalData.IsExternal(tensor)
            && tensor.ExternalData.FirstOrDefault(e => e.Key == ExternalData.LocationKey) is { } loc
            && s.Locations.TryGetValue(loc.Value, out var dir))
            return dir;
        return s.Directory;
    }

    /// <summary>A tensor's data as little-endian bytes, inline or external (relative to where <paramref name="model"/> was loaded from).</summary>
    public static byte[] TensorBytes(ModelProto model, TensorProto tensor) =>
        WithSource(model, () => ExternalData.ReadBytes(tensor, DataDirectory(model, tensor)));

    /// <summary>
    /// A copy of <paramref name="tensor"/> (one of <paramref name="model"/>'s) that a model built in memory can hold:
    /// external data read in, relative to where <paramref name="model"/> was loaded from; inline tensors just cloned.
    /// </summary>
    public static TensorProto InlineCopy(ModelProto model, TensorProto tensor)
    {
        var copy = tensor.Clone();
        if (ExternalData.IsExternal(tensor)) ExternalData.SetInline(copy, TensorBytes(model, tensor));
        return copy;
    }

    /// <summary>A FLOAT tensor's values, inline or external (relative to where <paramref name="model"/> was loaded from).</summary>
    public static float[] TensorFloats(ModelProto model, TensorProto tensor) =>
        WithSource(model, () => ExternalData.ReadFloats(tensor, DataDirectory(model, tensor)));

    /// <summary>
    /// Checks every external reference of <paramref name="model"/> (location inside the model's folder, range within
    /// the file, length matching the shape) without reading the data; throws the first problem found.
    /// </summary>
    public static void ValidateExternalData(ModelProto model)
    {
        var external = AllTensors(model).Where(ExternalData.IsExternal).ToList();
        if (external.Count == 0) return;
        var dir = SourceDirectory(model)
                  ?? throw new ModelFormatException("model has external data but the folder it is relative to is unknown (not loaded from a file)");
        WithSource(model, () => { foreach (var t in external) ExternalData.Locate(t, dir); return 0; });
    }

    // Names the model file in errors about its tensors.
    private static T WithSource<T>(ModelProto model, Func<T> read)
    {
        try { return read(); }
        catch (ModelFormatException e) when ((SourcePath(model) ?? SourceDirectory(model)) is { } where)
        { throw new ModelFormatException($"{where}: {e.Message}", e); }
    }

    /// <summary>Serializes to bytes (external references are kept as they are); fails clearly over protobuf's 2 GB limit.</summary>
    public static byte[] Serialize(ModelProto model)
    {
        CheckSize(model, "model", int.MaxValue);
        return model.ToByteArray();
    }

    /// <summary>Writes <paramref name="model"/> to <paramref name="path"/> atomically (temp + rename).</summary>
    public static void Save(ModelProto model, string path) => Save(model, path, new ModelSaveOptions());

    /// <summary>
    /// Writes <paramref name="model"/> to <paramref name="path"/> atomically, with its external data (if any, or if
    /// <see cref="ModelSaveOptions.ExternalDataThreshold"/> asks for it) in a side file beside it, also written
    /// atomically and streamed one tensor at a time. The in-memory model is never modified. Renames never follow a
    /// symlink at the target names, and the side file must stay inside the model's folder.
    /// </summary>
    public static void Save(ModelProto model, string path, ModelSaveOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        var full = Path.GetFullPath(path);
        var outDir = Path.GetDirectoryName(full) ?? ".";
        if (Directory.Exists(full)) throw new ModelFormatException($"{path}: is a directory");

        // Clone lazily: tensor bytes (ByteString) are shared, so a clone costs only the structure.
        var work = model;
        ModelProto Mutable() => ReferenceEquals(work, model) ? work = model.Clone() : work;

        if (options.SortTopologically && Topology.AllGraphs(model).Any(g => !Topology.IsSorted(g)))
        {
            try { Topology.SortInPlace(Mutable()); }
            catch (GraphCycleException e) { throw new ModelFormatException($"{path}: cannot save: {e.Message}", e); }
        }

        var sourceDir = options.SourceDirectory is { } sd ? Path.GetFullPath(sd) : SourceDirectory(model);
        var tensors = AllTensors(model).ToList();
        bool anyExternal = tensors.Any(ExternalData.IsExternal);
        bool sameFolder = sourceDir is not null && Directory.Exists(outDir)
                          && PathSafety.RealPath(sourceDir) == PathSafety.RealPath(outDir);
        bool carry = anyExternal && (!sameFolder || options.ExternalDataThreshold is not null || options.ExternalDataFile is not null);
        bool move = options.ExternalDataThreshold is { } threshold
                    && model.Graph is not null
                    && Topology.AllGraphs(model.Graph).SelectMany(g => g.Initializer).Any(t => Externalizable(t, threshold));

        if (!carry && !move)
        {
            CheckSize(work, path, options.MaxModelBytes);
            AtomicFile.Write(full, s => work.WriteTo(s));
            return;
        }
        if (anyExternal && sourceDir is null)
            throw new ModelFormatException(
                $"{path}: cannot save: the model has external data but the folder it is relative to is unknown (not loaded from a file); set ModelSaveOptions.SourceDirectory");

        Mutable();
        var sideName = options.ExternalDataFile ?? Path.GetFileName(full) + ".data";
        var sidePath = SidePath(outDir, sideName, path);
        if (sidePath == PathSafety.RealPath(full))
            throw new ModelFormatException($"{path}: external data file '{sideName}' refused: it is the model file itself");
        var location = sideName.Replace('\\', '/');
        var initializers = new HashSet<TensorProto>(work.Graph is null ? [] : Topology.AllGraphs(work.Graph).SelectMany(g => g.Initializer), ReferenceEqualityComparer.Instance);

        using var side = AtomicFile.Begin(sidePath);
        using var main = AtomicFile.Begin(full);
        long position = 0;
        int align = Math.Max(1, options.Alignment);
        foreach (var t in AllTensors(work))
        {
            bool external = ExternalData.IsExternal(t);
            if (!external && !(options.ExternalDataThreshold is { } thr && initializers.Contains(t) && Externalizable(t, thr)))
                continue;
            long pad = (align - position % align) % align;
            if (pad > 0) { side.Stream.Write(new byte[pad]); position += pad; }
            long offset = position;
            string? checksum;
            long length;
            if (external)
            {
                ExternalData.Region region;
                var dir = Sources.TryGetValue(model, out var src) && ExternalData.Describe(t).Location is var l && src.Locations.TryGetValue(l, out var mapped)
                    ? mapped : sourceDir!;
                try { region = ExternalData.Locate(t, dir); }
                catch (ModelFormatException e) { throw new ModelFormatException($"{path}: cannot save: {e.Message}", e); }
                checksum = ExternalData.CopyTo(region, side.Stream, t.Name);
                length = region.Length;
            }
            else
            {
                var bytes = t.HasRawData ? t.RawData.Memory : ExternalData.InlineBytes(t);
                side.Stream.Write(bytes.Span);
                length = bytes.Length;
                checksum = options.WriteChecksums ? Convert.ToHexStringLower(System.Security.Cryptography.SHA1.HashData(bytes.Span)) : null;
            }
            position += length;
            ExternalData.SetExternal(t, location, offset, length, options.WriteChecksums ? checksum : null);
        }
        side.Stream.Flush(flushToDisk: true);

        CheckSize(work, path, options.MaxModelBytes);
        work.WriteTo(main.Stream);
        main.Stream.Flush(flushToDisk: true);
        // The data first: a model file never points at data that is not there yet.
        side.Commit();
        main.Commit();
    }

    private static string SidePath(string outDir, string sideName, string path)
    {
        string Fail(string why) => throw new ModelFormatException($"{path}: external data file '{sideName}' refused: {why}");
        if (sideName.Length == 0 || sideName.Contains('\0')) Fail("empty or contains NUL");
        if (Path.IsPathRooted(sideName) || sideName.StartsWith('/') || sideName.StartsWith('\\') || sideName.Contains(':'))
            Fail("must be relative to the model's folder");
        if (sideName.Split('/', '\\').Any(p => p is ".." or "." or ""))
            Fail("must not contain '..', '.' or empty path segments");
        var sidePath = Path.GetFullPath(Path.Combine(outDir, sideName.Replace('\\', '/')));
        Directory.CreateDirectory(outDir);
        var sideDir = Path.GetDirectoryName(sidePath) ?? outDir;
        var realOut = PathSafety.RealPath(outDir);
        var realSideDir = PathSafety.RealPath(sideDir);
        if (realSideDir != realOut && !ExternalData.IsInside(realOut, realSideDir))
            Fail($"its folder resolves (through a symlink) to {realSideDir}, outside the output folder {realOut}");
        return Path.Combine(realSideDir, Path.GetFileName(sidePath));
    }

    /// <summary>Inline numeric tensor with at least <paramref name="threshold"/> bytes whose data matches its shape.</summary>
    private static bool Externalizable(TensorProto t, long threshold)
    {
        if (ExternalData.IsExternal(t)) return false;
        long? expected;
        try { expected = ExternalData.ExpectedByteLength(t); }
        catch (Exception e) when (e is InvalidDataException or OverflowException) { return false; }
        if (expected is null || expected < threshold) return false;
        if (t.HasRawData) return t.RawData.Length == expected;
        try { return ExternalData.InlineBytes(t).Length == expected; }
        catch (ModelFormatException) { return false; } // malformed data stays inline, untouched
    }

    /// <summary>Fails clearly when the serialized model would not fit in one protobuf message.</summary>
    private static void CheckSize(ModelProto model, string path, long limit)
    {
        // CalculateSize is int arithmetic and wraps past 2 GB: sum the tensors (each under 2 GB) in long first.
        long tensorBytes = 0;
        foreach (var t in AllTensors(model)) tensorBytes += t.CalculateSize();
        long size = tensorBytes >= limit ? tensorBytes : model.CalculateSize();
        if (size < tensorBytes) size = tensorBytes + (long)uint.MaxValue; // wrapped: certainly over
        if (size > limit)
            throw new ModelFormatException(
                $"{path}: cannot save: the model would be about {size:N0} bytes, over protobuf's limit of {limit:N0}; " +
                "save it with external data (ModelSaveOptions.ExternalDataThreshold, e.g. 1024)");
    }

    /// <summary>
    /// Every tensor of the model: initializers (dense and sparse) and tensor attributes in every graph and subgraph,
    /// in training graphs and in function bodies.
    /// </summary>
    public static IEnumerable<TensorProto> AllTensors(ModelProto model)
    {
        foreach (var g in Topology.AllGraphs(model))
        {
            foreach (var t in g.Initializer) yield return t;
            foreach (var s in g.SparseInitializer)
                foreach (var t in Sparse(s)) yield return t;
            foreach (var n in g.Node)
                foreach (var t in AttributeTensors(n)) yield return t;
        }
        foreach (var f in model.Functions)
            foreach (var n in f.Node)
                foreach (var t in AttributeTensors(n)) yield return t;
    }

    private static IEnumerable<TensorProto> AttributeTensors(NodeProto n)
    {
        foreach (var a in n.Attribute)
        {
            if (a.T is not null) yield return a.T;
            foreach (var t in a.Tensors) yield return t;
            if (a.SparseTensor is not null) foreach (var t in Sparse(a.SparseTensor)) yield return t;
            foreach (var s in a.SparseTensors) foreach (var t in Sparse(s)) yield return t;
        }
    }

    private static IEnumerable<TensorProto> Sparse(SparseTensorProto s)
    {
        if (s.Values is not null) yield return s.Values;
        if (s.Indices is not null) yield return s.Indices;
    }
}
