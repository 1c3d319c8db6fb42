using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Google.Protobuf;
using OnnxDeconv.GraphRewrite.Onnx;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.IO;

/// <summary>Where an external tensor's bytes live, as declared by its external_data entries (not yet validated against the disk).</summary>
public sealed record ExternalDataInfo(string Location, long Offset, long? Length, string? Checksum);

/// <summary>
/// Tensors whose data lives in a side file (data_location = EXTERNAL, external_data {location, offset, length, checksum}).
/// The locations come from an untrusted model: every read resolves them against the model's folder and refuses
/// absolute paths, paths that escape the folder (<c>..</c> or symlinks resolving outside it), ranges beyond the file
/// and lengths that disagree with the tensor's shape. Errors are <see cref="ModelFormatException"/>s naming the tensor.
/// </summary>
public static class ExternalData
{
    public const string LocationKey = "location";
    public const string OffsetKey = "offset";
    public const string LengthKey = "length";
    public const string ChecksumKey = "checksum";

    public static bool IsExternal(TensorProto t) => t.DataLocation == TensorProto.Types.DataLocation.External;

    /// <summary>Parses the external_data entries of <paramref name="t"/>; throws if they are missing or malformed.</summary>
    public static ExternalDataInfo Describe(TensorProto t)
    {
        string? location = null, checksum = null;
        long offset = 0;
        long? length = null;
        foreach (var e in t.ExternalData)
        {
            switch (e.Key)
            {
                case LocationKey: location = e.Value; break;
                case OffsetKey: offset = ParseNonNegative(t, e.Key, e.Value); break;
                case LengthKey: length = ParseNonNegative(t, e.Key, e.Value); break;
                case ChecksumKey: checksum = e.Value; break;
                // ONNX Runtime refuses unknown keys; we only ever write the four above, so unknown ones are ignored on read.
            }
        }
        if (string.IsNullOrEmpty(location))
            throw new ModelFormatException($"tensor '{t.Name}': data_location is EXTERNAL but external_data has no '{LocationKey}'");
        return new ExternalDataInfo(location, offset, length, checksum);
    }

