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
                // Unknown options are named first: System.CommandLine would report the value after one, or take it as a path.
                var problems = OptionCheck.Problems(parsed, args);
                if (problems.Count == 0) problems.AddRange(parsed.Errors.Select(e => Named(e) + OneLine(e.Message)));
                if (problems.Count > 0)
                {
                    // Unknown options, missing arguments, bad values: invalid input (3), not System.CommandLine's generic 1.
                    var err = stderr ?? Console.Error;
                    foreach (var e in problems) err.WriteLine($"error: {e}");
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

        /// <summary>"--target: " for an error about an option's value (System.CommandLine's message does not name it).</summary>
        private static string Named(System.CommandLine.Parsing.ParseError e) => e.SymbolResult switch
        {
            System.CommandLine.Parsing.OptionResult o => $"{o.Option.Name}: ",
            System.CommandLine.Parsing.ArgumentResult { Parent: System.CommandLine.Parsing.OptionResult o } => $"{o.Option.Name}: ",
            _ => "",
        };

        /// <summary>"Argument 'foo' not recognized. Must be one of:\n\t'auto'\n\t..." on one line: 'auto', 'portable', ...</summary>
        private static string OneLine(string message)
        {
            var lines = message.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            return lines.Length <= 1 ? message : lines[0] + " " + string.Join(", ", lines.Skip(1));
        }
    }
}
