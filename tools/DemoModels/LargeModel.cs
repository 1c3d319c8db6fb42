using System.Runtime.InteropServices;
using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.DemoModels;

/// <summary>What <see cref="LargeModel.Write"/> wrote.</summary>
public sealed record LargeModelInfo(string ModelPath, string DataPath, int Layers, long Channels, long DataBytes, long LargestTensorBytes);

/// <summary>
/// A ConvTranspose-heavy model of a requested size with all weights in external data, for the large-model run of
/// <c>optimize</c>: X[1,C,4,4] -> L x (ConvTranspose k4 s2 p1 + bias, ReLU, MaxPool 2) with the last layer not pooled,
/// so every layer sees a 4x4 input and ONNX Runtime runs it quickly whatever C is. Each weight is [C, C, 4, 4] of at
/// most 256 MiB; the layer count and C are chosen so the data is at least the requested size. The weights are
/// streamed to "large.onnx.data" in 1 MiB chunks (seeded, He-uniform), never held whole in memory.
/// </summary>
public static class LargeModel
{
    public const string FileName = "large.onnx";
    private const long MaxTensorBytes = 256L << 20;
    private const long Kernel = 4;
    private const long Spatial = 4;

    public static LargeModelInfo Write(string directory, long megabytes, ulong seed = DemoModelCatalog.Seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(megabytes, 1);
        long total = megabytes << 20;
        int layers = (int)Math.Max(2, (total + MaxTensorBytes - 1) / MaxTensorBytes);
        long perTensor = (total + layers - 1) / layers;
        // [C, C, 4, 4] floats = 64 C^2 bytes; round C up so the total is at least what was asked (bias adds a little).
        long channels = (long)Math.Ceiling(Math.Sqrt(perTensor / (double)(Kernel * Kernel * sizeof(float))));

        var dir = Directory.CreateDirectory(directory).FullName;
        var modelPath = Path.Combine(dir, FileName);
        var dataName = FileName + ".data";
        var b = new ModelBuilder("large_convtranspose", NetBuilder.Opset, NetBuilder.IrVersion);
        string x = b.Input("X", [1, channels, Spatial, Spatial]);
        var model = b.Build();
        var rng = new SplitMix64(seed);
        long offset = 0, largest = 0;
        using (var data = AtomicFile.Begin(Path.Combine(dir, dataName)))
        {
            TensorProto Stream(string name, long[] dims, float bound)
            {
                long count = dims.Aggregate(1L, (p, d) => p * d);
                var chunk = new float[1 << 18];
                for (long done = 0; done < count; done += chunk.Length)
                {
                    int n = (int)Math.Min(chunk.Length, count - done);
                    for (int i = 0; i < n; i++) chunk[i] = rng.NextUniform(bound);
                    data.Stream.Write(MemoryMarshal.AsBytes(chunk.AsSpan(0, n)));
                }
                var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
                t.Dims.AddRange(dims);
                ExternalData.SetExternal(t, dataName, offset, count * sizeof(float), null);
                offset += count * sizeof(float);
                largest = Math.Max(largest, count * sizeof(float));
                model.Graph.Initializer.Add(t);
                return t;
            }

            // Taps per output: (K/s)^2 = 4 per input channel; He-uniform keeps ReLU activations at scale.
            float bound = (float)Math.Sqrt(6.0 / (channels * 4));
            for (int l = 0; l < layers; l++)
            {
                string module = $"up.{l}";
                var w = Stream($"{module}.weight", [channels, channels, Kernel, Kernel], bound);
                var bias = Stream($"{module}.bias", [channels], (float)(1.0 / Math.Sqrt(channels * 4)));
                x = b.Node(Ops.ConvTranspose.OpType, [x, w.Name, bias.Name],
                [
                    Attributes.Ints(Ops.ConvTranspose.KernelShape, [Kernel, Kernel]),
                    Attributes.Ints(Ops.ConvTranspose.Pads, [1, 1, 1, 1]),
                    Attributes.Ints(Ops.ConvTranspose.Strides, [2, 2]),
                ], $"/up/{module}/ConvTranspose_output_0", $"/up/{module}/ConvTranspose");
                if (l == layers - 1) break;
                x = b.Node(Ops.Relu.OpType, [x], null, $"/up/{module}/Relu_output_0", $"/up/{module}/Relu");
                x = b.Node(Ops.MaxPool.OpType, [x],
                [
                    Attributes.Ints(Ops.MaxPool.KernelShape, [2, 2]),
                    Attributes.Ints(Ops.MaxPool.Strides, [2, 2]),
                ], $"/up/{module}/MaxPool_output_0", $"/up/{module}/MaxPool");
            }
            data.Stream.Flush(flushToDisk: true);
            data.Commit();
        }
        model.Graph.Node[^1].Output[0] = "Y";
        b.Output("Y", [1, channels, 2 * Spatial, 2 * Spatial]);
        ModelIO.Save(model, modelPath, new ModelSaveOptions { SourceDirectory = dir });
        return new LargeModelInfo(modelPath, Path.Combine(dir, dataName), layers, channels, offset, largest);
    }
}
