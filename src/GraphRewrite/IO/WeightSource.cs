using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.GraphRewrite.IO;

/// <summary>
/// Where lowerings read a constant's float values from (inline or external, relative to the model's source folder).
/// One seam, so a test can count reads: a site reads each of its weights once, however many lowerings look at it.
/// </summary>
public interface IWeightSource
{
    float[] ReadFloats(ModelProto model, TensorProto tensor);
}

/// <summary>The model's own data: inline bytes, or the external file next to where the model was loaded from.</summary>
public sealed class ModelWeightSource : IWeightSource
{
    public static readonly ModelWeightSource Instance = new();

    private ModelWeightSource() { }

    public float[] ReadFloats(ModelProto model, TensorProto tensor) => ModelIO.TensorFloats(model, tensor);
}
