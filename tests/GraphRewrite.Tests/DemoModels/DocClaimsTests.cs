using OnnxDeconv.DemoModels;
using OnnxDeconv.DemoModels.Figures;
using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.Kernels;
using OnnxDeconv.TestSupport;

namespace OnnxDeconv.GraphRewrite.Tests.DemoModels;

/// <summary>
/// The equivalences docs/how-it-works.md states, checked on the demo models through ONNX Runtime, and the doc's
/// generated parts (figures, cost table) in sync with the code. Tolerance: atol 1e-5 + rtol 1e-4 (float32).
/// </summary>
public sealed class DocClaimsTests
{
    private static ModelProto Demo(string name) => ModelIO.Load(Path.Combine(RepoPaths.DemoModels, name));

    [Fact]
    public void UpfirdnZeroInsertion_EqualsConvTransposeWithFlippedKernel()
    {
        // Conv(zero-stuffed x padded (2, 1), w) keeps the taps on real pixels: ConvTranspose(x, flip(w)^T, s=2, pads 1).
        var model = Demo("upfirdn_zero_insertion.onnx");
        var conv = model.Graph.Node.Single(n => n.OpType == Ops.Conv.OpType);
        var x = DemoInputs.For(model).Single();
        var w = Tensors.ToFloats(model.Graph.Initializer.Single(t => t.Name == conv.Input[1]));
        var bias = Tensors.ToFloats(model.Graph.Initializer.Single(t => t.Name == conv.Input[2]));
        const int c = 16, k = 4;
        var wt = new float[w.Length];
        for (int co = 0; co < c; co++)
        for (int ci = 0; ci < c; ci++)
        for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++)
            wt[((ci * c + co) * k + (k - 1 - a)) * k + (k - 1 - b)] = w[((co * c + ci) * k + a) * k + b];
        var g = ConvTransposeGeometry.Resolve(new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1] }, x.Dims, [c, c, k, k]);
        var expected = ReferenceConvTranspose.Compute(g, x.AsFloats(), wt, bias);

        var actual = Assert.Single(OrtRunner.RunOnce(model, [x]));
        Assert.Equal(g.OutputShape, actual.Dims);
        DemoModelRuntimeTests.AssertClose(expected, actual.AsFloats(), "upfirdn vs ConvTranspose");
    }

    [Fact]
    public void ResizeNearestThenConv3x3_EqualsConvTransposeK4S2P1WithBoxedKernel()
    {
        // Per axis, Resize(x2, asymmetric/floor) then Conv(k3, p1) is ConvTranspose(k4, s2, p1) with w' = [w2, w1+w2, w0+w1, w0].
        var model = Demo("esrgan_upsampler.onnx");
        var conv = model.Graph.Node.First(n => n.OpType == Ops.Conv.OpType);
        var x = DemoInputs.For(model).Single();
        var actual = DemoModelRuntimeTests.CaptureTensor(model, conv.Output[0]);
        var w = Tensors.ToFloats(model.Graph.Initializer.Single(t => t.Name == conv.Input[1]));
        var bias = Tensors.ToFloats(model.Graph.Initializer.Single(t => t.Name == conv.Input[2]));
        const int c = 32;
        var wt = new float[c * c * 16];
        for (int co = 0; co < c; co++)
        for (int ci = 0; ci < c; ci++)
        for (int jh = 0; jh < 3; jh++)
        for (int jw = 0; jw < 3; jw++)
        {
            float v = w[((co * c + ci) * 3 + jh) * 3 + jw];
            foreach (int a in (int[])[2 - jh, 3 - jh])
            foreach (int b in (int[])[2 - jw, 3 - jw])
                wt[((ci * c + co) * 4 + a) * 4 + b] += v;
        }
        var g = ConvTransposeGeometry.Resolve(new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1] }, x.Dims, [c, c, 4, 4]);
        var expected = ReferenceConvTranspose.Compute(g, x.AsFloats(), wt, bias);

        Assert.Equal(g.OutputShape, actual.Dims);
        DemoModelRuntimeTests.AssertClose(expected, actual.AsFloats(), "Resize+Conv vs ConvTranspose");
    }

    [Fact]
    public void CostModel_DcganLayer_GivesTheDocumentedRatios()
    {
        var g = FigureCatalog.DcganLayer();
        var costs = CostModel.ConvTranspose(g).ToDictionary(c => c.Method);
        Assert.Equal(256L * 128 * 16 * 64, g.UsefulMacs);
        Assert.Equal(4 * g.UsefulMacs, costs["Zero insertion + Conv"].Macs);               // s^D = 4
        Assert.Equal(g.UsefulMacs, costs["GEMM + col2im"].Macs);
        Assert.Equal(128L * 16 * 64 * 4, costs["GEMM + col2im"].ScratchBytes);            // Cout*K^2*I^2 floats
        Assert.Equal(128L * 128 * 4, costs["Zero insertion + Conv"].ScratchBytes);         // Cout 128 <= 256 pixels: segmented im2col
        Assert.Equal(256L * 16 * 256 * 4, costs["Zero insertion + Conv"].ScratchWrittenBytes);
        Assert.Equal(81L * 256 * 4 * 4, costs["Polyphase as Conv + DepthToSpace + Slice"].ScratchBytes); // 512 channels > 81 pixels: full im2col
        Assert.Equal(256L * 30 * 30 * 128, CostModel.InRangeMacs(g));                      // 30 of 32 (i, k) pairs per axis survive p=1
        Assert.Equal(128L * 4 * 256 * 4 * 81, costs["Polyphase as Conv + DepthToSpace + Slice"].Macs);
    }

    [Fact]
    public void CostModel_ResizeNearestConv3x3_Is2point25TimesCheaperPerPhase()
    {
        Assert.Equal(2, CostModel.PhaseTaps(kernel: 3, stride: 2, padBegin: 1));
        var (resizeConv, polyphase, upsampled) = CostModel.ResizeConv(64, 64, [32, 32], 3, 2, 1);
        Assert.Equal(2.25, (double)resizeConv / polyphase, 6);
        Assert.Equal(64L * 64 * 64 * 4, upsampled);
    }

    [Fact]
    public void DocsFigures_MatchGeneratorOutput_AndDocEmbedsCostTable()
    {
        var figures = Path.Combine(RepoPaths.Root, "docs", "figures");
        foreach (var (name, content) in FigureCatalog.All())
            Assert.True(File.ReadAllText(Path.Combine(figures, name)) == content,
                $"docs/figures/{name} is stale; run: dotnet run --project tools/DemoModels -- figures --out docs/figures");
        var doc = File.ReadAllText(Path.Combine(RepoPaths.Root, "docs", "how-it-works.md"));
        Assert.Contains(CostModel.MarkdownTable(FigureCatalog.DcganLayer()), doc);
    }
}
