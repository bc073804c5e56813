//! `hrsync doctor --config FILE [--format table|json]`: checks, in order, that the config
//! parses, that every secret reference resolves, that the directory gives a token and lets the
//! app make a harmless read for each permission the config needs, that every HR API answers an
//! authenticated read, and that the state file is usable; one line per check saying what is
//! wrong and how to fix it. Nothing is written anywhere (the in-process sandbox of
//! `kind = "sandbox"` aside, which keeps its own file).
//!
//! Exit status: 0 when nothing failed (warnings allowed), 1 when a check failed, 2 when the
//! config cannot be read.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hrsync_core::Config;
use hrsync_core::config::{CertificateRef, DirectoryKind, SecretRef, SourceKind};
use hrsync_directory::graph::{GraphClient, GraphError, GraphRequest};
use serde::Serialize;

use crate::Format;
use crate::directory::{self, Connection};
use crate::output::outln;
use crate::runtime::{DEFAULT_STATE, config_dir};

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The hrsync.toml to check.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    #[serde(rename = "ok")]
    Ok,
    #[serde(rename = "warning")]
    Warning,
    #[serde(rename = "FAILED")]
    Failed,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Failed => "FAILED",
        }
    }
}

/// One check: its keys are a contract for scripts.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    check: String,
    status: Status,
    detail: String,
    /// Empty when there is nothing to fix.
    fix: String,
}

impl Check {
    fn new(check: impl Into<String>, status: Status, detail: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            status,
            detail: detail.into(),
            fix: String::new(),
        }
    }

    fn ok(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(check, Status::Ok, detail)
    }

    fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }
}

#[derive(Serialize)]
struct Report<'a> {
    checks: &'a [Check],
}

pub fn main(args: DoctorArgs) -> ExitCode {
    let (checks, config_read) = run(&args);
    print(&checks, args.format);
    if !config_read {
        ExitCode::from(2)
    } else if checks.iter().any(|c| c.status == Status::Failed) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn print(checks: &[Check], format: Format) {
    match format {
        Format::Json => match serde_json::to_string_pretty(&Report { checks }) {
            Ok(text) => outln!("{text}"),
            Err(e) => eprintln!("error: cannot write the report: {e}"),
        },
        Format::Table => {
            let width = checks.iter().map(|c| c.check.len()).max().unwrap_or(0);
            for check in checks {
                outln!(
                    "{:<7}  {:<width$}  {}",
                    check.status.word(),
                    check.check,
                    check.detail
                );
                if !check.fix.is_empty() {
                    outln!("{:<7}  {:<width$}  fix: {}", "", "", check.fix);
                }
            }
            let failed = checks.iter().filter(|c| c.status == Status::Failed).count();
            let warnings = checks
                .iter()
                .filter(|c| c.status == Status::Warning)
                .count();
            outln!(
                "{} check(s): {failed} failed, {warnings} warning(s)",
                checks.len()
            );
        }
    }
}

/// Every check, and whether the config could be read at all.
fn run(args: &DoctorArgs) -> (Vec<Check>, bool) {
    let mut checks = Vec::new();
    let config = match crate::runtime::load_config(&args.config) {
        Ok(config) => config,
        Err(e) => {
            checks.push(
                Check::new("config", Status::Failed, format!("{e:#}")).with_fix(
                    "correct the config where the message points (README.md, Configuration)",
                ),
            );
            return (checks, false);
        }
    };
    checks.push(Check::ok(
        "config",
        format!("{} parses and is valid", args.config.display()),
    ));
    checks.extend(secrets(&config));
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => {
            let base = config_dir(&args.config).to_owned();
            let state = state_path(&config, &args.config);
            checks.extend(runtime.block_on(directory_checks(&config, &base, &state)));
            checks.extend(runtime.block_on(hr_checks(&config)));
        }
        Err(e) => checks.push(Check::new(
            "directory",
            Status::Failed,
            format!("cannot start the async runtime: {e}"),
        )),
    }
    checks.push(state(&config, &args.config));
    (checks, true)
}

/// Every secret reference of the config, named by its key.
fn secret_refs(config: &Config) -> Vec<(String, &SecretRef)> {
    let mut refs = Vec::new();
    if let Some(secret) = &config.directory.client_secret {
        refs.push(("directory.client_secret".to_owned(), secret));
    }
    if let Some(CertificateRef::Secret(secret)) = &config.directory.certificate {
        refs.push(("directory.certificate".to_owned(), secret));
    }
    for (name, source) in &config.sources {
        if let Some(secret) = &source.webhook_secret {
            refs.push((format!("source.{name}.webhook_secret"), secret));
        }
        for key in [
            "api_key",
            "service_user_id",
            "token",
            "client_id",
            "client_secret",
        ] {
            if let Some(secret) = source.credential(key) {
                refs.push((format!("source.{name}.{key}"), secret));
            }
        }
    }
    refs
}

