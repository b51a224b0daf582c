using Orleans.Runtime;
using Orleans.Runtime.Messaging;

namespace P2PShare.Peers;

/// <summary>
/// Runs a call to one peer and turns every way its silo can be missing into
/// <see cref="PeerUnavailableException"/>. After a hard kill, callers first see connection
/// errors and message rejections until membership declares the silo dead, then the placement
/// director's own error; a user should see one kind of failure for all of them.
/// </summary>
public static class PeerCall
{
    public static async Task<T> RunAsync<T>(string peer, Func<Task<T>> call)
    {
        try
        {
            return await call().ConfigureAwait(ConfigureAwaitOptions.ContinueOnCapturedContext);
        }
        catch (Exception ex) when (IsUnavailable(ex))
        {
            throw new PeerUnavailableException(peer, Describe(ex), ex);
        }
    }

    public static Task RunAsync(string peer, Func<Task> call) =>
        RunAsync<bool>(peer, async () =>
        {
            await call().ConfigureAwait(ConfigureAwaitOptions.ContinueOnCapturedContext);
            return true;
        });

    /// <summary>True for failures that mean "the peer's silo is not there", not "the request was bad".</summary>
    public static bool IsUnavailable(Exception ex) => ex switch
    {
        PeerUnavailableException => false, // already typed: let it through unchanged
        SiloUnavailableException => true,
        OrleansMessageRejectionException => true,
        ConnectionFailedException => true,
        _ => ex.InnerException is not null && IsUnavailable(ex.InnerException),
    };

    private static string Describe(Exception ex) => ex switch
    {
        SiloUnavailableException or ConnectionFailedException => "its silo cannot be reached",
        OrleansMessageRejectionException => "its silo rejected the call (stopping or dead)",
        _ => ex.Message,
    };
}
