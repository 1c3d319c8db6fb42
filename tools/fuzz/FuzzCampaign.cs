using System.Diagnostics;
using System.Globalization;

namespace OnnxDeconv.Fuzz;

/// <summary>Counts of a campaign, by outcome.</summary>
public sealed record FuzzSummary(int Cases, int Ok, int CleanError, int Crash, int Hang, int Corrupt, int Seeds, TimeSpan Elapsed)
{
    public int Failures => Crash + Hang + Corrupt;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"fuzz: {Cases} mutants of {Seeds} seed models in {Elapsed.TotalSeconds:0.0} s: ok {Ok}, clean error {CleanError}, crash {Crash}, hang {Hang}, corrupt {Corrupt}");
}

/// <summary>
/// A seeded campaign: mutant i is derived from seed model (i mod count, shuffled by the seed) with its own
/// Random(seed, i), so any single case can be regenerated from (seed, index) as well as replayed from its file.
/// </summary>
public sealed class FuzzCampaign(IReadOnlyList<string> seedModels, FuzzRunner runner, string? failureDir, TextWriter log)
{
    public static readonly string[] DefaultRoots = ["tests/models", "../shared/conformance", "../shared/models"];

    /// <summary>Every *.onnx under the given folders (or the files themselves), sorted for a stable order.</summary>
    public static List<string> FindModels(IEnumerable<string> roots)
    {
        var found = new List<string>();
        foreach (var r in roots)
        {
            if (File.Exists(r)) found.Add(Path.GetFullPath(r));
            else if (Directory.Exists(r)) found.AddRange(Directory.EnumerateFiles(r, "*.onnx", SearchOption.AllDirectories).Select(Path.GetFullPath));
            else throw new DirectoryNotFoundException($"{r}: no such model file or folder");
        }
        return found.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
    }

    public static Random CaseRandom(int seed, int index)
    {
        // Not HashCode.Combine: it is randomized per process, which made "seed 7" a different campaign on every run.
        ulong z = unchecked((ulong)(uint)seed * 0x9E3779B97F4A7C15UL + (ulong)(uint)index + 0x5eedUL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return new Random((int)(z ^ (z >> 31)));
    }

    public FuzzSummary Run(int count, int seed, int first = 0)
    {
        var corpus = seedModels.Select(File.ReadAllBytes).ToList();
        var names = seedModels.Select(DisplayName).ToList();
        var counts = new int[5];
        var sw = Stopwatch.StartNew();
        string work = Directory.CreateTempSubdirectory("onnx-deconv-fuzz-").FullName;
        try
        {
            for (int i = first; i < first + count; i++)
            {
                var rng = CaseRandom(seed, i);
                int s = rng.Next(corpus.Count);
                var mutant = Mutator.Mutate(corpus[s], names[s], rng, corpus);
                string caseDir = Path.Combine(work, i.ToString(CultureInfo.InvariantCulture));
                Directory.CreateDirectory(caseDir);
                string modelPath = Path.Combine(caseDir, "model.onnx");
                File.WriteAllBytes(modelPath, mutant.Bytes);
                // If the process dies in native code, this file names the case that killed it.
                if (failureDir is not null)
                {
                    WriteAtomic(Path.Combine(failureDir, "in-progress.onnx"), mutant.Bytes);
                    WriteAtomic(Path.Combine(failureDir, "in-progress.txt"), System.Text.Encoding.UTF8.GetBytes(
                        $"seed {seed} case {i}\nseed model: {mutant.Seed}\n" + string.Concat(mutant.Mutations.Select(m => $"mutation: {m}\n"))));
                }
                var result = runner.Run(modelPath, caseDir);
                counts[(int)result.Outcome]++;
                if (result.Failed)
                {
                    log.WriteLine($"case {i}: {result.Outcome}: {FuzzRunner.Describe(mutant, result)}");
                    if (failureDir is not null)
                    {
                        string stem = Path.Combine(failureDir, $"case-{seed}-{i:D6}-{result.Outcome.ToString().ToLowerInvariant()}");
                        File.WriteAllBytes(stem + ".onnx", mutant.Bytes);
                        File.WriteAllText(stem + ".txt", $"seed {seed} case {i}\n" + FuzzRunner.Describe(mutant, result));
                    }
                }
                if (result.Outcome != Outcome.Hang) TryDelete(caseDir);
                if ((i - first + 1) % 500 == 0)
                    log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {i - first + 1}/{count} ({sw.Elapsed.TotalSeconds:0} s): ok {counts[0]}, clean {counts[1]}, crash {counts[2]}, hang {counts[3]}, corrupt {counts[4]}"));
            }
        }
        finally
        {
            TryDelete(work);
            if (failureDir is not null)
            {
                File.Delete(Path.Combine(failureDir, "in-progress.onnx"));
                File.Delete(Path.Combine(failureDir, "in-progress.txt"));
            }
        }
        return new FuzzSummary(count, counts[0], counts[1], counts[2], counts[3], counts[4], corpus.Count, sw.Elapsed);
    }

    private static string DisplayName(string path)
    {
        var dir = Path.GetFileName(Path.GetDirectoryName(path)) ?? "";
        return Path.GetFileName(path) == "model.onnx" ? dir + "/model.onnx" : Path.GetFileName(path);
    }

    private static void WriteAtomic(string path, byte[] bytes)
    {
        string tmp = path + ".tmp";
        File.WriteAllBytes(tmp, bytes);
        File.Move(tmp, path, overwrite: true);
    }

    private static void TryDelete(string dir)
    {
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
