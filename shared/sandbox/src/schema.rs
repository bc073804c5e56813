//! The user resource as the sandbox knows it: its properties and their limits, the default
//! property sets, and the value rules (GUIDs, UPN aliases, passwords, address claims).

/// What a user property accepts on create and update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str(Option<usize>),
    Bool,
    DateTime,
    UsageLocation,
    StrList(Option<usize>),
    /// A complex value with these string members.
    Object(&'static [&'static str]),
    PasswordProfile,
    /// Graph computes it; a write naming it is refused.
    ReadOnly,
    /// A directory extension `extension_{appId}_{name}`.
    Extension,
}

const EXTENSION_ATTRIBUTES: [&str; 15] = [
    "extensionAttribute1",
    "extensionAttribute2",
    "extensionAttribute3",
    "extensionAttribute4",
    "extensionAttribute5",
    "extensionAttribute6",
    "extensionAttribute7",
    "extensionAttribute8",
    "extensionAttribute9",
    "extensionAttribute10",
    "extensionAttribute11",
    "extensionAttribute12",
    "extensionAttribute13",
    "extensionAttribute14",
    "extensionAttribute15",
];

/// The user properties the sandbox knows (a subset of Graph's user resource), with the
/// maximum lengths Graph documents (learn.microsoft.com/graph/api/resources/user; officeLocation:
/// learn.microsoft.com/azure/active-directory-b2c/user-profile-attributes).
pub(crate) fn user_property(name: &str) -> Option<Kind> {
    use Kind::*;
    Some(match name {
        "displayName" => Str(Some(256)),
        "mailNickname" => Str(Some(64)),
        "employeeId" => Str(Some(16)),
        "department" => Str(Some(64)),
        "jobTitle" => Str(Some(128)),
        "companyName" => Str(Some(64)),
        "givenName" | "surname" => Str(Some(64)),
        "mobilePhone" => Str(Some(64)),
        "postalCode" => Str(Some(40)),
        "officeLocation" | "city" | "country" | "state" => Str(Some(128)),
        "streetAddress" => Str(Some(1024)),
        "userPrincipalName"
        | "mail"
        | "employeeType"
        | "preferredLanguage"
        | "onPremisesImmutableId"
        | "passwordPolicies"
        | "faxNumber"
        | "userType"
        | "ageGroup"
        | "consentProvidedForMinor" => Str(None),
        "accountEnabled" | "showInAddressList" => Bool,
        "employeeHireDate" | "employeeLeaveDateTime" => DateTime,
        "usageLocation" => UsageLocation,
        "businessPhones" => StrList(Some(1)),
        "otherMails" => StrList(None),
        "employeeOrgData" => Object(&["division", "costCenter"]),
        "onPremisesExtensionAttributes" => Object(&EXTENSION_ATTRIBUTES),
        "passwordProfile" => PasswordProfile,
        "id"
        | "createdDateTime"
        | "licenseAssignmentStates"
        | "deletedDateTime"
        | "proxyAddresses"
        | "assignedLicenses"
        | "signInSessionsValidFromDateTime"
        | "imAddresses"
        | "onPremisesSyncEnabled" => ReadOnly,
        _ if is_extension(name) => Extension,
        _ => return None,
    })
}

pub(crate) fn is_extension(name: &str) -> bool {
    name.strip_prefix("extension_")
        .and_then(|rest| rest.split_once('_'))
        .is_some_and(|(app, attr)| {
            app.len() == 32 && app.chars().all(|c| c.is_ascii_hexdigit()) && !attr.is_empty()
        })
}

/// Graph's default property set of a user (what `GET /users` returns without `$select`).
pub(crate) const DEFAULT_USER_PROPERTIES: [&str; 11] = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// Properties a write may not set to `null`: displayName "can't be cleared during updates",
/// usageLocation is "Not nullable" (learn.microsoft.com/graph/api/resources/user).
pub(crate) const NOT_NULLABLE: [&str; 2] = ["displayName", "usageLocation"];

