using System.Runtime.InteropServices;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.GraphRewrite.IO;

/// <summary>
/// A temp file next to the output that takes the large weights a rewrite creates, so a model bigger than memory is
/// rewritten holding one node's weights at a time: each new inline initializer of at least <see cref="Threshold"/>
/// bytes is appended here and becomes an external reference (mapped with <see cref="ModelIO.MapLocation"/>), and
/// <see cref="ModelIO.Save(ModelProto, string, ModelSaveOptions)"/> later streams it into the output's side file.
/// Rewrites that compute a large weight can also write it here slice by slice (<see cref="For"/>), so it is never
/// held whole in memory.
/// The file is created exclusively (never through a planted symlink) and deleted on dispose, success or failure.
/// </summary>
public sealed class SpillFile : IDisposable
{
    /// <summary>Default largest slice <see cref="IWeightSink.WriteFloats"/> computes at a time (unless one granule is larger).</summary>
    public const long SliceBytes = 4L << 20;

    private readonly FileStream _stream;
    // Reused by every streamed tensor: the only buffer streaming needs.
    private float[] _slice = [];
    private readonly long _sliceFloats;

    /// <param name="directory">The output's folder (the spill must be on the same disk the output is written to).</param>
    /// <param name="stem">Names the file: ".STEM.PID.GUID.spill".</param>
    /// <param name="sliceBytes">Largest slice a streamed tensor is computed in (tests make it tiny to cut rows anywhere).</param>
    public SpillFile(string directory, string stem, long threshold, long sliceBytes = SliceBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threshold, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(sliceBytes, sizeof(float));
        _sliceFloats = sliceBytes / sizeof(float);
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

    /// <summary>A sink writing computed weights of <paramref name="model"/> (the model being rewritten) to this file.</summary>
    public IWeightSink For(ModelProto model) => new Sink(this, model);

    private sealed class Sink(SpillFile file, ModelProto model) : IWeightSink
    {
        public long Threshold => file.Threshold;

        public TensorProto WriteFloats(string name, long[] dims, long granule, FloatSliceFill fill) =>
            file.WriteFloats(model, name, dims, granule, fill);
    }

    private TensorProto WriteFloats(ModelProto model, string name, long[] dims, long granule, FloatSliceFill fill)
    {
        long n = IO.Tensors.ElementCount(dims);
        if (granule < 1 || (n > 0 && n % granule != 0))
            throw new ArgumentException($"tensor '{name}': granule {granule} does not divide its {n} values");
        long per = Math.Max(granule, _sliceFloats / granule * granule);
        if (_slice.Length < Math.Min(per, n)) _slice = new float[Math.Min(per, n)];
        long offset = _stream.Position;
        for (long first = 0; first < n; first += per)
        {
            var dst = _slice.AsSpan(0, (int)Math.Min(per, n - first));
            fill(first, dst);
            _stream.Write(MemoryMarshal.AsBytes(dst));
        }
        // Readers open the file by name: the bytes must have left this stream's buffer.
        _stream.Flush();
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        t.Dims.AddRange(dims);
        ExternalData.SetExternal(t, Location, offset, n * sizeof(float), null);
        ModelIO.MapLocation(model, Location, Directory);
        Bytes += n * sizeof(float);
        Tensors++;
        return t;
    }

    public void Dispose()
    {
        _stream.Dispose();
        try { File.Delete(Path.Combine(Directory, Location)); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
