using System.Diagnostics;
using System.Runtime.InteropServices;

namespace OnnxDeconv.GraphRewrite.Timing;

/// <summary>Something that can be timed: one <see cref="Run"/> = one inference (or one kernel call).</summary>
public interface ITimedRun : IDisposable
{
    void Run();
}

/// <summary>Wall-clock median/min/max over <see cref="Runs"/> timed runs, and the median process CPU time per run (less sensitive to other processes' load).</summary>
public sealed record TimingStats(double MedianMs, double MinMs, double MaxMs, int Runs, double CpuMedianMs);

/// <summary>
/// How long to time: at least <see cref="MinRounds"/> rounds, then until <see cref="Budget"/> is spent or
/// <see cref="MaxRounds"/> are done. <see cref="Block"/> &gt; 1: each round runs each candidate that many times in a row
/// and keeps all but the first of them, because an ONNX Runtime session's idle intra-op pool spins for a while after
/// its run and slows whatever runs next; the first run of a block absorbs that.
/// </summary>
public sealed record TimingBudget(TimeSpan Budget, int MinRounds = 5, int MaxRounds = 10_000, int Warmup = 3, int Block = 1)
{
    public static TimingBudget Seconds(double seconds, int minRounds = 5) => new(TimeSpan.FromSeconds(seconds), minRounds);
}

/// <summary>CPU time of the whole process (all threads), from clock_gettime(CLOCK_PROCESS_CPUTIME_ID).</summary>
public static class ProcessCpuClock
{
    private struct Timespec { public long Sec, Nsec; }
    [DllImport("libc", EntryPoint = "clock_gettime")] private static extern int ClockGetTime(int clock, out Timespec ts);
    private const int ProcessCpuTime = 2;

    /// <summary>Milliseconds of CPU used by this process so far; NaN where the clock is not available.</summary>
    public static double Milliseconds()
    {
        try
        {
            if (ClockGetTime(ProcessCpuTime, out var ts) != 0) return double.NaN;
            return ts.Sec * 1e3 + ts.Nsec / 1e6;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return double.NaN; }
    }
}

/// <summary>
/// Times several candidates side by side: every candidate is warmed up, then they run round-robin (one run, or one
/// block of runs, of each per round), so load from other processes hits all of them alike and their ratios stay meaningful on a busy machine.
/// </summary>
public static class RoundRobinTimer
{
    /// <param name="progress">Called after each round with (rounds done, elapsed), e.g. to draw a progress bar.</param>
    public static TimingStats[] Measure(IReadOnlyList<ITimedRun> candidates, TimingBudget budget, Action<int, TimeSpan>? progress = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(budget.MinRounds, 1, nameof(budget));
        ArgumentOutOfRangeException.ThrowIfLessThan(budget.MaxRounds, budget.MinRounds, nameof(budget));
        ArgumentOutOfRangeException.ThrowIfLessThan(budget.Block, 1, nameof(budget));
        foreach (var c in candidates)
            for (int i = 0; i < budget.Warmup; i++) c.Run();
        var wall = candidates.Select(_ => new List<double>()).ToArray();
        var cpu = candidates.Select(_ => new List<double>()).ToArray();
        var total = Stopwatch.StartNew();
        for (int round = 0; round < budget.MaxRounds && (round < budget.MinRounds || total.Elapsed < budget.Budget); round++)
        {
            for (int i = 0; i < candidates.Count; i++)
                for (int k = 0; k < budget.Block; k++)
                {
                    double c0 = ProcessCpuClock.Milliseconds();
                    long t0 = Stopwatch.GetTimestamp();
                    candidates[i].Run();
                    if (k == 0 && budget.Block > 1) continue;
                    wall[i].Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                    cpu[i].Add(ProcessCpuClock.Milliseconds() - c0);
                }
            progress?.Invoke(round + 1, total.Elapsed);
        }
        return wall.Select((w, i) => new TimingStats(Median(w), w.Min(), w.Max(), w.Count, Median(cpu[i]))).ToArray();
    }

    /// <summary>Median of a non-empty sample (mean of the two middle values for an even count).</summary>
    public static double Median(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0) throw new ArgumentException("no samples", nameof(values));
        var s = values.OrderBy(x => x).ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
