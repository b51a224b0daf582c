using Orleans.Configuration;

namespace P2PShare.Tests;

/// <summary>The call limits hold together: every wait is answered before Orleans gives up on the call.</summary>
public sealed class CallLimitsTests
{
    [Fact]
    public void Orleans_response_timeout_is_the_one_the_limits_assume()
    {
        Assert.Equal(CallLimits.ResponseTimeout, new SiloMessagingOptions().ResponseTimeout);
        Assert.Equal(CallLimits.ResponseTimeout, new ClientMessagingOptions().ResponseTimeout);
    }

    [Fact]
    public void Longest_granted_wait_and_the_look_after_it_end_before_the_response_timeout() =>
        Assert.True(CallLimits.MaxWait + CallLimits.RefreshTimeout < CallLimits.ResponseTimeout);

    [Fact]
    public void Clients_and_supervisors_ask_for_no_longer_wait_than_the_grains_grant()
    {
        Assert.True(CallLimits.WaitSlice <= CallLimits.MaxWait);
        Assert.True(CallLimits.PollWait <= CallLimits.MaxWait);
    }
}
