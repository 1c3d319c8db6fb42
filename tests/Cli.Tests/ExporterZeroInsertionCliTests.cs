using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.TestSupport;
using static OnnxDeconv.Cli.Tests.CliHarness;

namespace OnnxDeconv.Cli.Tests;

/// <summary>`info` and `optimize --target portable` on the exporter-style DCGAN (zero insertion by Reshape/Concat interleaves).</summary>
public class ExporterZeroInsertionCliTests
{
    [Fact]
    public void Info_ExporterDcgan_ListsBothZeroInsertionsWithStrideTwo()
    {
        using var dir = new TempDir();
        string input = dir.File("dcgan.onnx");
        ModelIO.Save(ExporterZeroInsertionModels.Dcgan(), input);
        var r = Run("info", input);
        Assert.True(r.Code == 0, r.ToString());
        Assert.DoesNotContain("No zero-insertion -> Conv patterns", r.Out);
        Assert.Contains("l0_conv", r.Out);
        Assert.Contains("l1_conv", r.Out);
    }

    [Fact]
    public void Info_FlawedExporterDcgan_SaysWhyTheFirstLayerIsNotZeroInsertion()
    {
        using var dir = new TempDir();
        string input = dir.File("dcgan.onnx");
        ModelIO.Save(ExporterZeroInsertionModels.Dcgan(ExporterFlaw.NonzeroBorder), input);
        var r = Run("info", input);
        Assert.True(r.Code == 0, r.ToString());
        Assert.Contains("not every gap is zero", r.Flat);
    }

    [Fact]
    public void OptimizePortable_ExporterDcgan_RewritesBothLayersAndVerifies()
    {
        using var dir = new TempDir();
        string input = dir.File("dcgan.onnx"), output = dir.File("out.onnx");
        ModelIO.Save(ExporterZeroInsertionModels.Dcgan(), input);
        var r = Run("optimize", input, "-o", output, "--target", "portable");
        Assert.True(r.Code == 0, r.ToString());
        var model = ModelIO.Load(output);
        Assert.DoesNotContain(model.Graph.Node, n => n.Name.EndsWith("_borderh", StringComparison.Ordinal) || n.Name.EndsWith("_rowcat", StringComparison.Ordinal));
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType == "Conv" && n.Name.EndsWith("_conv", StringComparison.Ordinal)
                                                    && n.Attribute.All(a => a.Name != "strides"));
    }
}
