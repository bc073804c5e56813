//! The directory `hrsync` commands talk to: Microsoft Graph or a sandbox at `directory.url`
//! ([`hrsync_directory::connect`]), or, when `kind = "sandbox"` names no URL, a sandbox this
//! process starts on `directory.data` and keeps running while the command does.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hrsync_core::Config;
use hrsync_core::config::{DirectoryKind, SecretRef};
use hrsync_directory::graph::{GraphClient, GraphError};
use hrsync_sandbox::{RunningSandbox, Sandbox, SandboxConfig, SeedGroup, SeedSku};

/// Where the in-process sandbox keeps its directory (a SQLite file) when `directory.data` is not
/// set, relative to the config file's folder (like `directory.data` itself).
pub const DEFAULT_SANDBOX_DATA: &str = ".hrsync/sandbox.db";

/// Where earlier versions kept it (a JSON file, which the sandbox migrates in place).
const LEGACY_SANDBOX_DATA: &str = ".hrsync/sandbox.json";

/// Units of each licence the in-process sandbox's tenant owns unless `directory.sandbox_skus`
/// says otherwise: enough never to be what stops a trial.
pub const DEFAULT_SANDBOX_UNITS: u32 = 1_000_000;

/// A Graph client, and the in-process sandbox it talks to when there is one (kept alive here).
#[derive(Debug)]
pub struct Connection {
    pub graph: GraphClient,
    pub description: String,
    _sandbox: Option<RunningSandbox>,
}

/// `base`: the config file's folder, against which a relative `directory.data` is read.
///
/// Gets a token at once: a refused credential or an unreachable endpoint stops the command here
/// with one message naming the endpoint, the cause and the fix, rather than failing every worker
/// with it.
pub async fn connect(config: &Config, base: &Path) -> anyhow::Result<Connection> {
    let connection = connect_unchecked(config, base).await?;
    if let Err(e) = connection.graph.check_token().await {
        bail!("{}", sign_in_failure(&connection, &e));
    }
    Ok(connection)
}

/// Why the app could not get a token, in words: where, what was refused or could not be
/// reached, and how to fix it. Never a secret or a token.
pub fn sign_in_failure(connection: &Connection, error: &GraphError) -> String {
    let cause = match error.refusal() {
        Some(refusal) => format!("{refusal} at {}", connection.graph.token_endpoint()),
        None => error.to_string(),
    };
    match error.fix() {
        Some(fix) => format!(
            "cannot sign in to {}: {cause}\n  fix: {fix}",
            connection.description
        ),
        None => format!("cannot sign in to {}: {cause}", connection.description),
    }
}

/// [`connect`] without getting a token.
pub async fn connect_unchecked(config: &Config, base: &Path) -> anyhow::Result<Connection> {
    let directory = &config.directory;
    if directory.kind == DirectoryKind::Sandbox && directory.url.is_none() {
        return start_in_process(config, base).await;
    }
    let resolve = |secret: &SecretRef| resolve(secret).map_err(|e| format!("{e:#}"));
    let connection = hrsync_directory::connect::connect(directory, &resolve, None)?;
    Ok(Connection {
        graph: connection.graph,
        description: connection.description,
        _sandbox: None,
    })
}

