//! The local runtime: the pipeline over the SQLite file that `[state] path` names (default
//! `.hrsync/state.db` beside the config), the configured directory, and one clock.
//!
//! Commands that run stages (`serve`, `import`, `terminate`, `holds approve`...) take an
//! exclusive lock on `<state>.lock`: one runtime per state file, so the in-process sandbox
//! is never shared by two processes and a restarted runtime may take back messages its dead
//! predecessor had in flight. Read-only commands need no lock.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use hrsync_core::{Config, Worker, WorkerKey};
use hrsync_hr::Connectors;
use hrsync_local::{SqliteQueue, SqliteStore, SqliteTimers};
use hrsync_pipeline::operations::Operations;
use hrsync_pipeline::{Clock, DirectoryLookups, Pipeline, Runner, RunnerSettings};

use crate::directory::{self, Connection};

/// The config file, parsed and validated.
pub(crate) fn load_config(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config {}", path.display()))?;
    Ok(Config::parse(&text, &path.display().to_string())?)
}

/// Where a relative path in the config is read from.
pub fn config_dir(config: &Path) -> &Path {
    config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

pub const DEFAULT_STATE: &str = ".hrsync/state.db";

/// The config and the store it names.
pub struct Local {
    pub config: Arc<Config>,
    pub config_path: PathBuf,
    pub state_path: PathBuf,
    pub store: Arc<SqliteStore>,
    pub queue: Arc<SqliteQueue>,
    pub timers: Arc<SqliteTimers>,
}

pub type LocalRunner = Runner<SqliteStore, SqliteQueue, SqliteTimers>;

/// The SQLite state the config's `[state]` names, relative to the config file's folder.
pub fn state_path(config: &Config, config_path: &Path) -> PathBuf {
    config_dir(config_path).join(config.state.path.as_deref().unwrap_or(DEFAULT_STATE))
}

impl Local {
    pub fn open(config_path: &Path) -> anyhow::Result<Self> {
        let config = load_config(config_path)?;
        let state_path = state_path(&config, config_path);
        if let Some(parent) = state_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            hrsync_local::files::create_private_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let store = SqliteStore::open(&state_path)
            .with_context(|| format!("cannot open the state store {}", state_path.display()))?;
        Ok(Self {
            queue: Arc::new(store.queue()),
            timers: Arc::new(store.timers()),
            store: Arc::new(store),
            config: Arc::new(config),
            config_path: config_path.to_owned(),
            state_path,
        })
    }

    /// The operator's levers and views over this state ([`Operations`]).
    pub fn operations(&self) -> Operations<'_, SqliteStore, SqliteQueue, SqliteTimers> {
        Operations {
            config: &self.config,
            store: &self.store,
            queue: &self.queue,
            timers: &self.timers,
        }
    }

    /// The worker's latest HR record: the intake's inbox, else the one the state was decided on.
    pub async fn latest_record(&self, key: &WorkerKey) -> anyhow::Result<Option<Worker>> {
        Ok(self.operations().latest_record(key).await?)
    }

    /// The connector of every source that is not a csv export, with its secrets resolved
    /// now: a missing secret stops the start rather than the first webhook. An import works
    /// for one source and need not hold the others' credentials: a source whose secrets are
    /// not here is left out (its queued work, if any, then stops the run, kept).
    fn connectors(&self, work: Work) -> anyhow::Result<Connectors> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("hrsync/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .context("cannot build the HTTP client")?;
        let resolve = |secret: &hrsync_core::config::SecretRef| {
            directory::resolve(secret).map_err(|e| format!("{e:#}"))
        };
        let webhooks = hrsync_hr::Webhooks::Taken;
        if work == Work::Events {
            return Ok(Connectors::from_config(
                &self.config.sources,
                webhooks,
                &resolve,
                &http,
            )?);
        }
        let connectors =
            Connectors::as_far_as_possible(&self.config.sources, webhooks, &resolve, &http);
        for (source, why) in connectors.all_left_out() {
            tracing::info!(source, "this run does without a source: {why}");
        }
        Ok(connectors)
    }

    /// The `[[notify]]` targets: chat webhooks and SMTP (SNS and SES are the AWS runtime's).
    fn notifications(&self) -> anyhow::Result<hrsync_pipeline::Notifications> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("hrsync/", env!("CARGO_PKG_VERSION")))
            .timeout(hrsync_pipeline::notify::SEND_TIMEOUT)
            .build()
            .context("cannot build the HTTP client")?;
        let resolve = |secret: &hrsync_core::config::SecretRef| {
            directory::resolve(secret).map_err(|e| format!("{e:#}"))
        };
        let build = |key: &str, target: &hrsync_core::config::NotifyTarget| {
            match hrsync_pipeline::notify::chat_webhook(key, target, &resolve, &http)? {
                Some(webhook) => Ok(Some(webhook)),
                None => hrsync_local::smtp::notifier(key, target, &resolve),
            }
        };
        hrsync_pipeline::Notifications::from_config(&self.config, &build)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.config_path.display()))
    }

    /// Takes the runtime lock, or says who holds it: `None` when another runtime (`hrsync
    /// serve`) runs on this state, which will then do the work queued here.
    pub fn try_lock(&self) -> anyhow::Result<Option<RuntimeLock>> {
        let path = lock_path(&self.state_path);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(RuntimeLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    /// Like [`Local::try_lock`], but another runtime holding the lock is an error.
    pub fn lock(&self) -> anyhow::Result<RuntimeLock> {
        match self.try_lock()? {
            Some(lock) => Ok(lock),
            None => bail!(
                "another hrsync process (hrsync serve?) is running on {}; stop it or send it the work",
                self.state_path.display()
            ),
        }
    }

    /// The pipeline and its runner for events as they come, under the lock; messages a crashed
    /// predecessor had in flight are taken back at once.
    pub async fn start(
        &self,
        lock: &RuntimeLock,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Started> {
        self.start_as(lock, clock, Work::Events).await
    }

    /// Like [`Local::start`], for `work`.
    pub async fn start_as(
        &self,
        _lock: &RuntimeLock,
        clock: Arc<dyn Clock>,
        work: Work,
    ) -> anyhow::Result<Started> {
        let hr = self.connectors(work)?;
        let notify = Arc::new(self.notifications()?);
        let connection = directory::connect(&self.config, config_dir(&self.config_path)).await?;
        let released = self.queue.release_in_flight(clock.now()).await?;
        if released > 0 {
            tracing::info!(released, "took back messages an earlier run left in flight");
        }
        let approvals = self.operations().unfinished_approvals(clock.now()).await?;
        if approvals > 0 {
            tracing::warn!(
                approvals,
                "approved holds not yet carried out (an approval's nudge was lost): nudged again"
            );
        }
        let pipeline = Arc::new(Pipeline {
            config: Arc::clone(&self.config),
            store: Arc::clone(&self.store),
            queue: Arc::clone(&self.queue),
            timers: Arc::clone(&self.timers),
            graph: Some(connection.graph.clone()),
            lookups: match work {
                Work::Events => DirectoryLookups::PerWorker,
                Work::Bulk => DirectoryLookups::read_once(),
            },
            clock,
            hr,
            notify,
        });
        let settings = match work {
            Work::Events => RunnerSettings::default(),
            Work::Bulk => RunnerSettings {
                batch: BULK_ROUND,
                ..RunnerSettings::default()
            },
        };
        Ok(Started {
            runner: Arc::new(Runner::new(pipeline, settings)),
            connection,
        })
    }
}

/// Where the operator commands act: the local state, or a deployed stack (`[runtime]`).
pub enum Runtime {
    Local(Local),
    Aws(crate::aws::AwsRuntime),
}

impl Runtime {
    pub async fn open(config_path: &Path) -> anyhow::Result<Self> {
        let config = load_config(config_path)?;
        Ok(match config.runtime.kind {
            hrsync_core::config::RuntimeKind::Local => Self::Local(Local::open(config_path)?),
            hrsync_core::config::RuntimeKind::Aws => {
                Self::Aws(crate::aws::AwsRuntime::connect(config).await?)
            }
        })
    }

    pub fn config(&self) -> &Config {
        match self {
            Self::Local(local) => &local.config,
            Self::Aws(aws) => &aws.config,
        }
    }
}

/// Runs `$body` with `$ops` bound to the [`Operations`] of a [`Runtime`], whichever it is.
macro_rules! with_operations {
    ($runtime:expr, $ops:ident => $body:expr) => {
        match $runtime {
            $crate::runtime::Runtime::Local(local) => {
                let $ops = local.operations();
                $body
            }
            $crate::runtime::Runtime::Aws(aws) => {
                let $ops = aws.operations();
                $body
            }
        }
    };
}
pub(crate) use with_operations;

/// What a started runtime is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Events as they come (`serve`, the operations commands): a directory preflight per worker.
    Events,
    /// Many workers at once (`import`): the directory read once, and large rounds so that group
    /// additions of many workers go out together; the other sources' credentials are optional.
    Bulk,
}

/// Messages a bulk round takes from each queue. Large enough that the group additions of a
/// round fill their 20-member requests; small enough that a round's writes, paced to Graph's
/// 3,000 per 150 s, finish well within the 5-minute visibility timeout.
pub const BULK_ROUND: usize = 500;

pub(crate) fn lock_path(state: &Path) -> PathBuf {
    let mut name = state
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    state.with_file_name(name)
}

/// Held while this process runs stages on the state file.
#[derive(Debug)]
pub struct RuntimeLock {
    _file: File,
}

pub struct Started {
    pub runner: Arc<LocalRunner>,
    pub connection: Connection,
}
