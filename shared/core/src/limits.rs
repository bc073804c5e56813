//! Graph's documented limits on the user properties hrsync writes. They are checked when a
//! worker is decided, so a value the directory would refuse shows in `plan` and the audit, and
//! no request Graph must refuse is ever sent.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::identity::{AppliedIdentity, Identifiers};
use crate::worker::InvalidWorker;

/// The most characters Graph takes in each user property that has a documented limit.
///
/// Source: learn.microsoft.com/graph/api/resources/user (v1.0, Properties: "Maximum length is
/// N characters"). officeLocation's 128 is from learn.microsoft.com/azure/active-directory-b2c/user-profile-attributes
/// ("physicalDeliveryOfficeName (officeLocation) ... Max length 128"); the v1.0 page gives it none.
/// Properties without a documented limit (employeeType among them) are not checked.
pub const MAX_CHARS: [(&str, usize); 15] = [
    ("city", 128),
    ("companyName", 64),
    ("country", 128),
    ("department", 64),
    ("displayName", 256),
    ("employeeId", crate::worker::EMPLOYEE_ID_MAX_CHARS),
    ("givenName", 64),
    ("jobTitle", 128),
    ("mailNickname", 64),
    ("mobilePhone", 64),
    ("officeLocation", 128),
    ("postalCode", 40),
    ("state", 128),
    ("streetAddress", 1024),
    ("surname", 64),
];

/// Graph's documented maximum length of a user property, in characters.
pub fn max_chars(property: &str) -> Option<usize> {
    MAX_CHARS
        .iter()
        .find(|(name, _)| *name == property)
        .map(|(_, max)| *max)
}

/// The characters a mailNickname may not contain besides anything outside ASCII: `@ ( ) \ [ ]
/// " ; : < > ,` and space. Graph states them for the group's mailNickname
/// (learn.microsoft.com/graph/api/resources/group); the user page gives only the length.
pub const MAIL_NICKNAME_FORBIDDEN: &str = "@()\\[]\";:<>, ";

/// What is wrong with a mailNickname, if anything.
pub fn mail_nickname_problem(nickname: &str) -> Option<String> {
    let length = nickname.chars().count();
    let max = max_chars("mailNickname").unwrap_or(usize::MAX);
    if nickname.is_empty() {
        return Some("is empty".into());
    }
    if length > max {
        return Some(format!(
            "{nickname:?} has {length} characters; Graph takes at most {max}"
        ));
    }
    nickname
        .chars()
        .find(|c| !c.is_ascii() || MAIL_NICKNAME_FORBIDDEN.contains(*c))
        .map(|bad| {
            format!("{nickname:?} contains {bad:?}, which Graph does not take in a mailNickname")
        })
}

/// Properties Graph never lets be cleared: displayName ("can't be cleared during updates") and
/// usageLocation ("Not nullable"), learn.microsoft.com/graph/api/resources/user.
pub const NOT_CLEARABLE: [&str; 2] = ["displayName", "usageLocation"];

/// The officially assigned ISO 3166-1 alpha-2 codes (as Debian's iso-codes 4.15 lists them).
/// Graph's usageLocation is "a two-letter country code (ISO standard 3166)", and a licence
/// cannot be assigned without one (learn.microsoft.com/graph/api/user-assignlicense).
pub const ISO_3166_ALPHA_2: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// A usageLocation Graph takes: an ISO 3166 alpha-2 code, in either case.
pub fn is_usage_location(code: &str) -> bool {
    code.len() == 2
        && ISO_3166_ALPHA_2
            .binary_search(&code.to_ascii_uppercase().as_str())
            .is_ok()
}

/// A value hrsync did not send because Graph would refuse it, and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataProblem {
    /// The Graph property at fault, e.g. `jobTitle` or `usageLocation`.
    pub property: String,
    /// The value's length in characters, when its length is the problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
    /// Graph's maximum length of the property, when its length is the problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// What is wrong, what hrsync did instead, and what to fix in HR or the config.
    pub message: String,
}

impl fmt::Display for DataProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The config key whose template renders a property.
fn template_key(property: &str) -> String {
    match property {
        "displayName" => "identity.display_name".into(),
        "userPrincipalName" | "mailNickname" => "identity.upn".into(),
        _ => format!("attributes.{property}"),
    }
}

/// Why Graph would refuse a rendered value, if it would: what is wrong (after the property's
/// name), the value's length and the limit (when its length is the problem), and what to fix.
struct Refusal {
    what: String,
    length: Option<usize>,
    limit: Option<usize>,
    fix: String,
}

fn refusal(property: &str, value: &str) -> Option<Refusal> {
    let key = template_key(property);
    if value.is_empty() && NOT_CLEARABLE.contains(&property) {
        return Some(Refusal {
            what: "rendered empty and Graph requires it".into(),
            length: Some(0),
            limit: None,
            fix: format!("fix the HR record or change {key}"),
        });
    }
    if property == "usageLocation" && !is_usage_location(value) {
        return Some(Refusal {
            what: format!("{value:?} is not a two-letter ISO 3166 country code (e.g. GB, US)"),
            length: None,
            limit: None,
            fix: format!("correct the country in HR or change {key}"),
        });
    }
    let length = value.chars().count();
    let max = max_chars(property).filter(|max| length > *max)?;
    Some(Refusal {
        what: format!("has {length} characters and Graph takes at most {max}"),
        length: Some(length),
        limit: Some(max),
        fix: format!("shorten it in HR or change {key}"),
    })
}