    private static long ParseNonNegative(TensorProto t, string key, string value)
    {
        if (!long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var v))
            throw new ModelFormatException($"tensor '{t.Name}': external_data '{key}' is '{value}', not a non-negative integer");
        return v;
    }

    /// <summary>
    /// Resolves an external-data location against <paramref name="baseDirectory"/>, refusing anything that could
    /// read outside it. Returns the full path of an existing regular file.
    /// </summary>
    public static string ResolveLocation(string baseDirectory, string location, string tensorName)
    {
        string Fail(string why) =>
            throw new ModelFormatException($"tensor '{tensorName}': external data location '{location}' refused: {why}");

        if (location.Length == 0) Fail("empty");
        if (location.Contains('\0')) Fail("contains a NUL character");
        // ONNX Runtime treats this prefix as a raw memory address, which a file must never be able to name.
        if (location.StartsWith("*/", StringComparison.Ordinal)) Fail("in-memory address locations are not files");
        if (Path.IsPathRooted(location) || location.StartsWith('/') || location.StartsWith('\\') || location.Contains(':'))
            Fail("absolute paths are not allowed (locations are relative to the model's folder)");

        var baseFull = Path.GetFullPath(baseDirectory);
        var candidate = Path.GetFullPath(Path.Combine(baseFull, location.Replace('\\', '/')));
        if (!IsInside(baseFull, candidate)) Fail($"it escapes the model folder {baseFull}");

        var realBase = PathSafety.RealPath(baseFull);
        var real = PathSafety.RealPath(candidate);
        if (!IsInside(realBase, real)) Fail($"it resolves (through a symlink) to {real}, outside the model folder {realBase}");
        if (Directory.Exists(real)) Fail("it is a directory");
        if (!File.Exists(real)) Fail($"file {candidate} does not exist");
        return real;
    }

    internal static bool IsInside(string folder, string path)
    {
        var f = Path.TrimEndingDirectorySeparator(folder);
        return path.Length > f.Length + 1
               && path.StartsWith(f, StringComparison.Ordinal)
               && (path[f.Length] == Path.DirectorySeparatorChar || path[f.Length] == Path.AltDirectorySeparatorChar);
    }

    /// <summary>Bytes per element times element count, rounding sub-byte types up; null for STRING/UNDEFINED.</summary>
    public static long? ExpectedByteLength(TensorProto t)
    {
        long n = Tensors.ElementCount(t.Dims);
        int? bits = ElementBits((DataType)t.DataType);
        if (bits is null) return null;
        return checked((n * bits.Value + 7) / 8);
    }

    public static int? ElementBits(DataType type) => type switch
    {
        DataType.Float or DataType.Int32 or DataType.Uint32 => 32,
        DataType.Uint8 or DataType.Int8 or DataType.Bool => 8,
        DataType.Float8E4M3Fn or DataType.Float8E4M3Fnuz or DataType.Float8E5M2 or DataType.Float8E5M2Fnuz or DataType.Float8E8M0 => 8,
        DataType.Uint16 or DataType.Int16 or DataType.Float16 or DataType.Bfloat16 => 16,
        DataType.Int64 or DataType.Uint64 or DataType.Double or DataType.Complex64 => 64,
        DataType.Complex128 => 128,
        DataType.Uint4 or DataType.Int4 or DataType.Float4E2M1 => 4,
        DataType.Uint2 or DataType.Int2 => 2,
        _ => null,
    };

    /// <summary>A validated external region: resolved file, offset and byte count (checked against the file and the tensor's shape).</summary>
    public sealed record Region(string Path, long Offset, long Length, string? Checksum);

    /// <summary>Validates <paramref name="t"/>'s external reference against the disk without reading the data.</summary>
    public static Region Locate(TensorProto t, string baseDirectory)
    {
        var info = Describe(t);
        var path = ResolveLocation(baseDirectory, info.Location, t.Name);
        long expected;
        try
        {
            expected = ExpectedByteLength(t)
                       ?? throw new ModelFormatException($"tensor '{t.Name}': {(DataType)t.DataType} data cannot be stored externally");
        }
        catch (Exception e) when (e is InvalidDataException or OverflowException)
        { throw new ModelFormatException($"tensor '{t.Name}': invalid shape [{string.Join(",", t.Dims)}]: {e.Message}", e); }
        if (info.Length is { } len && len != expected)
            throw new ModelFormatException(
                $"tensor '{t.Name}': external_data length {len} disagrees with its shape [{string.Join(",", t.Dims)}] of {(DataType)t.DataType} ({expected} bytes)");
        long fileLength = new FileInfo(path).Length;
        if (info.Offset > fileLength || expected > fileLength - info.Offset)
            throw new ModelFormatException(
                $"tensor '{t.Name}': external data range [{info.Offset}, {info.Offset + (decimal)expected}) is beyond the end of {path} ({fileLength} bytes)");
        return new Region(path, info.Offset, expected, info.Checksum);
    }

    /// <summary>Opens a read-only stream over a validated region (caller disposes).</summary>
    public static Stream OpenRead(Region region)
    {
        var fs = new FileStream(region.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        try
        {
            // Locate checked the path; make sure the file actually opened is that one (no symlink swapped in since).
            if (OperatingSystem.IsLinux()
                && new FileInfo($"/proc/self/fd/{fs.SafeFileHandle.DangerousGetHandle()}").LinkTarget is { } opened
                && opened != region.Path)
                throw new ModelFormatException($"{region.Path}: changed while being opened (it is now {opened}); refused");
            // Re-check after opening: the file could have shrunk since Locate.
            if (region.Offset + region.Length > fs.Length)
                throw new ModelFormatException($"{region.Path}: external data range ends at {region.Offset + region.Length}, file has {fs.Length} bytes");
            fs.Position = region.Offset;
            return fs;
        }
        catch { fs.Dispose(); throw; }
    }

    /// <summary>
    /// Copies a region to <paramref name="destination"/> in fixed-size chunks (never the whole tensor in memory),
    /// verifying the SHA-1 checksum when the model declares one. Returns the SHA-1 (lowercase hex) of the bytes copied.
    /// </summary>
    public static string CopyTo(Region region, Stream destination, string tensorName)
    {
        using var src = OpenRead(region);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            long left = region.Length;
            while (left > 0)
            {
                int n = src.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
                if (n == 0) throw new ModelFormatException($"tensor '{tensorName}': {region.Path} ended early");
                destination.Write(buffer, 0, n);
                sha.AppendData(buffer, 0, n);
                left -= n;
            }
        }
        finally { System.Buffers.ArrayPool<byte>.Shared.Return(buffer); }
        var hex = Convert.ToHexStringLower(sha.GetHashAndReset());
        CheckChecksum(region, tensorName, hex);
        return hex;
    }

    private static void CheckChecksum(Region region, string tensorName, string actualHex)
    {
        if (region.Checksum is { Length: > 0 } c && !string.Equals(c, actualHex, StringComparison.OrdinalIgnoreCase))
            throw new ModelFormatException($"tensor '{tensorName}': checksum mismatch in {region.Path} (declared {c}, data has {actualHex})");
    }

    /// <summary>
    /// The tensor's data as little-endian bytes, whether inline (raw_data or the typed fields) or external
    /// (resolved against <paramref name="baseDirectory"/>, the folder of the model file; required for external tensors).
    /// </summary>
    public static byte[] ReadBytes(TensorProto t, string? baseDirectory)
    {
        if (!IsExternal(t)) return InlineBytes(t);
        if (baseDirectory is null)
            throw new ModelFormatException($"tensor '{t.Name}': data is external but the model's folder is unknown (the model was not loaded from a file)");
        var region = Locate(t, baseDirectory);
        if (region.Length > Array.MaxLength)
            throw new ModelFormatException($"tensor '{t.Name}': {region.Length} bytes of external data do not fit in one array");
        var bytes = new byte[region.Length];
        using (var s = OpenRead(region)) s.ReadExactly(bytes);
        if (region.Checksum is { Length: > 0 }) CheckChecksum(region, t.Name, Convert.ToHexStringLower(SHA1.HashData(bytes)));
        return bytes;
    }

    /// <summary>Inline data as little-endian bytes (raw_data, or converted from the typed repeated fields).</summary>
    public static byte[] InlineBytes(TensorProto t)
    {
        var type = (DataType)t.DataType;
        long expected;
        try { expected = ExpectedByteLength(t) ?? throw new ModelFormatException($"tensor '{t.Name}': {type} tensors have no fixed-size byte layout"); }
        catch (Exception e) when (e is InvalidDataException or OverflowException)
        { throw new ModelFormatException($"tensor '{t.Name}': invalid shape [{string.Join(",", t.Dims)}]: {e.Message}", e); }

        byte[] bytes;
        if (t.HasRawData) bytes = t.RawData.ToByteArray();
        else
        {
            bytes = type switch
            {
                DataType.Float or DataType.Complex64 => AsBytes<float>(t.FloatData),
                DataType.Double or DataType.Complex128 => AsBytes<double>(t.DoubleData),
                DataType.Int64 => AsBytes<long>(t.Int64Data),
                DataType.Uint64 => AsBytes<ulong>(t.Uint64Data),
                DataType.Int32 => AsBytes<int>(t.Int32Data),
                DataType.Uint32 => Narrow(t.Uint64Data.Select(v => (long)v), 4),
                DataType.Int16 or DataType.Uint16 or DataType.Float16 or DataType.Bfloat16 => Narrow(t.Int32Data.Select(v => (long)v), 2),
                DataType.Int8 or DataType.Uint8 or DataType.Bool or DataType.Float8E4M3Fn or DataType.Float8E4M3Fnuz
                    or DataType.Float8E5M2 or DataType.Float8E5M2Fnuz or DataType.Float8E8M0 => Narrow(t.Int32Data.Select(v => (long)v), 1),
                _ => throw new ModelFormatException($"tensor '{t.Name}': reading {type} from typed fields is not supported (only raw_data)"),
            };
        }
        if (bytes.Length != expected)
            throw new ModelFormatException($"tensor '{t.Name}': has {bytes.Length} bytes of data, shape [{string.Join(",", t.Dims)}] of {type} needs {expected}");
        return bytes;
    }

    private static byte[] AsBytes<T>(Google.Protobuf.Collections.RepeatedField<T> values) where T : struct
    {
        var arr = values.ToArray();
        var bytes = MemoryMarshal.AsBytes(arr.AsSpan()).ToArray();
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("big-endian hosts are not supported");
        return bytes;
    }

    private static byte[] Narrow(IEnumerable<long> values, int width)
    {
        var list = values.ToList();
        var bytes = new byte[list.Count * width];
        for (int i = 0; i < list.Count; i++)
        {
            switch (width)
            {
                case 1: bytes[i] = (byte)list[i]; break;
                case 2: BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(i * 2), (ushort)list[i]); break;
                default: BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(i * 4), (uint)list[i]); break;
            }
        }
        return bytes;
    }

    /// <summary>Float data of a FLOAT tensor, inline or external; FLOAT16/BFLOAT16 data is widened to float32 (exact).</summary>
    public static float[] ReadFloats(TensorProto t, string? baseDirectory)
    {
        if (HalfFloats.IsHalf((DataType)t.DataType)) return HalfFloats.Widen((DataType)t.DataType, ReadBytes(t, baseDirectory));
        if (t.DataType != (int)DataType.Float)
            throw new ModelFormatException($"tensor '{t.Name}': expected FLOAT, FLOAT16 or BFLOAT16, got {(DataType)t.DataType}");
        if (!IsExternal(t) || baseDirectory is null) return MemoryMarshal.Cast<byte, float>(ReadBytes(t, baseDirectory)).ToArray();
        // Straight into the float array: a large external weight is held once, not as bytes and then as floats.
        var region = Locate(t, baseDirectory);
        if (region.Length / sizeof(float) > Array.MaxLength)
            throw new ModelFormatException($"tensor '{t.Name}': {region.Length} bytes of external data do not fit in one array");
        var values = new float[region.Length / sizeof(float)];
        var bytes = MemoryMarshal.AsBytes(values.AsSpan());
        using (var s = OpenRead(region)) s.ReadExactly(bytes);
        if (region.Checksum is { Length: > 0 }) CheckChecksum(region, t.Name, Convert.ToHexStringLower(SHA1.HashData(bytes)));
        return values;
    }

    /// <summary>Marks <paramref name="t"/> as external at the given place, dropping its inline data.</summary>
    public static void SetExternal(TensorProto t, string location, long offset, long length, string? checksum)
    {
        t.ClearRawData();
        t.FloatData.Clear(); t.Int32Data.Clear(); t.Int64Data.Clear(); t.DoubleData.Clear(); t.Uint64Data.Clear();
        t.ExternalData.Clear();
        t.ExternalData.Add(new StringStringEntryProto { Key = LocationKey, Value = location });
        t.ExternalData.Add(new StringStringEntryProto { Key = OffsetKey, Value = offset.ToString(CultureInfo.InvariantCulture) });
        t.ExternalData.Add(new StringStringEntryProto { Key = LengthKey, Value = length.ToString(CultureInfo.InvariantCulture) });
        if (checksum is not null) t.ExternalData.Add(new StringStringEntryProto { Key = ChecksumKey, Value = checksum });
        t.DataLocation = TensorProto.Types.DataLocation.External;
    }

    /// <summary>Makes <paramref name="t"/> inline again with the given raw bytes.</summary>
    public static void SetInline(TensorProto t, byte[] bytes)
    {
        t.ExternalData.Clear();
        t.ClearDataLocation();
        t.RawData = ByteString.CopyFrom(bytes);
    }
}

