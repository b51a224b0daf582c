namespace P2PShare.Peers;

/// <summary>
/// Refuses to start a second live silo with a peer name already in use: placement pins a peer
/// grain by name, so two silos with one name would make that peer's data ambiguous.
/// </summary>
public sealed class UniquePeerNameCheck(IClusterMembershipService membership, ILocalSiloDetails self)
    : ILifecycleParticipant<ISiloLifecycle>
{
    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(UniquePeerNameCheck), ServiceLifecycleStage.Active, CheckAsync);

    private async Task CheckAsync(CancellationToken cancellationToken)
    {
        await membership.Refresh().ConfigureAwait(false);
        var clash = membership.CurrentSnapshot.Members.Values.FirstOrDefault(m =>
            m.Status == SiloStatus.Active
            && string.Equals(m.Name, self.Name, StringComparison.Ordinal)
            && !m.SiloAddress.Equals(self.SiloAddress)
            && m.SiloAddress.Generation < self.SiloAddress.Generation);
        if (clash is not null)
        {
            throw new InvalidOperationException(
                $"peer name '{self.Name}' is already used by the live silo {clash.SiloAddress}; choose another --name");
        }
    }
}