/// `{ env }` references resolve here; `{ ssm }` and `{ secret }` are the AWS runtime's.
fn secrets(config: &Config) -> Vec<Check> {
    let mut checks: Vec<Check> = secret_refs(config)
        .into_iter()
        .map(|(key, secret)| {
            let check = format!("secret {key}");
            match secret {
                SecretRef::Env(name) => match std::env::var(name) {
                    Ok(value) if !value.is_empty() => {
                        Check::ok(check, format!("{{ env = \"{name}\" }} is set"))
                    }
                    Ok(_) => Check::new(
                        check,
                        Status::Failed,
                        format!("{{ env = \"{name}\" }} is set but empty"),
                    )
                    .with_fix(format!("set {name} to the secret's value")),
                    Err(_) => Check::new(
                        check,
                        Status::Failed,
                        format!("{{ env = \"{name}\" }} names an unset environment variable"),
                    )
                    .with_fix(format!(
                        "set {name} to the secret's value in the environment hrsync runs in"
                    )),
                },
                SecretRef::Ssm(name) => Check::new(
                    check,
                    Status::Warning,
                    format!("{{ ssm = \"{name}\" }} is read by the AWS runtime; not checked here"),
                )
                .with_fix(
                    "make sure the parameter exists and the functions' role may read it; locally use { env = \"...\" }",
                ),
                SecretRef::Secret(name) => Check::new(
                    check,
                    Status::Warning,
                    format!(
                        "{{ secret = \"{name}\" }} is read by the AWS runtime; not checked here"
                    ),
                )
                .with_fix(
                    "make sure the secret exists and the functions' role may read it; locally use { env = \"...\" }",
                ),
            }
        })
        .collect();
    if let Some(CertificateRef::Path(path)) = &config.directory.certificate {
        checks.push(match std::fs::read_to_string(path) {
            Ok(_) => Check::ok("certificate file", format!("{path} is readable")),
            Err(e) => Check::new(
                "certificate file",
                Status::Failed,
                format!("cannot read {path}: {e}"),
            )
            .with_fix("directory.certificate must name a PEM file with the certificate and its private key"),
        });
    }
    checks
}

/// The runtime lock of the state, held while the in-process sandbox is open (it keeps its
/// directory beside the state, and one process at a time may open it); `Err` with the check to
/// report when a running `hrsync serve` (or another runtime) holds it. `Ok(None)`: no runtime
/// ever ran here.
fn runtime_lock(state: &Path) -> Result<Option<std::fs::File>, Check> {
    let path = crate::runtime::lock_path(state);
    let Ok(file) = std::fs::File::options().write(true).open(&path) else {
        return Ok(None);
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(Check::new(
            "directory",
            Status::Warning,
            format!(
                "another hrsync process (hrsync serve?) runs on {} and owns the in-process sandbox; not opened a second time",
                state.display()
            ),
        )
        .with_fix("stop it to check the sandbox directory, or ask it: `hrsync status`")),
        Err(std::fs::TryLockError::Error(_)) => Ok(None),
    }
}

