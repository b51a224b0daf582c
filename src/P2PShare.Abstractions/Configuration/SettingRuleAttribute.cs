using System.ComponentModel.DataAnnotations;
using System.Globalization;

namespace P2PShare.Configuration;

/// <summary>
/// A rule on the value of one setting. In <see cref="ValidationAttribute.ErrorMessage"/>, <c>{0}</c>
/// stands for the rejected value, not for the member name as in DataAnnotations' own attributes: our
/// messages name the setting themselves and quote what the user wrote
/// (<c>Peer:SiloPort must be 1..65535, not {0}</c>).
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public abstract class SettingRuleAttribute(string defaultMessage) : ValidationAttribute(defaultMessage)
{
    /// <summary>Whether <paramref name="value"/> obeys the rule. Unset values (null) usually do.</summary>
    protected abstract bool IsAllowed(object? value);

    /// <summary>The message for a rejected <paramref name="value"/>.</summary>
    protected virtual string Describe(object? value) =>
        string.Format(CultureInfo.InvariantCulture, ErrorMessageString, value);

    protected sealed override ValidationResult? IsValid(object? value, ValidationContext validationContext) =>
        IsAllowed(value)
            ? ValidationResult.Success
            : new ValidationResult(Describe(value), validationContext.MemberName is { } member ? [member] : null);
}
