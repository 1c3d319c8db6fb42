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
                return BuildRoot().Parse(args).Invoke(config);
            }
            catch (Exception e)
            {
                (stderr ?? Console.Error).WriteLine($"error: unexpected failure: {e}");
                return ExitCodes.Unexpected;
            }
        }
    }
}
