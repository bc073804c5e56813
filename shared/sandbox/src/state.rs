//! Directory objects, the user property schema, uniqueness claims and persistence.

use std::path::Path;
use std::time::Instant;

use base64::Engine as _;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::SandboxError;

const FORMAT: &str = "hrsync-sandbox/1";

/// The whole directory; this is what the data file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Directory {
    #[serde(default)]
    pub(crate) format: String,
    /// Signs the access tokens the sandbox issues, so they stay valid across a restart.
    #[serde(default)]
    pub(crate) token_key: String,
    #[serde(default)]
    pub(crate) users: Vec<UserRecord>,
    #[serde(default)]
    pub(crate) groups: Vec<GroupRecord>,
    #[serde(default)]
    pub(crate) skus: Vec<SkuRecord>,
}

/// A user: its Graph properties (`id`, `userPrincipalName`, ..., `deletedDateTime` once
/// soft-deleted) and its manager reference.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserRecord {
    pub(crate) user: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) manager_id: Option<String>,
    /// Replication lag: invisible to reads and references until then. Not persisted (a
    /// restart is long enough for any replica).
    #[serde(skip)]
    pub(crate) visible_at: Option<Instant>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GroupRecord {
    pub(crate) id: String,
    pub(crate) display_name: String,
    #[serde(default)]
    pub(crate) members: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SkuRecord {
    pub(crate) sku_id: String,
    pub(crate) sku_part_number: String,
}

impl UserRecord {
    pub(crate) fn str_prop(&self, name: &str) -> Option<&str> {
        self.user.get(name).and_then(Value::as_str)
    }

    pub(crate) fn id(&self) -> &str {
        self.str_prop("id").unwrap_or_default()
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.user
            .get("deletedDateTime")
            .is_some_and(|v| !v.is_null())
    }

    pub(crate) fn is_lagging(&self, now: Instant) -> bool {
        self.visible_at.is_some_and(|at| now < at)
    }

    /// Live and replicated: what reads, `$filter` and references see.
    pub(crate) fn is_visible(&self, now: Instant) -> bool {
        !self.is_deleted() && !self.is_lagging(now)
    }

    /// The UPN the user has when live: a soft-deleted user's stored UPN carries Entra's
    /// object-id prefix ([`deleted_upn`]), which this strips.
    pub(crate) fn original_upn(&self) -> Option<String> {
        let upn = self.str_prop("userPrincipalName")?;
        if !self.is_deleted() {
            return Some(upn.to_owned());
        }
        let prefix = self.id().replace('-', "");
        Some(match upn.get(..prefix.len()) {
            Some(head) if !prefix.is_empty() && head.eq_ignore_ascii_case(&prefix) => {
                upn[prefix.len()..].to_owned()
            }
            _ => upn.to_owned(),
        })
    }

    /// The addresses this user holds in the directory-wide namespace shared by
    /// `userPrincipalName`, `mail` and `proxyAddresses` (lowercase, `smtp:` stripped). A
    /// soft-deleted user holds its original UPN (see [`Directory::conflicting_claim`]).
    pub(crate) fn claims(&self) -> Vec<String> {
        let mut claims = Vec::new();
        if let Some(upn) = self.original_upn() {
            claims.push(upn.to_lowercase());
        }
        if let Some(mail) = self.str_prop("mail") {
            claims.push(mail.to_lowercase());
        }
        if let Some(proxies) = self.user.get("proxyAddresses").and_then(Value::as_array) {
            claims.extend(proxies.iter().filter_map(Value::as_str).map(proxy_claim));
        }
        claims
    }
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

impl Directory {
    pub(crate) fn fresh() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self {
            format: FORMAT.to_owned(),
            token_key: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key),
            ..Self::default()
        }
    }

    pub(crate) fn load(path: &Path) -> Result<Self, SandboxError> {
        let bytes = std::fs::read(path).map_err(|source| SandboxError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut dir: Directory =
            serde_json::from_slice(&bytes).map_err(|source| SandboxError::Parse {
                path: path.to_owned(),
                source,
            })?;
        if dir.token_key.is_empty() {
            dir.token_key = Self::fresh().token_key;
        }
        dir.format = FORMAT.to_owned();
        Ok(dir)
    }

    /// Writes the directory as pretty JSON: to a temp file next to `path`, then renamed over it,
    /// so a crash never leaves half a file.
    pub(crate) fn save(&self, path: &Path) -> Result<(), SandboxError> {
        let write_err = |source| SandboxError::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(write_err)?;
        }
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| write_err(std::io::Error::other(e)))?;
        let mut tmp_name = path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        std::fs::write(&tmp, json).map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(write_err)
    }

    pub(crate) fn apply_seeds(&mut self, groups: &[(String, String)], skus: &[(String, String)]) {
        for (id, name) in groups {
            match self
                .groups
                .iter_mut()
                .find(|g| g.id.eq_ignore_ascii_case(id))
            {
                Some(g) => g.display_name = name.clone(),
                None => self.groups.push(GroupRecord {
                    id: id.clone(),
                    display_name: name.clone(),
                    members: Vec::new(),
                }),
            }
        }
        for (sku_id, part) in skus {
            match self
                .skus
                .iter_mut()
                .find(|s| s.sku_id.eq_ignore_ascii_case(sku_id))
            {
                Some(s) => s.sku_part_number = part.clone(),
                None => self.skus.push(SkuRecord {
                    sku_id: sku_id.to_lowercase(),
                    sku_part_number: part.clone(),
                }),
            }
        }
    }

    pub(crate) fn user_by_id(&self, id: &str) -> Option<&UserRecord> {
        self.users.iter().find(|u| u.id().eq_ignore_ascii_case(id))
    }

    /// A live (not soft-deleted) user by id or userPrincipalName, regardless of lag.
    pub(crate) fn live_index(&self, key: &str) -> Option<usize> {
        self.users.iter().position(|u| {
            !u.is_deleted()
                && (u.id().eq_ignore_ascii_case(key)
                    || u.str_prop("userPrincipalName")
                        .is_some_and(|p| p.eq_ignore_ascii_case(key)))
        })
    }

    /// A soft-deleted user by id.
    pub(crate) fn deleted_index(&self, id: &str) -> Option<usize> {
        self.users
            .iter()
            .position(|u| u.is_deleted() && u.id().eq_ignore_ascii_case(id))
    }

    pub(crate) fn group(&self, id: &str) -> Option<&GroupRecord> {
        self.groups.iter().find(|g| g.id.eq_ignore_ascii_case(id))
    }

    pub(crate) fn group_index(&self, id: &str) -> Option<usize> {
        self.groups
            .iter()
            .position(|g| g.id.eq_ignore_ascii_case(id))
    }

    pub(crate) fn sku(&self, sku_id: &str) -> Option<&SkuRecord> {
        self.skus
            .iter()
            .find(|s| s.sku_id.eq_ignore_ascii_case(sku_id))
    }

    /// The first of `claims` that another user (live, lagging or soft-deleted) already holds.
    ///
    /// Soft-deleted users keep their original UPN, mail and proxy addresses reserved. That is
    /// stricter than Entra, which frees them on delete (hence restore's `newUserPrincipalName`
    /// and `autoReconcileProxyConflict`); hrsync never reuses a soft-deleted user's name anyway
    /// (`GraphClient::name_in_use` counts them as taken).
    pub(crate) fn conflicting_claim<'a>(
        &self,
        claims: &'a [(&'static str, String)],
        except_id: Option<&str>,
    ) -> Option<&'a (&'static str, String)> {
        let others: Vec<String> = self
            .users
            .iter()
            .filter(|u| except_id.is_none_or(|id| !u.id().eq_ignore_ascii_case(id)))
            .flat_map(UserRecord::claims)
            .collect();
        claims
            .iter()
            .find(|(_, claim)| others.iter().any(|o| o == claim))
    }
}

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
/// maximum lengths Graph documents.
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
        "userPrincipalName"
        | "mail"
        | "employeeType"
        | "officeLocation"
        | "city"
        | "country"
        | "state"
        | "streetAddress"
        | "postalCode"
        | "mobilePhone"
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
    fn proxy_claims_ignore_smtp_prefix_case() {
        assert_eq!(proxy_claim("SMTP:A@B.example"), "a@b.example");
        assert_eq!(proxy_claim("smtp:a@b.example"), "a@b.example");
        assert_eq!(proxy_claim("SIP:a@b.example"), "sip:a@b.example");
    }
}
