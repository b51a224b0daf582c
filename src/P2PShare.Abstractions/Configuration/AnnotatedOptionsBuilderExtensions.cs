using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace P2PShare.Configuration;

public static class AnnotatedOptionsBuilderExtensions
{
    /// <summary>
    /// Checks the options with <see cref="AnnotatedOptionsValidator{TOptions}"/> when they are first
    /// read (or at start, with <c>ValidateOnStart</c>); a failure names each bad setting in one line.
    /// </summary>
    public static OptionsBuilder<TOptions> ValidateAnnotated<TOptions>(this OptionsBuilder<TOptions> builder)
        where TOptions : class
    {
        builder.Services.TryAddEnumerable(
            ServiceDescriptor.Singleton<IValidateOptions<TOptions>, AnnotatedOptionsValidator<TOptions>>());
        return builder;
    }
}
