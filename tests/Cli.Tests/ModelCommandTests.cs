using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.TestSupport;
using static OnnxDeconv.Cli.Tests.CliHarness;
using CT = OnnxDeconv.GraphRewrite.Ops.ConvTranspose;

namespace OnnxDeconv.Cli.Tests;

/// <summary>`explain MODEL` and `info MODEL` on conformance cases, the real models and small built models.</summary>
public class ModelCommandTests
{
    private static string RealModel(string folder) => Path.Combine(RepoPaths.RealModels, folder, "model.onnx");

    [Fact]
    public void ExplainModel_EveryConformanceConvTranspose_OutputShapeEqualsStoredOutput()
    {
        var cases = RepoPaths.ConformanceCases("convtranspose").ToList();
        Assert.True(cases.Count >= 14, $"only {cases.Count} conformance cases found");
        foreach (var dir in cases)
        {
            var r = Run("explain", dir, "--json");
            Assert.True(r.Code == 0, $"{dir}\n{r}");
            var results = r.Json().GetProperty("results");
            Assert.Equal(1, results.GetArrayLength());
            var expected = TensorValue.Load(Path.Combine(dir, "test_data_set_0", "output_0.pb")).Dims;
            Assert.Equal(expected, results[0].GetProperty("outputShape").Longs());
        }
    }

    [Fact]
    public void ExplainModel_VaeDecoderWithoutShape_SaysWhichInputNeedsShape_WithShapeExplainsAllSix()
    {
        var path = RealModel("vaelight-sd-preview");
        var without = Run("explain", path);
        Assert.True(without.Code == 0, without.ToString());
        Assert.Contains("give it with --shape latent=", without.Out);
        Assert.Contains("give --shape for latent", without.Out);

        var with = Run("explain", path, "--shape", "latent=1,4,32,32", "--json");
        Assert.True(with.Code == 0, with.ToString());
        var results = with.Json().GetProperty("results");
        Assert.Equal(6, results.GetArrayLength());
        Assert.Contains(results.EnumerateArray(), x => x.GetProperty("outputShape").Longs().SequenceEqual([1L, 16, 64, 64]));
    }

    [Fact]
    public void ExplainModel_AndArguments_Together_Exits3()
    {
        var r = Run("explain", RealModel("sed-gen-unet"), "--input", "2");
        Assert.Equal(ExitCodes.InvalidInput, r.Code);
        Assert.Contains("not both", r.Err);
    }

    [Fact]
    public void Info_UNet_ReportsSummaryHistogramAndBothConvTransposeWithProbedShapes()
    {
        var r = Run("info", RealModel("sed-gen-unet"), "--json");
        Assert.True(r.Code == 0, r.ToString());
        var j = r.Json();
        Assert.Equal("pytorch", j.GetProperty("producer").GetProperty("name").GetString());
        Assert.Equal(8, j.GetProperty("irVersion").GetInt64());
        Assert.Contains(j.GetProperty("opsets").EnumerateArray(), o => o.GetProperty("domain").GetString() == "ai.onnx" && o.GetProperty("version").GetInt64() == 18);
        Assert.Contains(j.GetProperty("ops").EnumerateArray(), o => o.GetProperty("op").GetString() == "ConvTranspose" && o.GetProperty("count").GetInt32() == 2);
        Assert.Equal("probed", j.GetProperty("shapeSource").GetString());
        var cts = j.GetProperty("convTranspose");
        Assert.Equal(2, cts.GetArrayLength());
        var first = cts[0];
        Assert.Equal([2L, 2], first.GetProperty("resolved").GetProperty("kernel").Longs());
        Assert.Equal([2L, 2], first.GetProperty("resolved").GetProperty("strides").Longs());
        Assert.Equal([1L, 64, 56, 56], first.GetProperty("inputShape").Longs());
        Assert.Equal([1L, 32, 112, 112], first.GetProperty("outputShape").Longs());
        Assert.Equal(64L * 32 * 4 * 56 * 56, first.GetProperty("macs").GetInt64());
        Assert.Equal(JsonValueKindNull, first.GetProperty("problem").ValueKind);
    }

    private const System.Text.Json.JsonValueKind JsonValueKindNull = System.Text.Json.JsonValueKind.Null;

    [Fact]
    public void Info_VaeDecoder_NeedsShapeForSymbolicHW_ThenProbedOutputsMatchStoredData()
    {
        var path = RealModel("vaelight-sd-preview");
        var without = Run("info", path, "--json").Json();
        Assert.Equal(["latent"], without.GetProperty("inputsNeedingShape").EnumerateArray().Select(x => x.GetString()!).ToArray());
        Assert.Contains(without.GetProperty("convTranspose").EnumerateArray(), c => c.GetProperty("problem").GetString()!.Contains("unknown"));
        var text = Run("info", path);
        Assert.Contains("--shape latent=", text.Out);

        var r = Run("info", path, "--shape", "latent=1,4,32,32", "--json");
        Assert.True(r.Code == 0, r.ToString());
        var j = r.Json();
        // The declared output shapes are wrong in this export; the probed ones must equal the stored reference outputs.
        var outputs = j.GetProperty("outputs");
        for (int i = 0; i < outputs.GetArrayLength(); i++)
        {
            var stored = TensorValue.Load(Path.Combine(Path.GetDirectoryName(path)!, "test_data_set_0", $"output_{i}.pb")).Dims;
            Assert.Equal(stored, outputs[i].GetProperty("shape").Longs());
        }
        Assert.All(j.GetProperty("convTranspose").EnumerateArray(), c => Assert.Equal(System.Text.Json.JsonValueKind.Null, c.GetProperty("problem").ValueKind));
    }