/// The token, then one harmless read per permission the config needs.
async fn directory_checks(config: &Config, base: &Path, state: &Path) -> Vec<Check> {
    let mut checks = Vec::new();
    let _lock =
        match config.directory.kind == DirectoryKind::Sandbox && config.directory.url.is_none() {
            true => match runtime_lock(state) {
                Ok(lock) => lock,
                Err(check) => return vec![check],
            },
            false => None,
        };
    let connection = match directory::connect_unchecked(config, base).await {
        Ok(connection) => connection,
        Err(e) => {
            checks.push(
                Check::new("directory", Status::Failed, format!("{e:#}"))
                    .with_fix("fix the [directory] table or the secrets above"),
            );
            return checks;
        }
    };
    let graph = &connection.graph;
    match graph.check_token().await {
        Ok(()) => checks.push(Check::ok(
            "directory token",
            format!(
                "{}: a token from {}",
                connection.description,
                graph.token_endpoint()
            ),
        )),
        Err(e) => {
            checks.push(token_failure(&connection, &e));
            return checks;
        }
    }
    checks.push(
        read(
            graph,
            "users read",
            "/users?$top=1&$select=id",
            "User.ReadWrite.All",
        )
        .await
        .map_or_else(|c| c, |_| Check::ok("users read", "GET /users answered")),
    );
    for id in config.access_groups() {
        let name = format!("group {id}");
        let rule = directory::granting_rule(config, id);
        let url = format!("/groups/{id}?$select=id,displayName");
        checks.push(
            match read(graph, &name, &url, "GroupMember.ReadWrite.All").await {
                Ok(body) => Check::ok(
                    name,
                    format!(
                        "exists ({}), granted by {rule}",
                        body["displayName"].as_str().unwrap_or("no display name")
                    ),
                ),
                Err(check) => check,
            },
        );
    }
    let licenses = config.access_licenses();
    if !licenses.is_empty() {
        let name = "licences read";
        checks.push(
            match read(
                graph,
                name,
                "/subscribedSkus?$select=skuId,skuPartNumber",
                "LicenseAssignment.Read.All",
            )
            .await
            {
                Ok(body) => {
                    let owned: Vec<&str> = body["value"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|sku| sku["skuId"].as_str())
                        .collect();
                    let missing: Vec<&str> = licenses
                        .iter()
                        .copied()
                        .filter(|id| !owned.iter().any(|o| o.eq_ignore_ascii_case(id)))
                        .collect();
                    if missing.is_empty() {
                        Check::ok(
                            name,
                            format!(
                                "the tenant owns every licence the access rules grant ({})",
                                licenses.len()
                            ),
                        )
                    } else {
                        Check::new(
                            name,
                            Status::Failed,
                            format!(
                                "the tenant has no subscription for skuId {}",
                                missing.join(", ")
                            ),
                        )
                        .with_fix("correct the skuId in [[access]] licenses (GET /subscribedSkus lists the tenant's), or buy the licence")
                    }
                }
                Err(check) => check,
            },
        );
    }
    checks.extend(permission_checks(config, graph).await);
    checks
}

/// A permission the config needs: its name, the ones that cover it too, and what it is for.
struct Needed {
    permission: &'static str,
    or: &'static [&'static str],
    for_what: &'static str,
}

/// The application permissions the config needs (docs/entra-setup.md).
fn needed(config: &Config) -> Vec<Needed> {
    let mut needed = vec![Needed {
        permission: "User.ReadWrite.All",
        or: &["Directory.ReadWrite.All"],
        for_what: "create and update accounts",
    }];
    if !config.access_groups().is_empty() {
        needed.push(Needed {
            permission: "GroupMember.ReadWrite.All",
            or: &["Group.ReadWrite.All", "Directory.ReadWrite.All"],
            for_what: "add and remove the access rules' group members",
        });
    }
    if !config.access_licenses().is_empty() {
        needed.push(Needed {
            permission: "LicenseAssignment.Read.All",
            or: &[
                "Directory.Read.All",
                "Directory.ReadWrite.All",
                "Organization.Read.All",
                "Organization.ReadWrite.All",
            ],
            for_what: "read the free licence units (GET /subscribedSkus)",
        });
    }
    if config.directory.employee_leave_date {
        needed.push(Needed {
            permission: "User-LifeCycleInfo.ReadWrite.All",
            or: &[],
            for_what: "write employeeLeaveDateTime",
        });
    }
    needed
}

/// Each permission the config needs against the token's `roles` claim; when the token does not
/// say, a warning that writes are not tried.
async fn permission_checks(config: &Config, graph: &GraphClient) -> Vec<Check> {
    let needed = needed(config);
    let roles = match graph.granted_roles().await {
        Ok(Some(roles)) => roles,
        Ok(None) | Err(_) => {
            let names: Vec<&str> = needed.iter().map(|n| n.permission).collect();
            return vec![
                Check::new(
                    "permissions",
                    Status::Warning,
                    format!(
                        "the token does not list its permissions; the reads above passed, writes are not tried (needed: {})",
                        names.join(", ")
                    ),
                )
                .with_fix("make sure the app holds these application permissions, with admin consent (docs/entra-setup.md)"),
            ];
        }
    };
    needed
        .iter()
        .map(|need| {
            let check = format!("permission {}", need.permission);
            let held = std::iter::once(need.permission)
                .chain(need.or.iter().copied())
                .find(|p| roles.iter().any(|r| r == p));
            match held {
                Some(p) if p == need.permission => {
                    Check::ok(check, format!("granted, to {}", need.for_what))
                }
                Some(p) => Check::ok(check, format!("covered by {p}, to {}", need.for_what)),
                None => Check::new(
                    check,
                    Status::Failed,
                    format!(
                        "the app's token does not grant {}, needed to {}",
                        need.permission, need.for_what
                    ),
                )
                .with_fix(format!(
                    "add the Microsoft Graph application permission {} to the app registration, then Grant admin consent",
                    need.permission
                )),
            }
        })
        .collect()
}

