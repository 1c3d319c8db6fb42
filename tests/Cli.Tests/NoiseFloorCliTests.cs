using OnnxDeconv.Cli;
using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.TestSupport;
using static OnnxDeconv.Cli.Tests.CliHarness;

namespace OnnxDeconv.Cli.Tests;

/// <summary>
/// optimize and verify on a model whose InstanceNormalization amplifies rounding (style-transfer decoders): a correct
/// rewrite passes with default settings through the noise-floor rule, a wrong one still fails. Tolerance: the float32
/// default |a-b| <= 1e-5 + 1e-4*|b|.
/// </summary>
public class NoiseFloorCliTests
{
    [Fact]
    public void Optimize_writes_a_correct_rewrite_whose_normalized_output_misses_the_plain_tolerance()
    {
        using var tmp = new TempDir();
        ModelIO.Save(AmplifyingModels.Decoder(), tmp.File("decoder.onnx"));
        var r = Run("optimize", tmp.File("decoder.onnx"), "-o", tmp.File("out.onnx"), "--target", "portable");
        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        Assert.Contains("pass: noise floor (", r.Out);
        Assert.Contains("noise floor: accepted as the model's own noise: all 1 rewritten node(s) within the tolerance in isolation", r.Out);
        Assert.Contains("noise floor rule: outputs beyond the tolerance are accepted when", r.Out);
        Assert.True(File.Exists(tmp.File("out.onnx")));

        var json = Run("optimize", tmp.File("decoder.onnx"), "-o", tmp.File("out2.onnx"), "--target", "portable", "--json").Json();
        var floor = json.GetProperty("verification").GetProperty("noiseFloor");
        Assert.True(floor.GetProperty("passed").GetBoolean());
        Assert.Equal(1, floor.GetProperty("nodes").GetProperty("checkedNodes").GetInt32());
    }

    [Fact]
    public void Verify_rejects_a_wrong_rewrite_of_the_same_model_and_says_by_how_many_floors()
    {
        using var tmp = new TempDir();
        var model = AmplifyingModels.Decoder();
        ModelIO.Save(model, tmp.File("decoder.onnx"));
        Assert.Equal(ExitCodes.Ok, Run("optimize", tmp.File("decoder.onnx"), "-o", tmp.File("out.onnx"), "--target", "portable").Code);
        var wrong = ModelIO.Load(tmp.File("out.onnx"));
        var w = wrong.Graph.Initializer.Single(t => t.Name == wrong.Graph.Node.First(n => n.OpType == Ops.Conv.OpType).Input[1]);
        var values = Tensors.ToFloats(w);
        values[values.Length / 2] += 0.002f; // within the node's relative tolerance at |y| ~ 50, far outside the floor
        wrong.Graph.Initializer[wrong.Graph.Initializer.IndexOf(w)] = Tensors.FromFloats(w.Name, w.Dims.ToArray(), values);
        ModelIO.Save(wrong, tmp.File("wrong.onnx"));

        var r = Run("verify", tmp.File("decoder.onnx"), tmp.File("wrong.onnx"));
        Assert.True(r.Code == ExitCodes.VerificationFailed, r.ToString());
        Assert.Contains("noise floor: not accepted: 'Y' max abs", r.Out);
        Assert.Contains("> 8 x floor", r.Out);
    }
}
