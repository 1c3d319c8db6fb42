using System.Text.Json;

namespace OnnxDeconv.GraphRewrite.Pipeline;

/// <summary>A remembered <see cref="Target.Auto"/> decision for one node geometry on one machine setup.</summary>
public sealed record CachedDecision(string Choice, IReadOnlyList<CandidateTiming> Candidates);

/// <summary>A remembered whole-model comparison (original vs one optimized model, both identified by content hash).</summary>
public sealed record CachedComparison(double OriginalMs, double ResultMs);

/// <summary>
/// <see cref="Target.Auto"/>'s decisions, one JSON file in the user's cache folder (never in the repo), so optimizing the
/// same model again skips the timing. Keys carry everything a decision depends on (see <see cref="AutoTuner"/>).
/// An unreadable or corrupt file is a warning and is treated as empty: the cache can only save time, never fail a run.
/// </summary>
public sealed class DecisionCache
{
    public const string DirectoryVariable = "ONNXDECONV_CACHE_DIR";
    public const string FileName = "auto-decisions.json";
    private const int FormatVersion = 1;

    private readonly Dictionary<string, CachedDecision> _entries = new(StringComparer.Ordinal);
    private readonly Dictionary<string, CachedDecision> _added = new(StringComparer.Ordinal);
    private readonly Dictionary<string, CachedComparison> _comparisons = new(StringComparer.Ordinal);
    private readonly Dictionary<string, CachedComparison> _addedComparisons = new(StringComparer.Ordinal);
    private readonly List<string> _warnings = [];
    private bool _loaded;

    public string Directory { get; }
    public string FilePath => Path.Combine(Directory, FileName);
    public IReadOnlyList<string> Warnings => _warnings;

    public DecisionCache(string directory) => Directory = directory;

    /// <summary>$ONNXDECONV_CACHE_DIR, else $XDG_CACHE_HOME/onnx-deconv, else ~/.cache/onnx-deconv.</summary>
    public static string DefaultDirectory()
    {
        var env = Environment.GetEnvironmentVariable(DirectoryVariable);
        if (!string.IsNullOrEmpty(env)) return env;
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (!string.IsNullOrEmpty(xdg)) return Path.Combine(xdg, "onnx-deconv");
        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "onnx-deconv");
    }

    public bool TryGet(string key, out CachedDecision? decision)
    {
        EnsureLoaded();
        return _entries.TryGetValue(key, out decision);
    }

    public void Put(string key, CachedDecision decision)
    {
        EnsureLoaded();
        _entries[key] = decision;
        _added[key] = decision;
    }

    public bool TryGetComparison(string key, out CachedComparison? comparison)
    {
        EnsureLoaded();
        return _comparisons.TryGetValue(key, out comparison);
    }

    public void PutComparison(string key, CachedComparison comparison)
    {
        EnsureLoaded();
        _comparisons[key] = comparison;
        _addedComparisons[key] = comparison;
    }

    /// <summary>Writes the new decisions, merged into what is on disk now (another run may have added some), atomically.</summary>
    public void Save()
    {
        if (_added.Count == 0 && _addedComparisons.Count == 0) return;
        try
        {
            var onDisk = Read(out _);
            var merged = onDisk?.Entries ?? new Dictionary<string, CachedDecision>(StringComparer.Ordinal);
            var comparisons = onDisk?.Comparisons ?? new Dictionary<string, CachedComparison>(StringComparer.Ordinal);
            foreach (var (k, v) in _added) merged[k] = v;
            foreach (var (k, v) in _addedComparisons) comparisons[k] = v;
            System.IO.Directory.CreateDirectory(Directory);
            string tmp = Path.Combine(Directory, $".{FileName}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
            try
            {
                File.WriteAllText(tmp, JsonSerializer.Serialize(new CacheFile(FormatVersion, merged, comparisons), Json));
                File.Move(tmp, FilePath, overwrite: true);
            }
            finally
            {
                if (File.Exists(tmp)) File.Delete(tmp);
            }
            _added.Clear();
            _addedComparisons.Clear();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            _warnings.Add($"decision cache {FilePath} not written: {e.Message}");
        }
    }

    private void EnsureLoaded()
    {
        if (_loaded) return;
        _loaded = true;
        var read = Read(out var problem);
        if (problem is not null) _warnings.Add($"decision cache {FilePath} ignored: {problem}");
        if (read is null) return;
        foreach (var (k, v) in read.Entries) _entries[k] = v;
        foreach (var (k, v) in read.Comparisons ?? []) _comparisons[k] = v;
    }

    /// <summary>The file's entries; null with <paramref name="problem"/> set when it cannot be used (null, no problem: no file yet).</summary>
    private CacheFile? Read(out string? problem)
    {
        problem = null;
        try
        {
            if (!File.Exists(FilePath)) return null;
            var file = JsonSerializer.Deserialize<CacheFile>(File.ReadAllText(FilePath), Json);
            if (file is null || file.Version != FormatVersion || file.Entries is null)
            {
                problem = $"unknown format (expected version {FormatVersion})";
                return null;
            }
            if (file.Entries.Values.Any(d => d is null || string.IsNullOrEmpty(d.Choice) || d.Candidates is null))
            {
                problem = "an entry has no choice or candidates";
                return null;
            }
            if (file.Comparisons is not null && file.Comparisons.Values.Any(c => c is null))
            {
                problem = "a whole-model comparison is empty";
                return null;
            }
            return new CacheFile(FormatVersion, new Dictionary<string, CachedDecision>(file.Entries, StringComparer.Ordinal),
                new Dictionary<string, CachedComparison>(file.Comparisons ?? [], StringComparer.Ordinal));
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException or NotSupportedException)
        {
            problem = e.Message;
            return null;
        }
    }

    /// <param name="Comparisons">Whole-model timings by (original hash, result hash, setup); absent in older files.</param>
    private sealed record CacheFile(int Version, Dictionary<string, CachedDecision> Entries, Dictionary<string, CachedComparison>? Comparisons);

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };
}
