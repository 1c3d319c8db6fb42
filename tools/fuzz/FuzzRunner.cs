using System.Security.Cryptography;
using System.Text;
using OnnxDeconv.Cli;

namespace OnnxDeconv.Fuzz;

/// <summary>How one mutant (or one command on it) ended. Crash, Hang and Corrupt are failures.</summary>
public enum Outcome { Ok, CleanError, Crash, Hang, Corrupt }

/// <summary>One CLI command run on a mutant.</summary>
public sealed record CommandRun(string Command, int? Exit, Outcome Outcome, string Detail, string Stdout, string Stderr);

/// <summary>A mutant's verdict: the worst outcome over its command runs.</summary>
public sealed record CaseResult(Outcome Outcome, IReadOnlyList<CommandRun> Runs)
{
    public bool Failed => Outcome is Outcome.Crash or Outcome.Hang or Outcome.Corrupt;
}

/// <summary>
/// Runs a model file through the real CLI in-process (<see cref="CliApp.Run"/> with captured output): info, explain,
/// optimize --target portable and --target plugin (verification on). Each command has a timeout; a command that
/// exceeds it is a HANG (its thread is abandoned, it cannot be killed in-process). Exit 1 or an escaping exception is
/// a CRASH; exit 2/3 with an "error:" message and no stack trace is a clean error; exit 0 is ok when every written
/// model loads and verifies against the mutant again from disk, and the mutant file is unchanged (else CORRUPT).
/// </summary>
public sealed class FuzzRunner(TimeSpan timeout)
{
    public TimeSpan Timeout { get; } = timeout;

    public CaseResult Run(string modelPath, string workDir)
    {
        var runs = new List<CommandRun>();
        byte[] hashBefore = Hash(modelPath);
        runs.Add(Cli("info", modelPath, "--json"));
        runs.Add(Cli("explain", modelPath, "--json"));
        foreach (var target in new[] { "portable", "plugin", "auto" })
        {
            string outPath = Path.Combine(workDir, $"out-{target}.onnx");
            // auto (the default): a tiny timing budget and no cache, so a campaign neither crawls nor fills the user's cache.
            string[] extra = target == "auto" ? ["--budget-ms", "5", "--threads", "1", "--no-cache"] : [];
            var r = Cli(["optimize", modelPath, "-o", outPath, "--target", target, "--json", .. extra]);
            if (r.Outcome == Outcome.Ok) r = CheckWritten(r, modelPath, outPath);
            else if (r.Outcome == Outcome.CleanError && File.Exists(outPath))
                r = r with { Outcome = Outcome.Corrupt, Detail = $"exit {r.Exit} but {outPath} was written" };
            runs.Add(r);
            if (r.Outcome == Outcome.Hang) break; // the abandoned thread still holds the model; do not pile more on
        }
        if (!Hash(modelPath).AsSpan().SequenceEqual(hashBefore))
            runs.Add(new CommandRun("input-check", null, Outcome.Corrupt, "the input model file was modified", "", ""));
        var worst = runs.Max(r => Severity(r.Outcome));
        return new CaseResult(runs.First(r => Severity(r.Outcome) == worst).Outcome, runs);
    }

    private CommandRun CheckWritten(CommandRun r, string modelPath, string outPath)
    {
        if (!File.Exists(outPath)) return r with { Outcome = Outcome.Corrupt, Detail = "exit 0 but no output written" };
        // Nothing rewritten: optimize copies the input byte for byte; there is nothing more to verify.
        if (File.ReadAllBytes(outPath).AsSpan().SequenceEqual(File.ReadAllBytes(modelPath))) return r;
        var v = Cli("verify", modelPath, outPath, "--json");
        return v.Outcome == Outcome.Ok ? r
            : r with { Outcome = v.Outcome == Outcome.Hang ? Outcome.Hang : Outcome.Corrupt, Detail = $"written model does not verify from disk: exit {v.Exit}: {FirstLine(v.Stderr)}" };
    }

    public CommandRun Cli(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int? code = null;
        Exception? escaped = null;
        // A dedicated thread, not the pool: a hung case must not starve later ones.
        var thread = new Thread(() =>
        {
            try { code = CliApp.Run(args, o, e); }
            catch (Exception ex) { escaped = ex; }
        }, 16 * 1024 * 1024) { IsBackground = true, Name = "fuzz-case" };
        thread.Start();
        int t = Array.IndexOf(args, "--target");
        string name = args[0] + (t >= 0 && t + 1 < args.Length ? " " + args[t + 1] : "");
        if (!thread.Join(Timeout))
            return new CommandRun(name, null, Outcome.Hang, $"no result after {Timeout.TotalSeconds:0} s", "", "");
        string stdout = Snapshot(o), stderr = Snapshot(e);
        if (escaped is not null) return new CommandRun(name, null, Outcome.Crash, "exception escaped CliApp.Run: " + escaped, stdout, stderr);
        return code switch
        {
            ExitCodes.Ok => new CommandRun(name, code, Outcome.Ok, "", stdout, stderr),
            ExitCodes.VerificationFailed or ExitCodes.InvalidInput => IsClean(stderr)
                ? new CommandRun(name, code, Outcome.CleanError, FirstLine(stderr), stdout, stderr)
                : new CommandRun(name, code, Outcome.Crash, $"exit {code} without a clean message: {FirstLine(stderr)}", stdout, stderr),
            _ => new CommandRun(name, code, Outcome.Crash, $"exit {code}: {FirstLine(stderr)}", stdout, stderr),
        };
    }

    // A clean error says "error:" and carries no .NET stack trace.
    private static bool IsClean(string stderr) => stderr.Contains("error:", StringComparison.Ordinal) && !stderr.Contains("\n   at ", StringComparison.Ordinal);

    private static string Snapshot(StringWriter w) { lock (w) return w.ToString(); }

    public static string FirstLine(string s)
    {
        var line = s.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? "";
        return line.Length > 300 ? line[..300] + "..." : line.TrimEnd();
    }

    private static int Severity(Outcome o) => o switch
    {
        Outcome.Ok => 0, Outcome.CleanError => 1, Outcome.Corrupt => 2, Outcome.Crash => 3, _ => 4,
    };

    private static byte[] Hash(string path) => SHA256.HashData(File.ReadAllBytes(path));

    /// <summary>A replay report: what was mutated and how every command ended.</summary>
    public static string Describe(Mutant? mutant, CaseResult result)
    {
        var sb = new StringBuilder();
        if (mutant is not null)
        {
            sb.AppendLine($"seed model: {mutant.Seed}");
            foreach (var m in mutant.Mutations) sb.AppendLine($"mutation: {m}");
        }
        sb.AppendLine($"outcome: {result.Outcome}");
        foreach (var r in result.Runs)
        {
            sb.AppendLine($"--- {r.Command}: {r.Outcome} (exit {(r.Exit?.ToString() ?? "-")}) {r.Detail}");
            if (r.Outcome is not Outcome.Ok and not Outcome.CleanError && r.Stderr.Length > 0) sb.AppendLine(r.Stderr.TrimEnd());
        }
        return sb.ToString();
    }
}
