namespace P2PShare.Worker;

internal static class Program
{
    private static int Main() => 0; // protocol loop comes with CPU sharing
}
