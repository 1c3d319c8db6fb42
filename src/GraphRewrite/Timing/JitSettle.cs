using System.Diagnostics;
using System.Runtime;

namespace OnnxDeconv.GraphRewrite.Timing;

/// <summary>
/// Runs candidates until the .NET JIT has finished with them. The plugin's kernel is managed code: with tiered
/// compilation its first calls run unoptimized (tier-0) code until the runtime re-jits it in the background after
/// ~30 calls and a 100 ms quiet period. A fixed 3-run warm-up therefore timed the first plugin candidate of a process
/// at tier 0, several times slower than it runs once warm (the isolated-node anomaly of <c>--target auto</c>).
/// </summary>
public static class JitSettle
{
    /// <summary>Longer than the runtime's call-counting delay (100 ms), so a pending tier-up has happened within it.</summary>
    public static readonly TimeSpan DefaultQuiet = TimeSpan.FromMilliseconds(250);

    /// <summary>Bounds the warm-up when something keeps compiling (e.g. a candidate that jits per call).</summary>
    public static readonly TimeSpan DefaultMax = TimeSpan.FromSeconds(3);

    /// <summary>Calls per method before the runtime considers tiering it up (the default TC_CallCountThreshold).</summary>
    public const int DefaultMinRounds = 32;

    /// <summary>
    /// Runs every candidate once per round until at least <paramref name="minRounds"/> rounds are done and
    /// <paramref name="compiledMethods"/> has not changed for <paramref name="quiet"/>, or <paramref name="max"/> has passed.
    /// Returns the rounds run.
    /// </summary>
    /// <param name="compiledMethods">Methods compiled so far (default <see cref="System.Runtime.JitInfo.GetCompiledMethodCount"/>).</param>
    public static int Run(IReadOnlyList<ITimedRun> candidates, int minRounds = DefaultMinRounds, TimeSpan? quiet = null, TimeSpan? max = null,
        Func<long>? compiledMethods = null)
    {
        var count = compiledMethods ?? (() => JitInfo.GetCompiledMethodCount(currentThread: false));
        var quietFor = quiet ?? DefaultQuiet;
        var limit = max ?? DefaultMax;
        var total = Stopwatch.StartNew();
        var sinceChange = Stopwatch.StartNew();
        long last = count();
        int rounds = 0;
        while (total.Elapsed < limit)
        {
            foreach (var c in candidates) c.Run();
            rounds++;
            long now = count();
            if (now != last) { last = now; sinceChange.Restart(); }
            else if (rounds >= minRounds && sinceChange.Elapsed >= quietFor) break;
        }
        return rounds;
    }
}
