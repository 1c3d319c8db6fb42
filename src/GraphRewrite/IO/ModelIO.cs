using Google.Protobuf;
using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.GraphRewrite.IO;

/// <summary>A model file could not be read or written; the message names the file and what is wrong.</summary>
public sealed class ModelFormatException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Lossless model IO: load then save without edits gives the same bytes (Google.Protobuf keeps unknown fields,
/// onnx.proto mirrors upstream packing). Saves are atomic: temp file in the target folder, then rename.
/// </summary>
public static class ModelIO
{
    public static ModelProto Load(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new ModelFormatException($"{path}: cannot read: {e.Message}", e); }
        return Parse(bytes, path);
    }

    public static ModelProto Parse(byte[] bytes, string sourceName)
    {
        try
        {
            var model = ModelProto.Parser.ParseFrom(bytes);
            if (model.Graph is null)
                throw new ModelFormatException($"{sourceName}: not an ONNX model (no graph)");
            return model;
        }
        catch (InvalidProtocolBufferException e)
        { throw new ModelFormatException($"{sourceName}: not a valid ONNX model (corrupt or truncated protobuf: {e.Message})", e); }
    }

    public static byte[] Serialize(ModelProto model) => model.ToByteArray();

    /// <summary>Writes <paramref name="model"/> to <paramref name="path"/> atomically (temp + rename).</summary>
    public static void Save(ModelProto model, string path) => AtomicFile.Write(path, stream => model.WriteTo(stream));
}

/// <summary>Atomic file writes: a crash or error never leaves a half-written target.</summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full) ?? ".";
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, s => s.Write(bytes));
    public static void WriteAllText(string path, string text) => WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));
}