    [Fact]
    public void Info_SpeechModel_ReportsDepthwiseDilatedAndStridedConvTransposes()
    {
        var r = Run("info", RealModel("gtcrn-simple"), "--json");
        Assert.True(r.Code == 0, r.ToString());
        var cts = r.Json().GetProperty("convTranspose").EnumerateArray().ToList();
        Assert.Equal(11, cts.Count);
        Assert.All(cts, c => Assert.Equal(System.Text.Json.JsonValueKind.Null, c.GetProperty("problem").ValueKind));
        var dilated = cts.Single(c => c.GetProperty("resolved").GetProperty("dilations").Longs().SequenceEqual([5L, 1]));
        Assert.Equal(16, dilated.GetProperty("resolved").GetProperty("group").GetInt64());
        Assert.Equal([10L, 1, 10, 1], dilated.GetProperty("resolved").GetProperty("pads").Longs());
        Assert.Equal(2, cts.Count(c => c.GetProperty("resolved").GetProperty("strides").Longs().SequenceEqual([1L, 2])));
    }

    [Fact]
    public void Info_TextOutput_HasTablesAndNoAnsiEscapes()
    {
        var r = Run("info", RealModel("sed-gen-unet"));
        Assert.True(r.Code == 0, r.ToString());
        Assert.DoesNotContain('\u001b', r.Out);
        Assert.Contains("Op histogram", r.Out);
        Assert.Contains("ConvTranspose nodes (2)", r.Out);
        Assert.Contains("1x32x112x112", r.Out);
    }

    [Fact]
    public void Info_MissingAndCorruptFiles_Exit3NamingTheFile()
    {
        using var tmp = new TempDir();
        var missing = tmp.File("nope.onnx");
        var r = Run("info", missing);
        Assert.Equal(ExitCodes.InvalidInput, r.Code);
        Assert.Contains(missing, r.Err);

        var corrupt = tmp.File("corrupt.onnx");
        var bytes = File.ReadAllBytes(RealModel("sed-gen-unet"));
        File.WriteAllBytes(corrupt, bytes[..(bytes.Length / 3)]);
        var c = Run("info", corrupt);
        Assert.Equal(ExitCodes.InvalidInput, c.Code);
        Assert.Contains(corrupt, c.Err);
        Assert.DoesNotContain("   at ", c.Err); // no stack trace
        Assert.Equal(ExitCodes.InvalidInput, Run("explain", corrupt).Code);
    }

    [Fact]
    public void Info_ShapeForUnknownInput_Exits3ListingTheInputs()
    {
        var r = Run("info", RealModel("sed-gen-unet"), "--shape", "latent=1,4,8,8");
        Assert.Equal(ExitCodes.InvalidInput, r.Code);
        Assert.Contains("'latent', which is not a graph input (inputs: input)", r.Err);
    }

    [Fact]
    public void Info_MalformedConvTranspose_IsReportedByNameAndAttribute_OtherNodesStillReported()
    {
        var b = new ModelBuilder("malformed");
        b.Input("x", [1, 2, 4, 4]);
        b.Initializer("w", [2, 3, 3, 3], new float[54]);
        var good = b.Node(CT.OpType, ["x", "w"], [Attributes.Ints(CT.Strides, [2, 2])], name: "good");
        b.Output(good, null);
        var bad = b.Node(CT.OpType, ["x", "w"], [Attributes.Ints(CT.Strides, [2, 2]), Attributes.Ints(CT.OutputPadding, [3, 0])], name: "bad_op");
        b.Output(bad, null);
        var badType = b.Node(CT.OpType, ["x", "w"], [Attributes.String(CT.Strides, "2")], name: "bad_type");
        b.Output(badType, null);
        using var tmp = new TempDir();
        var path = tmp.File("m.onnx");
        ModelIO.Save(b.Build(), path);

        var r = Run("info", path, "--json");
        Assert.True(r.Code == 0, r.ToString());
        var cts = r.Json().GetProperty("convTranspose").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!);
        Assert.Equal([1L, 3, 9, 9], cts["good"].GetProperty("outputShape").Longs());
        Assert.True(cts["bad_op"].GetProperty("malformed").GetBoolean());
        Assert.Contains("output_padding", cts["bad_op"].GetProperty("problem").GetString());
        Assert.True(cts["bad_type"].GetProperty("malformed").GetBoolean());
        Assert.Contains("'strides' must be INTS", cts["bad_type"].GetProperty("problem").GetString());
        Assert.Contains("bad_op", r.Err);

        var e = Run("explain", path);
        Assert.Equal(ExitCodes.InvalidInput, e.Code);
        Assert.Contains("bad_op (ConvTranspose)", e.Err);
        Assert.Contains("input 1x2x4x4 -> output 1x3x9x9", e.Out); // the good node is still explained
    }
}
