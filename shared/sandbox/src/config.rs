//! How a sandbox starts: its data file, faults, seeded groups and SKUs, verified domains, client
//! secret and write quota, with the command-line spellings of the seeds (`FromStr`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::schema::is_guid;

/// The verified domains used when [`SandboxConfig::verified_domains`] is empty.
pub const DEFAULT_VERIFIED_DOMAINS: [&str; 2] = ["acme.example", "example.com"];

/// How a sandbox starts.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// SQLite file holding the directory: loaded by [`crate::Sandbox::new`] when it exists (a
    /// legacy JSON data file is migrated in place), and written row by row, before each answer,
    /// by every request that changes the directory.
    pub data: Option<PathBuf>,
    /// Misbehaviour to inject; changeable later with [`crate::Sandbox::set_faults`].
    pub faults: Faults,
    /// Groups that exist, applied over the stored directory on start (a stored group of the same
    /// id is updated; stored groups not named here stay). There is no other way to make a group.
    pub groups: Vec<SeedGroup>,
    /// Licences the tenant owns, applied like `groups`. `assignLicense` accepts only these.
    pub skus: Vec<SeedSku>,
    /// Domains a userPrincipalName may use; empty means DEFAULT_VERIFIED_DOMAINS.
    pub verified_domains: Vec<String>,
    /// When set, the token endpoint refuses any other client secret (401 invalid_client, AADSTS7000215). None: any secret.
    pub client_secret: Option<String>,
    /// Graph's write quota per app and tenant; None: unlimited.
    pub write_limit: Option<WriteLimit>,
    /// The application permissions (app roles) granted to the app, sent in the token's `roles`
    /// claim; a Graph request none of whose accepted permissions is granted is 403
    /// `Authorization_RequestDenied` (see [`crate::permissions`]). Default:
    /// [`DEFAULT_APP_ROLES`].
    pub app_roles: Vec<String>,
    /// The app registration's federated identity credentials (workload identity federation):
    /// a client assertion from another issuer is accepted only when one of them matches it
    /// and its signature checks against the issuer's published keys. At most 20.
    pub federated_credentials: Vec<FederatedCredential>,
}

/// A federated identity credential on the app registration
/// (learn.microsoft.com/graph/api/resources/federatedidentitycredential).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FederatedCredential {
    /// The external issuer's URL; the assertion's `iss` must equal it. Its
    /// `/.well-known/openid-configuration` names the keys (`jwks_uri`). `https`, or `http`
    /// on a loopback host (tests).
    pub issuer: String,
    /// The external workload; the assertion's `sub` must equal it (case-sensitive).
    pub subject: String,
    /// Exactly one audience, normally `api://AzureADTokenExchange`; the assertion's `aud`
    /// must hold it.
    pub audiences: Vec<String>,
}

/// At most this many federated identity credentials on an app
/// (learn.microsoft.com/entra/workload-id/workload-identity-federation-considerations).
pub const MAX_FEDERATED_CREDENTIALS: usize = 20;

/// The permissions the sandbox's app is granted unless [`SandboxConfig::app_roles`] says
/// otherwise: everything hrsync needs, and `Domain.Read.All` for `GET /domains`.
pub const DEFAULT_APP_ROLES: [&str; 5] = [
    "User.ReadWrite.All",
    "GroupMember.ReadWrite.All",
    "LicenseAssignment.ReadWrite.All",
    "LicenseAssignment.Read.All",
    "Domain.Read.All",
];

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            data: None,
            faults: Faults::default(),
            groups: Vec::new(),
            skus: Vec::new(),
            verified_domains: DEFAULT_VERIFIED_DOMAINS
                .iter()
                .map(|d| (*d).to_owned())
                .collect(),
            client_secret: None,
            write_limit: None,
            app_roles: DEFAULT_APP_ROLES.iter().map(|r| (*r).to_owned()).collect(),
            federated_credentials: Vec::new(),
        }
    }
}

/// Misbehaviour the sandbox injects, the way Graph misbehaves in production.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Share (0..=1) of requests answered `429 TooManyRequests` with a `Retry-After` header.
    pub throttle_rate: f64,
    /// The `Retry-After` value (seconds) of throttled and unavailable answers.
    pub retry_after_secs: u64,
    /// Share (0..=1) of requests answered `503 ServiceUnavailable` (a quarter of them
    /// `504 GatewayTimeout`).
    pub error_rate: f64,
    /// A new user is invisible to reads, `$filter` and references (manager, member) for this
    /// long; writes addressed to its id answer 404 half of the time meanwhile.
    pub replication_lag: Duration,
    /// Seed of the RNG that draws faults; the same seed and requests give the same faults.
    pub seed: u64,
}

