using System.Globalization;
using OnnxDeconv.Fuzz;

// onnx-deconv-fuzz: seeded mutation fuzzer over the bundled, conformance and real models (docs/reliability.md).
//   --count N (10000)  --seed S (1)  --first I (0)  --models PATH... (default: tests/models ../shared/conformance
//   ../shared/models, relative to the repository root)  --out DIR (fuzz-failures)  --timeout SECONDS (60)
//   --replay FILE...   run saved mutants again and print their reports
// Exit: 0 no crash/hang/corrupt, 2 some, 3 bad arguments.
return FuzzProgram.Execute(args);

namespace OnnxDeconv.Fuzz
{
    internal static class FuzzProgram
    {
        public static int Execute(string[] args)
        {
            int count = 10000, seed = 1, first = 0;
            double timeout = 60;
            string outDir = "fuzz-failures";
            var models = new List<string>();
            var replay = new List<string>();
            try
            {
                List<string>? current = null;
                for (int i = 0; i < args.Length; i++)
                {
                    string a = args[i];
                    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
                    switch (a)
                    {
                        case "--count": count = int.Parse(Next(), CultureInfo.InvariantCulture); current = null; break;
                        case "--seed": seed = int.Parse(Next(), CultureInfo.InvariantCulture); current = null; break;
                        case "--first": first = int.Parse(Next(), CultureInfo.InvariantCulture); current = null; break;
                        case "--timeout": timeout = double.Parse(Next(), CultureInfo.InvariantCulture); current = null; break;
                        case "--out": outDir = Next(); current = null; break;
                        case "--models": current = models; break;
                        case "--replay": current = replay; break;
                        default:
                            if (current is null || a.StartsWith("--", StringComparison.Ordinal)) throw new ArgumentException($"unknown argument '{a}'");
                            current.Add(a);
                            break;
                    }
                }
                if (count <= 0 || timeout <= 0) throw new ArgumentException("--count and --timeout must be positive");
            }
            catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                Console.Error.WriteLine("usage: onnx-deconv-fuzz [--count N] [--seed S] [--first I] [--models PATH...] [--out DIR] [--timeout SEC] [--replay FILE...]");
                return 3;
            }

            var runner = new FuzzRunner(TimeSpan.FromSeconds(timeout));
            if (replay.Count > 0)
            {
                bool anyFailed = false;
                foreach (var file in replay)
                {
                    string work = Directory.CreateTempSubdirectory("onnx-deconv-replay-").FullName;
                    string copy = Path.Combine(work, "model.onnx");
                    File.Copy(file, copy);
                    var result = runner.Run(copy, work);
                    Console.WriteLine($"replay {file}:");
                    Console.WriteLine(FuzzRunner.Describe(null, result));
                    anyFailed |= result.Failed;
                    try { Directory.Delete(work, recursive: true); } catch (IOException) { }
                }
                return anyFailed ? 2 : 0;
            }

            List<string> seeds;
            try
            {
                if (models.Count == 0) models.AddRange(FuzzCampaign.DefaultRoots.Select(r => Path.Combine(RepoRoot(), r)));
                seeds = FuzzCampaign.FindModels(models);
            }
            catch (DirectoryNotFoundException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 3;
            }
            if (seeds.Count == 0) { Console.Error.WriteLine("error: no .onnx models found"); return 3; }
            Directory.CreateDirectory(outDir);
            Console.WriteLine($"fuzzing {count} mutants (seed {seed}, first case {first}) of {seeds.Count} seed models; failures -> {Path.GetFullPath(outDir)}");
            var summary = new FuzzCampaign(seeds, runner, outDir, Console.Out).Run(count, seed, first);
            Console.WriteLine(summary);
            return summary.Failures == 0 ? 0 : 2;
        }

        // The repository root: the nearest folder above the working directory (or this binary) holding OnnxDeconv.sln.
        private static string RepoRoot()
        {
            foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
                for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                    if (File.Exists(Path.Combine(d.FullName, "OnnxDeconv.sln"))) return d.FullName;
            throw new DirectoryNotFoundException("cannot find the repository root (OnnxDeconv.sln); pass --models");
        }
    }
}
