namespace P2PShare.Compute;

/// <summary>
/// Starts <see cref="ComputeOptions.WarmCompilers"/> compiler processes when the silo becomes active,
/// so that the peer's first C# task does not wait seconds for Roslyn to start. Not on a peer that
/// refuses tasks (it cannot build the wall): those processes could not start there anyway.
/// </summary>
internal sealed class CompilerWarmUp(ProgramCompiler compiler, KernelSandbox sandbox, IOptions<ComputeOptions> options)
    : ILifecycleParticipant<ISiloLifecycle>
{
    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(CompilerWarmUp), ServiceLifecycleStage.Active, _ =>
        {
            var count = options.Value.WarmCompilers;
            if (count > 0 && sandbox.Refusal is null) compiler.Warm(count);
            return Task.CompletedTask;
        });
}
