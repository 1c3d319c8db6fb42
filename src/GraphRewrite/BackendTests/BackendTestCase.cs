using OnnxDeconv.GraphRewrite.Verification;

namespace OnnxDeconv.GraphRewrite.BackendTests;

/// <summary>One folder in the ONNX backend-test layout: <c>model.onnx</c> and <c>test_data_set_*/input_N.pb, output_N.pb</c>.</summary>
public sealed record BackendTestCase(string Name, string Directory, string ModelPath, IReadOnlyList<string> DataSets)
{
    public const string ModelFile = "model.onnx";
    public const string DataSetPrefix = "test_data_set_";

    /// <summary>
    /// The cases under <paramref name="path"/>: the folder itself when it holds <c>model.onnx</c>, otherwise each
    /// immediate sub-folder that does (sorted by name). Throws <see cref="VerificationInputException"/> naming the path
    /// when it is missing or holds no case.
    /// </summary>
    public static IReadOnlyList<BackendTestCase> Discover(string path)
    {
        var full = Path.GetFullPath(path);
        if (!System.IO.Directory.Exists(full))
            throw new VerificationInputException($"{path}: folder not found");
        if (File.Exists(Path.Combine(full, ModelFile)))
            return [FromFolder(full)];
        var cases = System.IO.Directory.GetDirectories(full)
            .Where(d => File.Exists(Path.Combine(d, ModelFile)))
            .OrderBy(d => d, StringComparer.Ordinal)
            .Select(FromFolder)
            .ToList();
        if (cases.Count == 0)
            throw new VerificationInputException($"{path}: no {ModelFile} in it or in its sub-folders (expected the ONNX backend-test layout)");
        return cases;
    }

    private static BackendTestCase FromFolder(string dir)
    {
        var sets = System.IO.Directory.GetDirectories(dir, DataSetPrefix + "*")
            .OrderBy(d => int.TryParse(Path.GetFileName(d)[DataSetPrefix.Length..], out var n) ? n : int.MaxValue)
            .ThenBy(d => d, StringComparer.Ordinal)
            .ToList();
        return new BackendTestCase(Path.GetFileName(dir), dir, Path.Combine(dir, ModelFile), sets);
    }
}