/// <summary>Symlink-aware path checks (the .NET BCL has no realpath).</summary>
internal static class PathSafety
{
    /// <summary>
    /// The canonical path with every symlink in every component resolved (like POSIX realpath), also for paths
    /// whose tail does not exist yet (the missing tail is appended as is).
    /// </summary>
    public static string RealPath(string path)
    {
        var full = Path.GetFullPath(path);
        var root = Path.GetPathRoot(full) ?? "/";
        var pending = new Stack<string>(full[root.Length..]
            .Split([Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries)
            .Reverse());
        var current = root;
        int hops = 0;
        while (pending.Count > 0)
        {
            var part = pending.Pop();
            if (part == ".") continue;
            if (part == "..") { current = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(current)) ?? root; continue; }
            var next = Path.Combine(current, part);
            string? target = null;
            try { target = new FileInfo(next).LinkTarget; }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { target = null; }
            if (target is null) { current = next; continue; }
            if (++hops > 40) throw new IOException($"too many levels of symbolic links resolving {path}");
            var resolved = Path.IsPathRooted(target) ? target : Path.Combine(current, target);
            var resolvedFull = Path.GetFullPath(resolved);
            var rroot = Path.GetPathRoot(resolvedFull) ?? root;
            foreach (var p in resolvedFull[rroot.Length..]
                         .Split([Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries)
                         .Reverse())
                pending.Push(p);
            current = rroot;
        }
        return current;
    }
}
