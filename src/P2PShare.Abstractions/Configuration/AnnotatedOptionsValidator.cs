using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace P2PShare.Configuration;

/// <summary>
/// Checks options by their DataAnnotations attributes and, for rules that tie properties together,
/// <see cref="IValidatableObject.Validate"/>, and reports each problem by its own message as written:
/// the messages already name the setting (<c>Memory:QuotaBytes must be positive</c>) and are printed
/// as one line, so nothing is prefixed. Applies to every named instance of the options.
/// </summary>
public sealed class AnnotatedOptionsValidator<TOptions> : IValidateOptions<TOptions>
    where TOptions : class
{
    public ValidateOptionsResult Validate(string? name, TOptions options)
    {
        var problems = Problems(options);
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }

    /// <summary>Every problem of <paramref name="options"/>: single-setting rules first, then cross-setting rules.</summary>
    public static IReadOnlyList<string> Problems(TOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var context = new ValidationContext(options);
        var results = new List<ValidationResult>();
        if (!Validator.TryValidateObject(options, context, results, validateAllProperties: true)
            && options is IValidatableObject whole)
        {
            // The validator skips the cross-setting rules once a single setting fails; a user with
            // two mistakes should hear of both at once. When it did run them, they come out the same
            // again and are not repeated.
            foreach (var result in whole.Validate(context))
            {
                if (!results.Exists(r => r.ErrorMessage == result.ErrorMessage))
                {
                    results.Add(result);
                }
            }
        }

        return results.Select(r => r.ErrorMessage ?? "").Where(m => m.Length > 0).ToList();
    }
}
