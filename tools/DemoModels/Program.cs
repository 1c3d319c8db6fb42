using OnnxDeconv.DemoModels;
using OnnxDeconv.DemoModels.Figures;

// dotnet run --project tools/DemoModels -- --out tests/models
// dotnet run --project tools/DemoModels -- figures --out docs/figures
// dotnet run -c Release --project tools/DemoModels -- measure
// dotnet run -c Release --project tools/DemoModels -- large --mb 2300 --out /tmp/large
return DemoModelsProgram.Run(args, Console.Out, Console.Error);

namespace OnnxDeconv.DemoModels
{
    public static class DemoModelsProgram
    {
        private const string Usage =
            "usage: DemoModels --out DIR            write every demo model into DIR (e.g. tests/models)\n" +
            "       DemoModels figures --out DIR    write the figures of docs/how-it-works.md into DIR (e.g. docs/figures)\n" +
            "       DemoModels measure              time the DCGAN layer's standard-op forms in ONNX Runtime (build with -c Release)\n" +
            "       DemoModels large --mb N --out DIR  write DIR/large.onnx, a ConvTranspose model with at least N MiB of external weights";

        public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
        {
            if (args is ["measure"])
            {
                stdout.Write(Measure.Run());
                return 0;
            }
            if (args is ["large", ..])
                return Large(args[1..], stdout, stderr);
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

        private static int Large(string[] args, TextWriter stdout, TextWriter stderr)
        {
            string? mbText = null, dir = null;
            bool unknown = false;
            for (int i = 0; i + 1 < args.Length; i += 2)
            {
                if (args[i] == "--mb") mbText = args[i + 1];
                else if (args[i] == "--out") dir = args[i + 1];
                else unknown = true;
            }
            if (args.Length != 4 || unknown || mbText is null || dir is null
                || !long.TryParse(mbText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var mb) || mb < 1)
            {
                stderr.WriteLine(Usage);
                return 3;
            }
            try
            {
                var info = LargeModel.Write(dir, mb);
                stdout.WriteLine($"wrote {info.ModelPath} ({new FileInfo(info.ModelPath).Length:N0} bytes) and {info.DataPath} ({info.DataBytes:N0} bytes): " +
                                 $"{info.Layers} ConvTranspose layers, {info.Channels} channels, largest tensor {info.LargestTensorBytes:N0} bytes");
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
