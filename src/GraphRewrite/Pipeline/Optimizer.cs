// Placeholder until the portable branch lands; the lead keeps the portable version on merge.
using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.GraphRewrite.Pipeline;

public static class Optimizer
{
    public static OptimizeResult Run(ModelProto model, OptimizeOptions options) => new(model, []);
}
