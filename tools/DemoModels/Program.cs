using OnnxDeconv.DemoModels;
using OnnxDeconv.DemoModels.Figures;

// dotnet run --project tools/DemoModels -- --out tests/models
// dotnet run --project tools/DemoModels -- figures --out docs/figures
// dotnet run -c Release --project tools/DemoModels -- measure
return DemoModelsProgram.Run(args, Console.Out, Console.Error);

namespace OnnxDeconv.DemoModels
{
    public static class DemoModelsProgram
    {
        private const string Usage =
            "usage: DemoModels --out DIR            write every demo model into DIR (e.g. tests/models)\n" +
            "       DemoModels figures --out DIR    write the figures of docs/how-it-works.md into DIR (e.g. docs/figures)\n" +
            "       DemoModels measure              time the DCGAN layer's standard-op forms in ONNX Runtime (build with -c Release)";

        public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
        {
            if (args is ["measure"])
            {
                stdout.Write(Measure.Run());
                return 0;
            }
            bool figures = args.Length > 0 && args[0] == "figures";
            var rest = figures ? args[1..] : args;
            if (rest.Length != 2 || rest[0] != "--out")
            {
                stderr.WriteLine(Usage);
                return 3;
            }
            string dir = rest[1];
            try
            {
                var written = figures ? FigureCatalog.WriteAll(dir) : DemoModelCatalog.WriteAll(dir);
                foreach (var path in written)
                    stdout.WriteLine($"wrote {path} ({new FileInfo(path).Length:N0} bytes)");
                return 0;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or OnnxDeconv.GraphRewrite.IO.ModelFormatException)
            {
                stderr.WriteLine($"error: cannot write to {dir}: {e.Message}");
                return 1;
            }
        }
    }
}