/// A group that exists from the start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedGroup {
    pub id: String,
    pub display_name: String,
    /// skuIds assigned to the group (group-based licensing)
    pub licenses: Vec<String>,
}

/// A licence (subscribed SKU) the tenant owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedSku {
    pub id: String,
    pub part_number: String,
    /// prepaidUnits.enabled
    pub units: u32,
}

/// Graph's write quota: at most `writes` write requests in any `window` (a sliding window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteLimit {
    pub writes: u32,
    pub window: std::time::Duration,
}

/// Why a seed or limit given as text was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedError(String);

impl fmt::Display for SeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SeedError {}

fn guid(text: &str, what: &str, whole: &str) -> Result<String, SeedError> {
    let text = text.trim();
    if is_guid(text) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(SeedError(format!(
            "'{whole}': the {what} '{text}' is not a GUID (8-4-4-4-12 hex digits)"
        )))
    }
}

impl FromStr for SeedSku {
    type Err = SeedError;

    /// `ID=PART@UNITS`, e.g. `05e9a617-0261-4cee-bb44-138d3ef5d965=SPE_E3@100`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (id, rest) = s.split_once('=').ok_or_else(|| {
            SeedError(format!(
                "'{s}': a SKU is ID=PART@UNITS, e.g. 05e9a617-0261-4cee-bb44-138d3ef5d965=SPE_E3@100"
            ))
        })?;
        let (part, units) = rest.rsplit_once('@').ok_or_else(|| {
            SeedError(format!(
                "'{s}': the SKU has no @UNITS (its prepaid units, e.g. SPE_E3@100)"
            ))
        })?;
        let part = part.trim();
        if part.is_empty() {
            return Err(SeedError(format!("'{s}': the SKU part number is empty")));
        }
        let units = units.trim().parse::<u32>().map_err(|_| {
            SeedError(format!(
                "'{s}': the units '{units}' are not a whole number from 0 to {}",
                u32::MAX
            ))
        })?;
        Ok(Self {
            id: guid(id, "skuId", s)?,
            part_number: part.to_owned(),
            units,
        })
    }
}

impl FromStr for SeedGroup {
    type Err = SeedError;

    /// `ID=NAME`, or `ID=NAME@SKU1,SKU2` for a licensing group.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (id, rest) = s.split_once('=').ok_or_else(|| {
            SeedError(format!(
                "'{s}': a group is ID=NAME or ID=NAME@SKU1,SKU2 (its object id, display name and licences)"
            ))
        })?;
        let (name, licenses) = match rest.rsplit_once('@') {
            Some((name, skus)) => {
                let licenses = skus
                    .split(',')
                    .map(|sku| guid(sku, "skuId", s))
                    .collect::<Result<Vec<_>, _>>()?;
                (name, licenses)
            }
            None => (rest, Vec::new()),
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(SeedError(format!(
                "'{s}': the group's display name is empty"
            )));
        }
        Ok(Self {
            id: guid(id, "group id", s)?,
            display_name: name.to_owned(),
            licenses,
        })
    }
}

impl FromStr for FederatedCredential {
    type Err = SeedError;

    /// `issuer=URL,subject=ID[,audience=AUD]` (audience default `api://AzureADTokenExchange`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (mut issuer, mut subject, mut audience) = (None, None, None);
        for part in s.split(',') {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                SeedError(format!(
                    "'{s}': a federated credential is issuer=URL,subject=ID[,audience=AUD]"
                ))
            })?;
            let slot = match key.trim() {
                "issuer" => &mut issuer,
                "subject" => &mut subject,
                "audience" => &mut audience,
                other => {
                    return Err(SeedError(format!(
                        "'{s}': unknown key '{other}' (issuer, subject, audience)"
                    )));
                }
            };
            *slot = Some(value.to_owned());
        }
        let (Some(issuer), Some(subject)) = (issuer, subject) else {
            return Err(SeedError(format!(
                "'{s}': a federated credential needs issuer= and subject="
            )));
        };
        Ok(Self {
            issuer,
            subject,
            audiences: vec![audience.unwrap_or_else(|| "api://AzureADTokenExchange".to_owned())],
        })
    }
}

impl FromStr for WriteLimit {
    type Err = SeedError;

