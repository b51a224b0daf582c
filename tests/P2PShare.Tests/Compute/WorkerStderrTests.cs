using System.Text;
using P2PShare.Compute;

namespace P2PShare.Tests.Compute;

/// <summary>What the peer keeps of a worker's stderr: a fixed tail and the facts that explain a crash.</summary>
public sealed class WorkerStderrTests
{
    private static void Feed(WorkerStderr stderr, string text, int chunk)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        for (var i = 0; i < bytes.Length; i += chunk) stderr.Feed(bytes.AsSpan(i, Math.Min(chunk, bytes.Length - i)));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(4096)]
    public void Markers_are_found_however_the_pipe_cuts_them(int chunk)
    {
        var stderr = new WorkerStderr();
        Feed(stderr, "noise\nStack overflow.\nmore\nUnhandled exception. System.InvalidOperationException: boom\n   at X\nOut of memory.\n", chunk);
        Assert.True(stderr.SawStackOverflow);
        Assert.True(stderr.SawOutOfMemory);
        Assert.Equal("Unhandled exception. System.InvalidOperationException: boom", stderr.Unhandled);
    }

    [Fact]
    public void A_clean_stream_reports_nothing()
    {
        var stderr = new WorkerStderr();
        Feed(stderr, "warning: something harmless\n", 5);
        Assert.False(stderr.SawStackOverflow);
        Assert.False(stderr.SawOutOfMemory);
        Assert.Null(stderr.Unhandled);
        Assert.Equal("warning: something harmless\n", stderr.Tail());
    }

    [Fact]
    public void An_endless_line_keeps_only_the_tail_and_a_capped_first_line()
    {
        var stderr = new WorkerStderr();
        stderr.Feed("Unhandled exception. "u8);
        var chunk = new byte[10_000];
        Array.Fill(chunk, (byte)'x');
        for (var i = 0; i < 1000; i++) stderr.Feed(chunk);
        stderr.Feed("END"u8);

        Assert.Equal(10_000_024L, stderr.TotalBytes);
        Assert.Equal(WorkerStderr.TailBytes, stderr.Tail().Length);
        Assert.EndsWith("xxEND", stderr.Tail());
        Assert.Equal(WorkerStderr.FirstLineBytes, stderr.Unhandled!.Length);
    }
}
