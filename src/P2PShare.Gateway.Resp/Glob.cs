namespace P2PShare.Resp;

/// <summary>
/// Redis glob patterns (KEYS, SCAN MATCH, CONFIG GET): <c>*</c>, <c>?</c>, <c>[abc]</c>, <c>[^a]</c>,
/// <c>[a-z]</c> and <c>\x</c> for a literal. Matching backtracks only to the last <c>*</c>, so any
/// pattern costs at most length × length steps: a hostile pattern cannot stall the peer.
/// </summary>
internal static class Glob
{
    public static bool IsMatch(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text, bool ignoreCase = false)
    {
        int p = 0, t = 0, starP = -1, starT = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length)
            {
                var pc = pattern[p];
                if (pc == '*')
                {
                    starP = p++;
                    starT = t;
                    continue;
                }

                if (MatchOne(pattern, ref p, text[t], ignoreCase, out var next))
                {
                    p = next;
                    t++;
                    continue;
                }
            }

            if (starP < 0) return false;
            p = starP + 1;
            t = ++starT;
        }

        while (p < pattern.Length && pattern[p] == '*') p++;
        return p == pattern.Length;
    }

    /// <summary>Whether the pattern element at <paramref name="p"/> matches <paramref name="c"/>; <paramref name="next"/> is the element after it.</summary>
    private static bool MatchOne(ReadOnlySpan<char> pattern, ref int p, char c, bool ignoreCase, out int next)
    {
        var pc = pattern[p];
        if (pc == '?')
        {
            next = p + 1;
            return true;
        }

        if (pc == '\\' && p + 1 < pattern.Length)
        {
            next = p + 2;
            return Same(pattern[p + 1], c, ignoreCase);
        }

        if (pc == '[')
        {
            var i = p + 1;
            var negate = i < pattern.Length && pattern[i] == '^';
            if (negate) i++;
            var matched = false;
            var first = true;
            while (i < pattern.Length && (pattern[i] != ']' || first))
            {
                first = false;
                if (pattern[i] == '\\' && i + 1 < pattern.Length)
                {
                    matched |= Same(pattern[i + 1], c, ignoreCase);
                    i += 2;
                }
                else if (i + 2 < pattern.Length && pattern[i + 1] == '-' && pattern[i + 2] != ']')
                {
                    var (lo, hi) = pattern[i] <= pattern[i + 2] ? (pattern[i], pattern[i + 2]) : (pattern[i + 2], pattern[i]);
                    matched |= (c >= lo && c <= hi) || (ignoreCase && char.ToLowerInvariant(c) is var l && l >= char.ToLowerInvariant(lo) && l <= char.ToLowerInvariant(hi));
                    i += 3;
                }
                else
                {
                    matched |= Same(pattern[i], c, ignoreCase);
                    i++;
                }
            }

            // An unclosed '[' runs to the end of the pattern, as in Redis.
            next = i < pattern.Length ? i + 1 : i;
            return matched != negate;
        }

        next = p + 1;
        return Same(pc, c, ignoreCase);
    }

    private static bool Same(char a, char b, bool ignoreCase) =>
        a == b || (ignoreCase && char.ToLowerInvariant(a) == char.ToLowerInvariant(b));
}