fn token_failure(connection: &Connection, error: &GraphError) -> Check {
    let cause = match error.refusal() {
        Some(refusal) => format!("{refusal} at {}", connection.graph.token_endpoint()),
        None => error.to_string(),
    };
    Check::new(
        "directory token",
        Status::Failed,
        format!("{}: {cause}", connection.description),
    )
    .with_fix(error.fix().unwrap_or("check the [directory] table"))
}

/// `GET url`; a failure is the check to report, a 403 naming `permission`.
async fn read(
    graph: &GraphClient,
    name: &str,
    url: &str,
    permission: &str,
) -> Result<serde_json::Value, Check> {
    let path = url.split('?').next().unwrap_or(url);
    match graph.send(&GraphRequest::get(url)).await {
        Ok(response) => Ok(response.body.unwrap_or_default()),
        Err(GraphError::Graph {
            status: 403, code, ..
        }) => Err(Check::new(
            name,
            Status::Failed,
            format!("GET {path} was refused (403 {code}): the app lacks {permission}"),
        )
        .with_fix(format!(
            "add the Microsoft Graph application permission {permission} to the app registration, then Grant admin consent"
        ))),
        Err(GraphError::Graph {
            status: 404, ..
        }) if path.starts_with("/groups/") => Err(Check::new(
            name,
            Status::Failed,
            "no group with this id in the tenant",
        )
        .with_fix("correct the group's object id in the [[access]] rules, or create the group")),
        Err(e) => Err(Check::new(name, Status::Failed, format!("GET {path}: {e}"))
            .with_fix(e.fix().unwrap_or("see the error; `RUST_LOG=debug` shows the requests"))),
    }
}

/// One authenticated read from each HR API the config names.
async fn hr_checks(config: &Config) -> Vec<Check> {
    let http = match reqwest::Client::builder()
        .user_agent(concat!("hrsync/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(30))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            return vec![Check::new(
                "hr api",
                Status::Failed,
                format!("cannot build the HTTP client: {e}"),
            )];
        }
    };
    let mut checks = Vec::new();
    for (name, source) in &config.sources {
        if source.kind == SourceKind::Csv {
            continue;
        }
        let check = format!("hr api {name}");
        let resolve = |secret: &SecretRef| directory::resolve(secret).map_err(|e| format!("{e:#}"));
        let connectors = match hrsync_hr::Connectors::from_config(
            [(name, source)],
            hrsync_hr::Webhooks::Taken,
            &resolve,
            &http,
        ) {
            Ok(connectors) => connectors,
            Err(e) => {
                checks.push(
                    Check::new(check, Status::Failed, e.to_string())
                        .with_fix("fix the source's settings or the secrets above"),
                );
                continue;
            }
        };
        let Some(connector) = connectors.get(name) else {
            continue;
        };
        checks.push(match connector.check(jiff::Timestamp::now()) {
            None => Check::new(
                check,
                Status::Warning,
                format!("{:?} has no API check", source.kind),
            ),
            Some(probe) => match probe.await {
                Ok(what) => Check::ok(check, what),
                Err(e) => Check::new(check, Status::Failed, e.to_string()).with_fix(
                    "check api_url, that it is reachable from here, and the source's API credential and its permissions in the HR system",
                ),
            },
        });
    }
    checks
}

/// Where the state file is: `[state] path`, default `.hrsync/state.db`, beside the config.
fn state_path(config: &Config, config_path: &Path) -> PathBuf {
    config_dir(config_path).join(config.state.path.as_deref().unwrap_or(DEFAULT_STATE))
}

/// The state file: absent (made on the first run), or its schema version this build's.
fn state(config: &Config, config_path: &Path) -> Check {
    let path = state_path(config, config_path);
    if !path.exists() {
        return Check::new(
            "state",
            Status::Warning,
            format!("{} does not exist yet", path.display()),
        )
        .with_fix("nothing to do: the first import or serve creates it");
    }
    let current = hrsync_local::store::SCHEMA_VERSION;
    match hrsync_local::store::schema_version(&path) {
        Ok(version) if version == current => Check::ok(
            "state",
            format!("{} opens; schema version {version}", path.display()),
        ),
        Ok(version) if version < current => Check::new(
            "state",
            Status::Warning,
            format!(
                "{} has schema version {version}; this hrsync migrates it to {current} on its next run",
                path.display()
            ),
        )
        .with_fix("nothing to do; keep a copy of the file if you may go back to the older hrsync"),
        Ok(version) => Check::new(
            "state",
            Status::Failed,
            format!(
                "{} has schema version {version}, newer than this hrsync knows ({current})",
                path.display()
            ),
        )
        .with_fix("use the newer hrsync that wrote it"),
        Err(e) => Check::new("state", Status::Failed, e.to_string())
            .with_fix("check the file's permissions and [state] path; a broken file can be restored from a backup"),
    }
}
