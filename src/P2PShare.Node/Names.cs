using System.Text;

namespace P2PShare;

/// <summary>Validation of user-chosen keys and file names. Throws <see cref="InvalidNameException"/>.</summary>
public static class Names
{
    public const int MaxFileNameChars = 1024;
    public const int MaxFileSegmentChars = 255;

    public static void ValidateKey(string? key, int maxBytes)
    {
        if (string.IsNullOrEmpty(key))
            throw new InvalidNameException("key", key ?? "", "a key cannot be empty");
        if (KeyProblem(key, Encoding.UTF8.GetByteCount(key), maxBytes) is { } reason)
            throw new InvalidNameException("key", key, reason);
    }

    /// <summary>
    /// Why <paramref name="key"/> breaks the key rules, or null when it is a valid key. For callers
    /// that hold the key as characters and its UTF-8 length already (the Redis endpoint), and must not
    /// throw on a hot path.
    /// </summary>
    public static string? KeyProblem(ReadOnlySpan<char> key, int utf8Bytes, int maxBytes)
    {
        if (key.IsEmpty) return "a key cannot be empty";
        if (utf8Bytes > maxBytes) return $"longer than {maxBytes} bytes";
        foreach (var c in key)
            if (char.IsControl(c)) return "control characters are not allowed";
        return null;
    }

    /// <summary>
    /// A file name is a relative path of '/'-separated segments. Rejects anything that could leave the
    /// peer's file folder or confuse a terminal: absolute paths, '..', empty segments, backslashes,
    /// control characters.
    /// </summary>
    public static void ValidateFileName(string? name)
    {
        if (string.IsNullOrEmpty(name))
            throw new InvalidNameException("file name", name ?? "", "a file name cannot be empty");
        if (name.Length > MaxFileNameChars)
            throw new InvalidNameException("file name", name, $"longer than {MaxFileNameChars} characters");
        if (name.Any(char.IsControl))
            throw new InvalidNameException("file name", name, "control characters are not allowed");
        if (name.Contains('\\'))
            throw new InvalidNameException("file name", name, "use '/' to separate folders, not '\\'");
        if (name.StartsWith('/'))
            throw new InvalidNameException("file name", name, "absolute paths are not allowed");
        foreach (var segment in name.Split('/'))
        {
            if (segment.Length == 0)
                throw new InvalidNameException("file name", name, "empty path segments ('//' or a trailing '/') are not allowed");
            if (segment is "." or "..")
                throw new InvalidNameException("file name", name, "'.' and '..' segments are not allowed");
            if (segment.Length > MaxFileSegmentChars)
                throw new InvalidNameException("file name", name, $"a segment is longer than {MaxFileSegmentChars} characters");
        }
    }
}
