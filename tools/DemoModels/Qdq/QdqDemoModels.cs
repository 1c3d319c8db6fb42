using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;

namespace OnnxDeconv.DemoModels.Qdq;

/// <summary>QDQ versions of demo models: the float model quantized by <see cref="StaticQdqQuantizer"/> on a seeded calibration set.</summary>
public static class QdqDemoModels
{
    /// <summary>Calibration sets per model: enough for stable MinMax ranges, few enough to generate in a second.</summary>
    public const int CalibrationSets = 8;

    /// <summary>Seeds of the calibration sets: disjoint from the seeds tests and verify use for their inputs (0-7, the catalog seed).</summary>
    public const ulong CalibrationSeed = DemoModelCatalog.Seed + 1000;

    public static IReadOnlyList<IReadOnlyList<TensorValue>> CalibrationSet(ModelProto fp32) =>
        Enumerable.Range(0, CalibrationSets).Select(i => DemoInputs.For(fp32, CalibrationSeed + (ulong)i)).ToList();

    public static ModelProto Quantize(ModelProto fp32)
    {
        var q = StaticQdqQuantizer.Quantize(fp32, CalibrationSet(fp32));
        q.Graph.Name = fp32.Graph.Name + "_qdq";
        return q;
    }
}