    /// `WRITES/DURATION`, e.g. `3000/150s` or `3000/2m` (durations in `s` or `m`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (writes, window) = s.split_once('/').ok_or_else(|| {
            SeedError(format!(
                "'{s}': a write limit is WRITES/DURATION, e.g. 3000/150s (Graph's identity write quota)"
            ))
        })?;
        let writes = writes
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|w| *w > 0)
            .ok_or_else(|| {
                SeedError(format!(
                    "'{s}': the number of writes '{writes}' is not a whole number above 0"
                ))
            })?;
        let window = window.trim();
        let (number, unit) = window.split_at(window.len().saturating_sub(1));
        let seconds = match (number.parse::<u64>(), unit) {
            (Ok(n), "s") if n > 0 => n,
            (Ok(n), "m") if n > 0 => n.saturating_mul(60),
            _ => {
                return Err(SeedError(format!(
                    "'{s}': the window '{window}' is not a duration above 0 in s or m, e.g. 150s or 5m"
                )));
            }
        };
        Ok(Self {
            writes,
            window: Duration::from_secs(seconds),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_parse_and_say_what_is_wrong() {
        let sku: SeedSku = "05E9A617-0261-4cee-bb44-138d3ef5d965=SPE_E3@100"
            .parse()
            .expect("parses");
        assert_eq!(sku.id, "05e9a617-0261-4cee-bb44-138d3ef5d965");
        assert_eq!(sku.part_number, "SPE_E3");
        assert_eq!(sku.units, 100);
        let err = "x=SPE_E3@1".parse::<SeedSku>().expect_err("not a guid");
        assert!(err.to_string().contains("not a GUID"), "{err}");
        let err = "05e9a617-0261-4cee-bb44-138d3ef5d965=SPE_E3"
            .parse::<SeedSku>()
            .expect_err("no units");
        assert!(err.to_string().contains("@UNITS"), "{err}");
        let err = "05e9a617-0261-4cee-bb44-138d3ef5d965=SPE_E3@-1"
            .parse::<SeedSku>()
            .expect_err("negative");
        assert!(err.to_string().contains("units"), "{err}");
    }

    #[test]
    fn groups_parse_with_and_without_licences() {
        let g: SeedGroup = "8c3f9f5e-1b7a-4d7e-9a55-3f1f4a0c2b11=Engineering"
            .parse()
            .expect("parses");
        assert_eq!(g.display_name, "Engineering");
        assert!(g.licenses.is_empty());
        let g: SeedGroup = "8c3f9f5e-1b7a-4d7e-9a55-3f1f4a0c2b11=All staff@05e9a617-0261-4cee-bb44-138d3ef5d965,c42b9cae-ea4f-4ab7-9717-81576235ccac"
            .parse()
            .expect("parses");
        assert_eq!(g.display_name, "All staff");
        assert_eq!(g.licenses.len(), 2);
        assert!("nope".parse::<SeedGroup>().is_err());
        assert!(
            "8c3f9f5e-1b7a-4d7e-9a55-3f1f4a0c2b11=X@bad"
                .parse::<SeedGroup>()
                .is_err()
        );
    }

    #[test]
    fn federated_credentials_parse() {
        let credential: FederatedCredential =
            "issuer=https://abc.tokens.sts.global.api.aws,subject=arn:aws:iam::123456789012:role/hrsync-EntraRole"
                .parse()
                .expect("parses");
        assert_eq!(credential.issuer, "https://abc.tokens.sts.global.api.aws");
        assert_eq!(
            credential.subject,
            "arn:aws:iam::123456789012:role/hrsync-EntraRole"
        );
        assert_eq!(
            credential.audiences,
            vec!["api://AzureADTokenExchange".to_owned()]
        );
        let other: FederatedCredential = "issuer=https://i,subject=s,audience=api://x"
            .parse()
            .expect("parses");
        assert_eq!(other.audiences, vec!["api://x".to_owned()]);
        assert!("issuer=https://i".parse::<FederatedCredential>().is_err());
        assert!(
            "issuer=https://i,subject=s,colour=red"
                .parse::<FederatedCredential>()
                .is_err()
        );
    }

    #[test]
    fn write_limits_parse() {
        let l: WriteLimit = "3000/150s".parse().expect("parses");
        assert_eq!(l.writes, 3000);
        assert_eq!(l.window, Duration::from_secs(150));
        let l: WriteLimit = "18000/5m".parse().expect("parses");
        assert_eq!(l.window, Duration::from_secs(300));
        for bad in ["3000", "0/1s", "10/0s", "10/5h", "x/5s"] {
            assert!(bad.parse::<WriteLimit>().is_err(), "{bad}");
        }
    }
}