async fn start_in_process(config: &Config, base: &Path) -> anyhow::Result<Connection> {
    let data = match &config.directory.data {
        Some(data) => base.join(data),
        None => default_data(base)?,
    };
    if let Some(parent) = data.parent().filter(|p| !p.as_os_str().is_empty()) {
        hrsync_local::files::create_private_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let (groups, skus) = seeds(config)?;
    // A secret of this run only: the sandbox listens on loopback, and nothing else should get
    // tokens from it.
    let secret = format!("{:032x}", rand::random::<u128>());
    let running = Sandbox::start(SandboxConfig {
        data: Some(data.clone()),
        groups,
        skus,
        client_secret: Some(secret.clone()),
        ..SandboxConfig::default()
    })
    .await
    .context("cannot start the sandbox directory")?;
    let http = reqwest::Client::builder()
        .user_agent(concat!("hrsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    let write_limit = config
        .directory
        .write_limit()
        .map_err(|e| anyhow::anyhow!("directory.write_limit: {e}"))?;
    Ok(Connection {
        graph: hrsync_directory::connect::sandbox_client(&running.url, secret, write_limit, http),
        description: format!("the sandbox directory in {}", data.display()),
        _sandbox: Some(running),
    })
}

/// `.hrsync/sandbox.db`, taking over the JSON file of an earlier version if that is all there is.
fn default_data(base: &Path) -> anyhow::Result<PathBuf> {
    let data = base.join(DEFAULT_SANDBOX_DATA);
    let legacy = base.join(LEGACY_SANDBOX_DATA);
    if !data.exists() && legacy.exists() {
        std::fs::rename(&legacy, &data)
            .with_context(|| format!("cannot move {} to {}", legacy.display(), data.display()))?;
    }
    Ok(data)
}

/// The tenant the in-process sandbox starts with: `directory.sandbox_groups` and
/// `directory.sandbox_skus`, else every group and licence the access rules grant (licences
/// with [`DEFAULT_SANDBOX_UNITS`]), as an admin would have created them in a real tenant.
pub fn seeds(config: &Config) -> anyhow::Result<(Vec<SeedGroup>, Vec<SeedSku>)> {
    let directory = &config.directory;
    let groups = match directory.sandbox_groups.is_empty() {
        false => parse_all("directory.sandbox_groups", &directory.sandbox_groups)?,
        true => config
            .access_groups()
            .into_iter()
            .map(|id| SeedGroup {
                id: id.to_owned(),
                display_name: granting_rule(config, id),
                licenses: Vec::new(),
            })
            .collect(),
    };
    let skus = match directory.sandbox_skus.is_empty() {
        false => parse_all("directory.sandbox_skus", &directory.sandbox_skus)?,
        true => config
            .access_licenses()
            .into_iter()
            .map(|id| SeedSku {
                id: id.to_owned(),
                // Not a real part number: the sandbox cannot know which product the id is.
                part_number: format!("SANDBOX_{}", id.get(..8).unwrap_or(id).to_ascii_uppercase()),
                units: DEFAULT_SANDBOX_UNITS,
            })
            .collect(),
    };
    Ok((groups, skus))
}

/// Each of `texts` parsed (a seed), or the first that does not parse, named by `key[index]`.
fn parse_all<T: std::str::FromStr>(key: &str, texts: &[String]) -> anyhow::Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| text.parse().map_err(|e| anyhow::anyhow!("{key}[{i}]: {e}")))
        .collect()
}

/// The name of the first access rule that grants the group `id`, to name the group after.
pub(crate) fn granting_rule(config: &Config, id: &str) -> String {
    config
        .access
        .iter()
        .enumerate()
        .find(|(_, rule)| rule.groups.iter().any(|g| g.eq_ignore_ascii_case(id)))
        .map(|(i, rule)| rule.name.clone().unwrap_or_else(|| format!("access[{i}]")))
        .unwrap_or_else(|| id.to_owned())
}

/// Secrets this command can read itself; cloud stores are read by the AWS runtime.
pub(crate) fn resolve(secret: &SecretRef) -> anyhow::Result<String> {
    match secret {
        SecretRef::Env(name) => std::env::var(name).with_context(|| {
            format!(
                "the secret reference {{ env = \"{name}\" }} names an unset environment variable"
            )
        }),
        SecretRef::Ssm(name) => bail!(
            "{{ ssm = \"{name}\" }} is read by the AWS runtime; locally use {{ env = \"...\" }}"
        ),
        SecretRef::Secret(name) => {
            bail!(
                "{{ secret = \"{name}\" }} is read by the AWS runtime; locally use {{ env = \"...\" }}"
            )
        }
    }
}
