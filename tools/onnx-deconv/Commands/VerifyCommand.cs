using System.CommandLine;
using System.Text.Json;
using OnnxDeconv.Cli.Verification;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Verification;

namespace OnnxDeconv.Cli.Commands;

/// <summary><c>onnx-deconv verify ORIGINAL REWRITTEN</c>: both models through ONNX Runtime on the same inputs, every output compared.</summary>
internal static class VerifyCommand
{
    public static Command Create()
    {
        var original = new Argument<string>("original") { Description = "The reference model (.onnx)" };
        var rewritten = new Argument<string>("rewritten") { Description = "The model that must compute the same outputs (.onnx)" };
        var shape = VerifyCli.ShapeOption();
        var inputs = new Option<string?>("--inputs") { Description = "Folder with input_N.pb files (ONNX backend-test layout) instead of random inputs" };
        var seed = VerifyCli.SeedOption();
        var atol = VerifyCli.AtolOption();
        var rtol = VerifyCli.RtolOption();
        var json = VerifyCli.JsonOption();

        var cmd = new Command("verify", "Run ORIGINAL and REWRITTEN through ONNX Runtime (graph optimizations disabled) on the same inputs and compare every output; exit 2 on mismatch.");
        cmd.Arguments.Add(original);
        cmd.Arguments.Add(rewritten);
        foreach (var o in new Option[] { shape, inputs, seed, atol, rtol, json }) cmd.Options.Add(o);

        cmd.SetAction(pr =>
        {
            var stdout = pr.InvocationConfiguration.Output;
            var stderr = pr.InvocationConfiguration.Error;
            string origPath = pr.GetValue(original)!, rewPath = pr.GetValue(rewritten)!;
            try
            {
                VerifyCli.CheckModelFile(origPath, "original");
                VerifyCli.CheckModelFile(rewPath, "rewritten");
                var report = Verifier.Verify(ModelSource.FromFile(origPath), ModelSource.FromFile(rewPath), new VerifyOptions
                {
                    Tolerance = VerifyCli.ReadTolerance(pr, atol, rtol),
                    Seed = pr.GetValue(seed),
                    Shapes = ShapeOverrides.Parse(pr.GetValue(shape)),
                    InputsDir = pr.GetValue(inputs),
                    Configure = CliHooks.ConfigureSession,
                });
                if (pr.GetValue(json))
                    stdout.WriteLine(JsonSerializer.Serialize(new { original = origPath, rewritten = rewPath, verification = VerifyCli.VerificationJson(report) }, VerifyCli.Json));
                else
                    VerifyCli.WriteVerification(VerifyCli.Console(stdout), stdout, report);
                if (!report.Passed) stderr.WriteLine($"error: {rewPath} does not match {origPath}");
                return report.Passed ? ExitCodes.Ok : ExitCodes.VerificationFailed;
            }
            catch (Exception e) when (e is ModelFormatException or VerificationInputException)
            {
                stderr.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }
        });
        return cmd;
    }
}
