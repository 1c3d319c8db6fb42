namespace OnnxDeconv.GraphRewrite.IO;

/// <summary>Atomic file writes: a crash or error never leaves a half-written target.</summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        using var pending = Begin(path);
        write(pending.Stream);
        pending.Stream.Flush(flushToDisk: true);
        pending.Commit();
    }

    /// <summary>
    /// Starts writing <paramref name="path"/> through a fresh temp file in the same folder (created exclusively, so
    /// it never follows a planted symlink). <see cref="PendingFile.Commit"/> renames it over the target — the rename
    /// replaces a symlink at the target rather than writing through it; disposing without commit deletes the temp.
    /// </summary>
    public static PendingFile Begin(string path)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full) ?? ".";
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        return new PendingFile(full, tmp, new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16));
    }

    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, s => s.Write(bytes));
    public static void WriteAllText(string path, string text) => WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));

    public sealed class PendingFile : IDisposable
    {
        private readonly string _target;
        private readonly string _temp;
        private bool _committed;

        internal PendingFile(string target, string temp, FileStream stream) { _target = target; _temp = temp; Stream = stream; }

        public FileStream Stream { get; }

        public void Commit()
        {
            Stream.Flush(flushToDisk: true);
            Stream.Dispose();
            File.Move(_temp, _target, overwrite: true);
            _committed = true;
        }

        public void Dispose()
        {
            Stream.Dispose();
            if (_committed) return;
            try { File.Delete(_temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
