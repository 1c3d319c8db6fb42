using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.GraphRewrite.IO;

/// <summary>
/// A temp file next to the output that takes the large weights a rewrite creates, so a model bigger than memory is
/// rewritten holding one node's weights at a time: each new inline initializer of at least <see cref="Threshold"/>
/// bytes is appended here and becomes an external reference (mapped with <see cref="ModelIO.MapLocation"/>), and
/// <see cref="ModelIO.Save(ModelProto, string, ModelSaveOptions)"/> later streams it into the output's side file.
/// The file is created exclusively (never through a planted symlink) and deleted on dispose, success or failure.
/// </summary>
public sealed class SpillFile : IDisposable
{
    private readonly FileStream _stream;

    /// <param name="directory">The output's folder (the spill must be on the same disk the output is written to).</param>
    /// <param name="stem">Names the file: ".STEM.PID.GUID.spill".</param>
    public SpillFile(string directory, string stem, long threshold)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threshold, 1);
        System.IO.Directory.CreateDirectory(directory);
        this.Directory = PathSafety.RealPath(directory);
        Location = $".{stem}.{Environment.ProcessId}.{Guid.NewGuid():N}.spill";
        Threshold = threshold;
        _stream = new FileStream(Path.Combine(this.Directory, Location), FileMode.CreateNew, FileAccess.Write, FileShare.Read, 1 << 20);
    }

    /// <summary>The folder the file is in; <see cref="Location"/> is relative to it.</summary>
    public string Directory { get; }
    public string Location { get; }
    public long Threshold { get; }
    /// <summary>Bytes and tensors moved to the file so far.</summary>
    public long Bytes { get; private set; }
    public int Tensors { get; private set; }

    /// <summary>Moves every inline FLOAT/INT64 initializer of at least <see cref="Threshold"/> bytes to the file; returns how many.</summary>
    public int SpillInitializers(ModelProto model)
    {
        int moved = 0;
        foreach (var g in Topology.AllGraphs(model.Graph))
            foreach (var t in g.Initializer)
            {
                if (ExternalData.IsExternal(t) || !t.HasRawData || t.RawData.Length < Threshold) continue;
                long? expected;
                try { expected = ExternalData.ExpectedByteLength(t); }
                catch (Exception e) when (e is InvalidDataException or OverflowException) { continue; }
                if (expected != t.RawData.Length) continue; // malformed data stays inline, untouched
                long offset = _stream.Position;
                _stream.Write(t.RawData.Span);
                ExternalData.SetExternal(t, Location, offset, expected.Value, null);
                Bytes += expected.Value;
                Tensors++;
                moved++;
            }
        if (moved > 0)
        {
            // Readers open the file by name: the bytes must have left this stream's buffer.
            _stream.Flush();
            ModelIO.MapLocation(model, Location, Directory);
        }
        return moved;
    }

    public void Dispose()
    {
        _stream.Dispose();
        try { File.Delete(Path.Combine(Directory, Location)); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