/// A mailNickname: ASCII without `@ ( ) \ [ ] " ; : < > ,` or space (stated for the group's
/// mailNickname, learn.microsoft.com/graph/api/resources/group; the user page gives only its
/// length).
pub(crate) fn valid_mail_nickname(nickname: &str) -> bool {
    nickname
        .chars()
        .all(|c| c.is_ascii() && !"@()\\[]\";:<>, ".contains(c))
}

/// `8-4-4-4-12` hex digits.
pub(crate) fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Entra's userPrincipalName alias: at most 64 of `A-Z a-z 0-9 ' . - _ ! # ^ ~`, not starting or
/// ending with a dot.
pub(crate) fn valid_upn_alias(alias: &str) -> bool {
    !alias.is_empty()
        && alias.len() <= 64
        && !alias.starts_with('.')
        && !alias.ends_with('.')
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "'.-_!#^~".contains(c))
}

/// Graph's timestamp style for `createdDateTime` and friends: `2024-01-22T13:06:43Z`.
pub(crate) fn graph_timestamp(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Entra's password policy for cloud accounts: 8 to 256 characters, no Unicode, and at least
/// three of: uppercase, lowercase, digit, symbol (learn.microsoft.com/entra/identity/authentication/concept-password-ban-bad-combined-policy).
pub(crate) fn password_is_complex(password: &str) -> bool {
    let length = password.chars().count();
    if !(8..=256).contains(&length) || !password.is_ascii() {
        return false;
    }
    let classes = [
        password.bytes().any(|c| c.is_ascii_uppercase()),
        password.bytes().any(|c| c.is_ascii_lowercase()),
        password.bytes().any(|c| c.is_ascii_digit()),
        password
            .bytes()
            .any(|c| c.is_ascii_punctuation() || c == b' '),
    ];
    classes.iter().filter(|c| **c).count() >= 3
}

/// The `userPrincipalName` Entra gives a soft-deleted user: its object id without hyphens, then
/// the UPN it had (`0f6a6f2e111122223333444455556666ada@contoso.com`), so the name no longer
/// resolves to it. Restoring the user gives the original UPN back.
pub(crate) fn deleted_upn(id: &str, upn: &str) -> String {
    format!("{}{upn}", id.replace('-', ""))
}

/// `SMTP:a@b` and `smtp:a@b` claim `a@b`; other address types keep their prefix.
pub(crate) fn proxy_claim(address: &str) -> String {
    let lower = address.to_lowercase();
    match lower.strip_prefix("smtp:") {
        Some(rest) => rest.to_owned(),
        None => lower,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_shape() {
        assert!(is_guid("c42b9cae-ea4f-4ab7-9717-81576235ccac"));
        assert!(!is_guid("c42b9cae-ea4f-4ab7-9717-81576235cca"));
        assert!(!is_guid("E5"));
    }

    #[test]
    fn extension_names() {
        assert!(is_extension(
            "extension_0123456789abcdef0123456789abcdef_hrKey"
        ));
        assert!(!is_extension("extension_abc_hrKey"));
        assert!(!is_extension("extension_0123456789abcdef0123456789abcdef_"));
    }

    #[test]
    fn passwords_follow_entras_policy() {
        assert!(password_is_complex("Correct-Horse-9"));
        assert!(password_is_complex("lowercase9!"));
        assert!(!password_is_complex("abc"));
        assert!(!password_is_complex("alllowercase"));
        assert!(!password_is_complex("lowercase99"));
        assert!(!password_is_complex("Shrt-9"));
        assert!(!password_is_complex(&format!("Aa1-{}", "x".repeat(253))));
        assert!(!password_is_complex("Pässword-99"));
    }

    #[test]
    fn proxy_claims_ignore_smtp_prefix_case() {
        assert_eq!(proxy_claim("SMTP:A@B.example"), "a@b.example");
        assert_eq!(proxy_claim("smtp:a@b.example"), "a@b.example");
        assert_eq!(proxy_claim("SIP:a@b.example"), "sip:a@b.example");
    }
}