/// Checks the rendered attributes of a desired identity. A value Graph would refuse is left
/// out, so the directory keeps what it has, and reported; an account about to be created
/// (`creating`) cannot do without its displayName, so there it is an error for the worker.
pub(crate) fn check_attributes(
    attributes: &mut BTreeMap<String, Option<String>>,
    applied: Option<&AppliedIdentity>,
    creating: bool,
    problems: &mut Vec<DataProblem>,
) -> Result<(), InvalidWorker> {
    let mut left_out = Vec::new();
    for (property, value) in attributes.iter() {
        match value {
            Some(value) => {
                let Some(refused) = refusal(property, value) else {
                    continue;
                };
                if creating && property == "displayName" {
                    return Err(InvalidWorker::new(
                        "displayName",
                        format!(
                            "{}, so the account cannot be created; {}",
                            refused.what, refused.fix
                        ),
                    ));
                }
                left_out.push(property.clone());
                problems.push(DataProblem {
                    property: property.clone(),
                    length: refused.length,
                    limit: refused.limit,
                    message: format!(
                        "{property} {}: not sent, the directory keeps its value; {}",
                        refused.what, refused.fix
                    ),
                });
            }
            None if NOT_CLEARABLE.contains(&property.as_str()) => {
                left_out.push(property.clone());
                // A problem only when the clear would have been sent.
                if let Some(kept) = applied.and_then(|a| a.attributes.get(property)) {
                    problems.push(DataProblem {
                        property: property.clone(),
                        length: None,
                        limit: None,
                        message: format!(
                            "{property} rendered empty and Graph cannot clear it: not sent, the directory keeps {kept:?}; give the worker a value in HR or change {}",
                            template_key(property)
                        ),
                    });
                }
            }
            None => {}
        }
    }
    for property in left_out {
        attributes.remove(&property);
    }
    Ok(())
}

/// Checks the names of an account about to be created: Graph refuses the create when one
/// breaks its rules, so the worker gets an error naming the property instead.
pub(crate) fn check_names(identifiers: &Identifiers) -> Result<(), InvalidWorker> {
    if let Err(problem) = crate::unique::check_upn(&identifiers.upn) {
        return Err(InvalidWorker::new(
            "userPrincipalName",
            format!(
                "{:?}: {problem}, so the account cannot be created; change identity.upn",
                identifiers.upn
            ),
        ));
    }
    if let Some(problem) = mail_nickname_problem(identifiers.mail_nickname()) {
        return Err(InvalidWorker::new(
            "mailNickname",
            format!("{problem}, so the account cannot be created; change identity.upn"),
        ));
    }
    Ok(())
}

/// The licences that can be assigned: Graph refuses a licence to an account without a
/// usageLocation, so when neither the desired attributes nor the account have one, only the
/// licences the account already holds are kept and the rest are reported.
pub(crate) fn assignable_licenses(
    wanted: BTreeSet<String>,
    attributes: &BTreeMap<String, Option<String>>,
    applied: Option<&AppliedIdentity>,
    configured: bool,
    problems: &mut Vec<DataProblem>,
) -> BTreeSet<String> {
    let desired = attributes.get("usageLocation").cloned().flatten();
    let known = applied.and_then(|a| a.attributes.get("usageLocation").cloned());
    if desired.or(known).is_some() {
        return wanted;
    }
    let held = applied.map(|a| a.licenses.clone()).unwrap_or_default();
    let (kept, withheld): (BTreeSet<String>, BTreeSet<String>) =
        wanted.into_iter().partition(|sku| held.contains(sku));
    if !withheld.is_empty() {
        let fix = match configured {
            true => {
                "give the worker a country in HR that attributes.usageLocation renders as a two-letter ISO 3166 code"
            }
            false => "set usageLocation in [attributes] (e.g. usageLocation = \"{{ country }}\")",
        };
        let skus: Vec<&str> = withheld.iter().map(String::as_str).collect();
        problems.push(DataProblem {
            property: "usageLocation".into(),
            length: None,
            limit: None,
            message: format!(
                "licence {} not assigned: the account has no usageLocation, which Graph requires before a licence; {fix}",
                skus.join(", ")
            ),
        });
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_are_sorted_for_lookup() {
        assert!(ISO_3166_ALPHA_2.windows(2).all(|w| w[0] < w[1]));
        assert!(MAX_CHARS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn usage_location_is_an_iso_code_in_either_case() {
        assert!(is_usage_location("GB") && is_usage_location("gb") && is_usage_location("US"));
        assert!(
            !is_usage_location("UK"),
            "the United Kingdom is GB in ISO 3166"
        );
        assert!(!is_usage_location("GBR") && !is_usage_location("") && !is_usage_location("G"));
    }

    #[test]
    fn a_mail_nickname_takes_64_ascii_characters_without_the_forbidden_ones() {
        assert_eq!(mail_nickname_problem("ada.o'brien"), None);
        assert_eq!(mail_nickname_problem(&"a".repeat(64)), None);
        assert!(mail_nickname_problem(&"a".repeat(65)).is_some());
        for bad in ["ada lovelace", "ada@x", "zoë", "a(b)", "a;b", "a\"b", ""] {
            assert!(mail_nickname_problem(bad).is_some(), "{bad:?}");
        }
    }
}
