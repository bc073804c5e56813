//! The directory `hrsync` commands talk to ([`hrsync_directory::connect`]), with the secrets
//! a local command can read itself.

use std::path::Path;

use anyhow::{Context, bail};
use hrsync_core::config::{DirectoryConfig, SecretRef};
pub use hrsync_directory::connect::Connection;

/// `base`: the config file's folder, against which a relative `directory.data` is read.
pub async fn connect(config: &DirectoryConfig, base: &Path) -> anyhow::Result<Connection> {
    let resolve = |secret: &SecretRef| resolve(secret).map_err(|e| format!("{e:#}"));
    Ok(hrsync_directory::connect::connect(config, base, &resolve).await?)
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
