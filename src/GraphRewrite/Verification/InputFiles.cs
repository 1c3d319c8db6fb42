using System.Globalization;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Runtime;

namespace OnnxDeconv.GraphRewrite.Verification;

/// <summary>
/// Tensors stored as serialized TensorProto files in the ONNX backend-test layout (<c>input_0.pb</c>, <c>input_1.pb</c>, ...),
/// bound to graph inputs in order.
/// </summary>
public static class InputFiles
{
    /// <summary>Files named <c>{prefix}_N.pb</c> in <paramref name="dir"/>, sorted by N.</summary>
    public static IReadOnlyList<string> Numbered(string dir, string prefix) =>
        Directory.GetFiles(dir, prefix + "_*.pb")
            .Select(p => (Path: p, N: int.TryParse(Path.GetFileNameWithoutExtension(p)[(prefix.Length + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : -1))
            .Where(x => x.N >= 0)
            .OrderBy(x => x.N)
            .Select(x => x.Path)
            .ToList();

    /// <summary>
    /// Loads <c>input_N.pb</c> from <paramref name="dir"/> (a data-set folder, or a case folder holding <c>test_data_set_0</c>)
    /// and names them after <paramref name="inputNames"/> in order.
    /// </summary>
    public static IReadOnlyList<TensorValue> LoadInputs(string dir, IReadOnlyList<string> inputNames)
    {
        if (!Directory.Exists(dir))
            throw new VerificationInputException($"{dir}: input folder not found");
        var files = Numbered(dir, "input");
        if (files.Count == 0 && Directory.Exists(Path.Combine(dir, "test_data_set_0")))
            files = Numbered(Path.Combine(dir, "test_data_set_0"), "input");
        if (files.Count == 0)
            throw new VerificationInputException($"{dir}: no input_N.pb files (ONNX backend-test layout)");
        if (files.Count > inputNames.Count)
            throw new VerificationInputException($"{dir}: {files.Count} input files but the model has {inputNames.Count} graph inputs ({string.Join(", ", inputNames)})");
        return files.Select((f, i) => LoadTensor(f) with { Name = inputNames[i] }).ToList();
    }

    /// <summary>Reads one serialized TensorProto; every failure names the file.</summary>
    public static TensorValue LoadTensor(string path)
    {
        try { return TensorValue.Load(path); }
        catch (ModelFormatException e) { throw new VerificationInputException(e.Message, e); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or NotSupportedException or OverflowException)
        { throw new VerificationInputException($"{path}: cannot read tensor: {e.Message}", e); }
    }
}
