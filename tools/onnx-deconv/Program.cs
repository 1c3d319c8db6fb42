using System.CommandLine;
using OnnxDeconv.Cli;
using OnnxDeconv.Cli.Commands;

return CliApp.Run(args);

namespace OnnxDeconv.Cli
{
    /// <summary>Entry point shared by the executable and the tests (which call it in-process with captured output).</summary>
    public static class CliApp
    {
        public static RootCommand BuildRoot()
        {
            var root = new RootCommand("onnx-deconv: find, explain and rewrite transposed convolutions in ONNX models, zero-free and verified.");
            foreach (var c in CommandCatalog.All()) root.Subcommands.Add(c);
            return root;
        }

        public static int Run(string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
        {
            var config = new InvocationConfiguration();
            if (stdout is not null) config.Output = stdout;
            if (stderr is not null) config.Error = stderr;
            try
            {
                var parsed = BuildRoot().Parse(args);
                if (parsed.Errors.Count > 0)
                {
                    // Unknown options, missing arguments, bad values: invalid input (3), not System.CommandLine's generic 1.
                    var err = stderr ?? Console.Error;
                    foreach (var e in parsed.Errors) err.WriteLine($"error: {e.Message}");
                    err.WriteLine("Run 'onnx-deconv --help' (or 'onnx-deconv COMMAND --help') for usage.");
                    return ExitCodes.InvalidInput;
                }
                return parsed.Invoke(config);
            }
            catch (Exception e)
            {
                (stderr ?? Console.Error).WriteLine($"error: unexpected failure: {e}");
                return ExitCodes.Unexpected;
            }
        }
    }
}
