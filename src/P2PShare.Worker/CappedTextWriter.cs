using System.Text;

namespace P2PShare.Worker;

/// <summary>Console capture for one run: keeps the first <c>maxBytes</c> of UTF-8 output and drops the rest.</summary>
internal sealed class CappedTextWriter(int maxBytes) : TextWriter
{
    private readonly StringBuilder _text = new();
    private int _bytes;
    private bool _truncated;

    public override Encoding Encoding => Encoding.UTF8;

    public override void Write(char value) => Append(new ReadOnlySpan<char>(in value));

    public override void Write(string? value) => Append(value);

    public override void Write(char[] buffer, int index, int count) => Append(buffer.AsSpan(index, count));

    public override void Write(ReadOnlySpan<char> buffer) => Append(buffer);

    public override string ToString() =>
        _truncated ? _text + $"\n[output truncated at {maxBytes} bytes]" : _text.ToString();

    private void Append(ReadOnlySpan<char> chars)
    {
        if (_truncated || chars.IsEmpty) return;
        var bytes = Encoding.UTF8.GetByteCount(chars);
        if (_bytes + bytes <= maxBytes)
        {
            _text.Append(chars);
            _bytes += bytes;
            return;
        }

        // Keep whatever whole characters still fit, then stop listening.
        foreach (var rune in chars.ToString().EnumerateRunes())
        {
            if (_bytes + rune.Utf8SequenceLength > maxBytes) break;
            _text.Append(rune.ToString());
            _bytes += rune.Utf8SequenceLength;
        }

        _truncated = true;
    }
}
