//! The operations commands of the local runtime: what is queued, held, dead-lettered and
//! scheduled, and the operator's levers.
//!
//! - read-only: `hrsync status`, `hrsync audit WORKER`, `hrsync timers`, `hrsync holds list`,
//!   `hrsync dlq list`: no lock, so they work while `hrsync serve` runs;
//! - acting: `hrsync terminate`, `hrsync holds approve|reject`, `hrsync dlq redrive`: they
//!   write to the store and queues, then run the pipeline until the work is done when no
//!   other runtime holds the lock; otherwise the running `hrsync serve` does the work.
//!
//! `--format json` prints one JSON document whose snake_case keys are a contract for scripts.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use hrsync_core::{Config, Lifecycle, WorkerKey};
use hrsync_pipeline::operations::{Operations, PendingLicenses};
use hrsync_pipeline::ports::{
    AuditRecord, DeadLetter, Hold, HoldStatus, Queue, QueueName, StateStore, TimerSpec, Timers,
    timer_kind_str,
};
use hrsync_pipeline::{Clock, Report, ShiftedClock, SystemClock};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::Format;
use crate::output::{out, outln};
use crate::runtime::{Local, Runtime, RuntimeLock, Started, with_operations};

/// Upcoming timers `hrsync status` shows.
const STATUS_TIMERS: usize = 10;

// ---------------------------------------------------------------------------------------------
// Arguments

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The hrsync.toml to use.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Look as of this instant (RFC 3339) instead of the system time: which timers are overdue.
    #[arg(long, value_name = "RFC3339")]
    now: Option<Timestamp>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The worker: `source:employee_id`, or the employee id alone when the config has one
    /// source. Without it: every worker's records (the last `--limit` of the window).
    #[arg(value_name = "WORKER")]
    worker: Option<String>,
    /// The hrsync.toml to use.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Only records at or after this instant (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    since: Option<Timestamp>,
    /// Only records before this instant (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    until: Option<Timestamp>,
    /// Only records of this action (`create`, `disable`, `dead_lettered`, `manager_deferred`...).
    #[arg(long, value_name = "ACTION")]
    action: Option<String>,
    /// Across workers: at most this many records, the latest of the window.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    limit: usize,
    /// `csv`: one row per record (worker, at, stage, action, cause, before, after, trace), for
    /// a spreadsheet or an auditor.
    #[arg(long, value_enum, default_value_t = AuditFormat::Table)]
    format: AuditFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct TimersArgs {
    /// The hrsync.toml to use.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Only this worker's timers.
    #[arg(long, value_name = "WORKER")]
    worker: Option<String>,
    /// At most this many timers, earliest first.
    #[arg(long, value_name = "N", default_value_t = 50)]
    limit: usize,
    /// Look as of this instant (RFC 3339) instead of the system time: which timers are overdue.
    #[arg(long, value_name = "RFC3339")]
    now: Option<Timestamp>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, clap::Args)]
pub struct TerminateArgs {
    /// The worker: `source:employee_id`, or the employee id alone when the config has one source.
    #[arg(value_name = "WORKER")]
    worker: String,
    /// Terminate immediately: disable the account and revoke its sessions now. Required; only
    /// immediate termination exists for now.
    #[arg(long)]
    immediately: bool,
    /// Run at this instant (RFC 3339) instead of the system time, as `--now` means elsewhere.
    /// A bare `--now` (no instant) is the earlier spelling of `--immediately`, still taken.
    #[arg(long, value_name = "RFC3339", num_args = 0..=1)]
    now: Option<Option<Timestamp>>,
    /// Why (kept in the audit log).
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// The hrsync.toml to use.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The earlier name of `--now RFC3339`.
    #[arg(long, alias = "at-clock", value_name = "RFC3339", hide = true)]
    clock: Option<Timestamp>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, clap::Args)]
pub struct HoldsArgs {
    #[command(subcommand)]
    command: HoldsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum HoldsCommand {
    /// Operations the safety breaker holds (or held).
    List(HoldsListArgs),
    /// Let held operations through, and run them.
    Approve(HoldsApproveArgs),
    /// Refuse held operations for good.
    Reject(HoldsRejectArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum HoldFilter {
    Pending,
    Approved,
    Rejected,
    All,
}

#[derive(Debug, clap::Args)]
struct HoldsListArgs {
    /// The hrsync.toml to use.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    #[arg(long, value_enum, default_value_t = HoldFilter::Pending)]
    status: HoldFilter,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// Which holds or dead letters a command acts on.
#[derive(Debug, clap::Args)]
struct Selection {
    /// Their ids (from the list command).
    #[arg(
        value_name = "ID",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    ids: Vec<String>,
    /// All of them.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, clap::Args)]
struct HoldsApproveArgs {
    #[command(flatten)]
    select: Selection,
    /// The hrsync.toml to use.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Run at this instant (RFC 3339) instead of the system time.
    #[arg(long, value_name = "RFC3339")]
    clock: Option<Timestamp>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct HoldsRejectArgs {
    #[command(flatten)]
    select: Selection,
    /// Why (kept in the audit log).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// The hrsync.toml to use.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Record the rejection at this instant (RFC 3339) instead of the system time.
    #[arg(long, value_name = "RFC3339")]
    clock: Option<Timestamp>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DlqCommand {
    /// Messages that ran out of attempts.
    List(DlqListArgs),
    /// Send dead letters back to their queue (after fixing the cause), and run them.
    Redrive(DlqRedriveArgs),
}

#[derive(Debug, clap::Args)]
struct DlqListArgs {
    /// The hrsync.toml to use.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Only this queue's dead letters.
    #[arg(long, value_name = "NAME", value_parser = parse_queue)]
    queue: Option<QueueName>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct DlqRedriveArgs {
    #[command(flatten)]
    select: Selection,
    /// Only this queue's dead letters.
    #[arg(long, value_name = "NAME", value_parser = parse_queue)]
    queue: Option<QueueName>,
    /// The hrsync.toml to use.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Run at this instant (RFC 3339) instead of the system time.
    #[arg(long, value_name = "RFC3339")]
    clock: Option<Timestamp>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

fn parse_queue(text: &str) -> Result<QueueName, String> {
    QueueName::parse(text).ok_or_else(|| {
        let names: Vec<&str> = QueueName::ALL.iter().map(|q| q.as_str()).collect();
        format!("unknown queue {text:?} (one of {})", names.join(", "))
    })
}

// ---------------------------------------------------------------------------------------------
// JSON shapes (a contract for scripts)

#[derive(Debug, Serialize)]
struct StatusView {
    workers: usize,
    /// In pipeline order: hr-events, worker-events, directory, writeback.
    queues: std::collections::BTreeMap<QueueName, DepthView>,
    holds: Vec<HoldView>,
    timers: Vec<TimerView>,
    /// Licences without a free unit, by SKU.
    pending_licenses: Vec<PendingLicenses>,
}

#[derive(Debug, Serialize)]
struct DepthView {
    visible: u64,
    in_flight: u64,
    dead: u64,
}

#[derive(Debug, Serialize)]
struct HoldView {
    id: String,
    worker: String,
    action: String,
    reason: String,
    created_at: Timestamp,
    status: &'static str,
}

impl From<&Hold> for HoldView {
    fn from(hold: &Hold) -> Self {
        Self {
            id: hold.id.clone(),
            worker: hold.worker.to_string(),
            action: hold.action.clone(),
            reason: hold.reason.clone(),
            created_at: hold.created_at,
            status: hold.status.as_str(),
        }
    }
}

#[derive(Debug, Serialize)]
struct TimerView {
    name: String,
    worker: String,
    kind: &'static str,
    /// UTC.
    at: Timestamp,
    /// The worker's zone (else `lifecycle.default_time_zone`).
    time_zone: String,
    /// `at` on the worker's clock (RFC 9557, e.g. `2026-12-18T17:00:00+00:00[Europe/London]`).
    local: String,
    /// `at` has passed and the timer has not fired: nothing has run the pipeline since.
    overdue: bool,
    /// How far `at` is from the instant looked at (`in 3d 4h`, `OVERDUE by 18h`).
    #[serde(skip)]
    due: String,
}

/// An audit record with every key present (absent values are null).
#[derive(Debug, Serialize)]
struct AuditView {
    worker: String,
    at: Timestamp,
    stage: String,
    action: String,
    cause: String,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    trace: Option<String>,
}

impl From<AuditRecord> for AuditView {
    fn from(record: AuditRecord) -> Self {
        Self {
            worker: record.worker.to_string(),
            at: record.at,
            stage: record.stage,
            action: record.action,
            cause: record.cause,
            before: record.before,
            after: record.after,
            trace: record.trace,
        }
    }
}

#[derive(Debug, Serialize)]
struct DeadLetterView {
    id: String,
    queue: &'static str,
    worker: String,
    reason: String,
    attempts: u32,
    at: Timestamp,
    trace: String,
}

impl DeadLetterView {
    fn new(queue: QueueName, letter: &DeadLetter) -> Self {
        Self {
            id: letter.id.clone(),
            queue: queue.as_str(),
            worker: letter.nudge.worker.to_string(),
            reason: letter.reason.clone(),
            attempts: letter.attempts,
            at: letter.at,
            trace: letter.nudge.trace.clone(),
        }
    }
}

/// Where a worker stands after an acting command.
#[derive(Debug, Serialize)]
struct WorkerResult {
    worker: String,
    lifecycle: Option<&'static str>,
    /// Whether the account is disabled in the directory; null when hrsync knows no account.
    disabled: Option<bool>,
    /// The reason, when the worker's work was dead-lettered during this run.
    failed: Option<String>,
}

#[derive(Debug, Serialize)]
struct TerminateView {
    at: Timestamp,
    reason: String,
    /// True when another runtime (`hrsync serve`) holds the lock and will do the work.
    queued: bool,
    #[serde(flatten)]
    result: WorkerResult,
}

#[derive(Debug, Serialize)]
struct ResolvedView {
    /// True when another runtime (`hrsync serve`) holds the lock and will do the work.
    queued: bool,
    holds: Vec<ResolvedHold>,
}

#[derive(Debug, Serialize)]
struct ResolvedHold {
    id: String,
    status: &'static str,
    #[serde(flatten)]
    result: WorkerResult,
}

#[derive(Debug, Serialize)]
struct RedriveView {
    /// True when another runtime (`hrsync serve`) holds the lock and will do the work.
    queued: bool,
    redriven: Vec<Redriven>,
}

#[derive(Debug, Serialize)]
struct Redriven {
    id: String,
    queue: &'static str,
    #[serde(flatten)]
    result: WorkerResult,
}

// ---------------------------------------------------------------------------------------------
// Read-only commands

pub fn status(args: StatusArgs) -> anyhow::Result<usize> {
    block_on(async {
        let runtime = Runtime::open(&args.config).await?;
        let now = args.now.unwrap_or_else(Timestamp::now);
        let view = with_operations!(&runtime, ops => status_view(&ops, now).await?);
        let config = runtime.config();
        if args.format == Format::Json {
            return print_json(&view);
        }
        print_status(config, &view);
        Ok(0)
    })
}

async fn status_view<S: StateStore, Q: Queue, T: Timers>(
    ops: &Operations<'_, S, Q, T>,
    now: Timestamp,
) -> anyhow::Result<StatusView> {
    {
        let queues = ops
            .depths()
            .await?
            .into_iter()
            .map(|(name, depth)| {
                let view = DepthView {
                    visible: depth.visible,
                    in_flight: depth.in_flight,
                    dead: depth.dead,
                };
                (name, view)
            })
            .collect();
        let holds = ops.store.holds(Some(HoldStatus::Pending)).await?;
        let timers = ops.timers(None, STATUS_TIMERS).await?;
        Ok(StatusView {
            workers: ops.store.workers().await?.len(),
            queues,
            holds: holds.iter().map(HoldView::from).collect(),
            timers: timer_views(ops, &timers, now).await?,
            pending_licenses: ops.pending_licenses().await?,
        })
    }
}

fn print_status(config: &Config, view: &StatusView) {
    {
        outln!("workers in the store: {}", view.workers);
        outln!();
        let rows = view
            .queues
            .iter()
            .map(|(name, d)| {
                vec![
                    name.to_string(),
                    d.visible.to_string(),
                    d.in_flight.to_string(),
                    d.dead.to_string(),
                ]
            })
            .collect();
        print_table(&["queue", "visible", "in flight", "dead"], rows);
        outln!();
        match view.holds.is_empty() {
            true => outln!("pending holds: none"),
            false => {
                outln!("pending holds (approve or reject with `hrsync holds`):");
                print_holds(&view.holds);
            }
        }
        outln!();
        if !view.pending_licenses.is_empty() {
            outln!("licences waiting for a free unit (buy or free units; each is tried again):");
            let rows = view
                .pending_licenses
                .iter()
                .map(|p| {
                    let sku = match config.label(&p.sku) {
                        Some(label) => format!("{label} ({})", p.sku),
                        None => p.sku.clone(),
                    };
                    vec![
                        sku,
                        p.workers.to_string(),
                        p.next_try.to_string(),
                        p.reason.clone(),
                    ]
                })
                .collect();
            print_table(&["sku", "workers", "next try", "why"], rows);
            outln!();
        }
        match view.timers.is_empty() {
            true => outln!("timers: none"),
            false => {
                outln!("next timers:");
                print_timers(&view.timers);
            }
        }
    }
}

pub fn audit(args: AuditArgs) -> anyhow::Result<usize> {
    block_on(async {
        let runtime = Runtime::open(&args.config).await?;
        with_operations!(&runtime, ops => audit_with(&ops, &args).await)
    })
}

async fn audit_with<S: StateStore, Q: Queue, T: Timers>(
    ops: &Operations<'_, S, Q, T>,
    args: &AuditArgs,
) -> anyhow::Result<usize> {
    let key = args
        .worker
        .as_deref()
        .map(|w| worker_key(ops.config, w))
        .transpose()?;
    let since = args.since.unwrap_or(Timestamp::MIN);
    let until = args.until.unwrap_or(Timestamp::MAX);
    let wanted = |record: &AuditRecord| {
        since <= record.at
            && record.at < until
            && args.action.as_ref().is_none_or(|a| *a == record.action)
    };
    {
        let (title, records) = match &key {
            Some(key) => {
                let records = ops.store.audit(key).await?;
                if records.is_empty() && ops.store.load(key).await?.is_none() {
                    bail!("unknown worker {key}: no audit record and no stored state");
                }
                let records: Vec<AuditRecord> = records.into_iter().filter(wanted).collect();
                (format!("audit of {key}"), records)
            }
            None => {
                // With an action to match, the whole window is read before the last `limit`.
                let read = match args.action {
                    Some(_) => usize::MAX,
                    None => args.limit,
                };
                let mut records: Vec<AuditRecord> = ops
                    .store
                    .audit_between(since, until, read)
                    .await?
                    .into_iter()
                    .filter(wanted)
                    .take(args.limit)
                    .collect();
                records.reverse();
                ("audit of every worker".to_owned(), records)
            }
        };
        let views: Vec<AuditView> = records.into_iter().map(AuditView::from).collect();
        match args.format {
            AuditFormat::Json => return print_json(&views),
            AuditFormat::Csv => return print_audit_csv(&views),
            AuditFormat::Table => {}
        }
        outln!("{title} ({} records, oldest first)", views.len());
        for record in &views {
            let worker = match key {
                Some(_) => String::new(),
                None => format!("{:<12} ", record.worker),
            };
            outln!(
                "{}  {worker}{:<10} {:<16} {}",
                record.at,
                record.stage,
                record.action,
                record.cause
            );
            // The JSON has the whole before and after; the table only what changed. A
            // directory step's after is `{"op", "account"}`: the account is compared with the
            // account before, and the operation named.
            let mut changed = Vec::new();
            let step = record
                .after
                .as_ref()
                .and_then(|after| Some((after.get("op")?, after.get("account")?)));
            let after = match step {
                Some((op, account)) => {
                    changed.push(format!("op: {}", describe_op(ops.config, op)));
                    Some(account)
                }
                None => record.after.as_ref(),
            };
            let path = if step.is_some() { "account" } else { "" };
            let before = record.before.as_ref();
            let mut diff = Vec::new();
            changes(ops.config, "", before, after, &mut diff);
            changed.extend(diff.into_iter().map(|line| match path {
                "" => line,
                prefix => format!("{prefix}.{line}"),
            }));
            for change in changed {
                outln!("    {change}");
            }
        }
        Ok(0)
    }
}

/// A directory operation of the audit: its name, and the group, licence or manager it is about
/// by name (`add_group All Staff`).
fn describe_op(config: &Config, op: &serde_json::Value) -> String {
    let name = op.get("op").and_then(|n| n.as_str()).unwrap_or("operation");
    let target = ["group", "sku", "manager"]
        .iter()
        .find_map(|key| op.get(*key).and_then(|v| v.as_str()))
        .map(|id| format!(" {}", config.label(id).unwrap_or(id)));
    format!("{name}{}", target.unwrap_or_default())
}

/// What changed between an audit record's before and after, property by property
/// (`desired.attributes.jobTitle: "Engineer" -> "Lead"`, `applied.groups: +All Staff, -Sales`),
/// groups and licences by their configured names.
fn changes(
    config: &Config,
    path: &str,
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    let absent = |v: Option<&Value>| v.is_none_or(Value::is_null);
    if before == after || (absent(before) && absent(after)) {
        return;
    }
    let object = |v: Option<&Value>| v.and_then(Value::as_object).cloned();
    let strings = |v: Option<&Value>| -> Option<BTreeSet<String>> {
        match v {
            None | Some(Value::Null) => Some(BTreeSet::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect(),
            _ => None,
        }
    };
    let (b, a) = (object(before), object(after));
    if (b.is_some() || absent(before))
        && (a.is_some() || absent(after))
        && (b.is_some() || a.is_some())
    {
        let (b, a) = (b.unwrap_or_default(), a.unwrap_or_default());
        let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
        for key in keys {
            let path = match path.is_empty() {
                true => key.clone(),
                false => format!("{path}.{key}"),
            };
            changes(config, &path, b.get(key), a.get(key), out);
        }
        return;
    }
    let name = |id: &str| config.label(id).unwrap_or(id).to_owned();
    if let (Some(b), Some(a)) = (strings(before), strings(after)) {
        let added = a.difference(&b).map(|id| format!("+{}", name(id)));
        let removed = b.difference(&a).map(|id| format!("-{}", name(id)));
        let moves: Vec<String> = added.chain(removed).collect();
        if !moves.is_empty() {
            out.push(format!("{path}: {}", moves.join(", ")));
        }
        return;
    }
    let show = |v: Option<&Value>| match v {
        None | Some(Value::Null) => "(none)".to_owned(),
        Some(value) => value.to_string(),
    };
    out.push(format!("{path}: {} -> {}", show(before), show(after)));
}

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return
/// first: OWASP's "CSV Injection") gets a leading `'`, so HR data stays text.
fn inert(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        true => format!("'{cell}").into(),
        false => cell.into(),
    }
}

/// The records as CSV, a header first; `before` and `after` as JSON text.
fn print_audit_csv(views: &[AuditView]) -> anyhow::Result<usize> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "worker", "at", "stage", "action", "cause", "before", "after", "trace",
    ])?;
    let json = |value: &Option<serde_json::Value>| {
        value.as_ref().map(|v| v.to_string()).unwrap_or_default()
    };
    for view in views {
        let row = [
            view.worker.clone(),
            view.at.to_string(),
            view.stage.clone(),
            view.action.clone(),
            view.cause.clone(),
            json(&view.before),
            json(&view.after),
            view.trace.clone().unwrap_or_default(),
        ];
        writer.write_record(row.iter().map(|cell| inert(cell).into_owned()))?;
    }
    let bytes = writer.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    out!("{}", String::from_utf8_lossy(&bytes));
    Ok(0)
}

pub fn timers(args: TimersArgs) -> anyhow::Result<usize> {
    block_on(async {
        let runtime = Runtime::open(&args.config).await?;
        let key = args
            .worker
            .as_deref()
            .map(|w| worker_key(runtime.config(), w))
            .transpose()?;
        let now = args.now.unwrap_or_else(Timestamp::now);
        let views = with_operations!(&runtime, ops => {
            let timers = ops.timers(key.as_ref(), args.limit).await?;
            timer_views(&ops, &timers, now).await?
        });
        print_list(args.format, &views, "no timers", print_timers)
    })
}

/// `hrsync holds ...`.
pub fn run_holds(args: HoldsArgs) -> anyhow::Result<usize> {
    match args.command {
        HoldsCommand::List(args) => holds_list(args),
        HoldsCommand::Approve(args) => holds_approve(args),
        HoldsCommand::Reject(args) => holds_reject(args),
    }
}

fn holds_list(args: HoldsListArgs) -> anyhow::Result<usize> {
    let status = match args.status {
        HoldFilter::Pending => Some(HoldStatus::Pending),
        HoldFilter::Approved => Some(HoldStatus::Approved),
        HoldFilter::Rejected => Some(HoldStatus::Rejected),
        HoldFilter::All => None,
    };
    block_on(async {
        let runtime = Runtime::open(&args.config).await?;
        let holds = with_operations!(&runtime, ops => ops.store.holds(status).await?);
        let views: Vec<HoldView> = holds.iter().map(HoldView::from).collect();
        print_list(args.format, &views, "no holds", print_holds)
    })
}

/// `hrsync dlq ...`.
pub fn run_dlq(args: DlqArgs) -> anyhow::Result<usize> {
    match args.command {
        DlqCommand::List(args) => dlq_list(args),
        DlqCommand::Redrive(args) => dlq_redrive(args),
    }
}

fn dlq_list(args: DlqListArgs) -> anyhow::Result<usize> {
    block_on(async {
        let runtime = Runtime::open(&args.config).await?;
        let letters = with_operations!(&runtime, ops => ops.dead_letters(args.queue).await?);
        let views: Vec<DeadLetterView> = letters
            .iter()
            .map(|(queue, letter)| DeadLetterView::new(*queue, letter))
            .collect();
        print_list(args.format, &views, "no dead letters", |views| {
            let rows = views
                .iter()
                .map(|d| {
                    vec![
                        d.id.clone(),
                        d.queue.to_owned(),
                        d.worker.clone(),
                        d.attempts.to_string(),
                        d.at.to_string(),
                        d.reason.clone(),
                    ]
                })
                .collect();
            print_table(&["id", "queue", "worker", "attempts", "at", "reason"], rows);
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Acting commands

pub fn terminate(args: TerminateArgs) -> anyhow::Result<usize> {
    if !args.immediately && args.now != Some(None) {
        bail!(
            "say --immediately: only immediate termination exists (the account is disabled and its sessions revoked now); --now RFC3339 only sets the run's clock"
        );
    }
    let clock = clock_at(args.now.flatten().or(args.clock));
    block_on(async {
        let runtime = Runtime::open(&args.config).await?;
        let key = worker_key(runtime.config(), &args.worker)?;
        let now = clock.now();
        let outcome =
            with_operations!(&runtime, ops => ops.terminate(&key, &args.reason, now).await)
                .context("cannot take in the termination")?;
        let (queued, failed) = match runs_here(&runtime, &clock).await? {
            Some(running) => {
                let runner = &running.started.runner;
                runner.note(outcome);
                let report = drain(&running).await?;
                (false, failure(&report, &key))
            }
            None => (true, None),
        };
        let result = with_operations!(&runtime, ops => worker_result(&ops, &key, failed).await?);
        let view = TerminateView {
            at: now,
            reason: args.reason.clone(),
            queued,
            result,
        };
        let failures = usize::from(view.result.failed.is_some());
        if args.format == Format::Json {
            print_json(&view)?;
            return Ok(failures);
        }
        match queued {
            true => outln!(
                "{key}: termination queued at {now}; {} will disable the account",
                doer(&runtime)
            ),
            false => outln!("{key}: terminated at {now}: {}", describe(&view.result)),
        }
        Ok(failures)
    })
}

fn holds_approve(args: HoldsApproveArgs) -> anyhow::Result<usize> {
    let clock = clock_at(args.clock);
    block_on(async {
        let runtime = Runtime::open(&args.config).await?;
        let (ids, all) = (&args.select.ids, args.select.all);
        let now = clock.now();
        let holds = with_operations!(&runtime, ops => {
            let holds = ops.holds_to_resolve(ids, all, HoldStatus::Approved).await?;
            for hold in &holds {
                // Mapping decides again and, finding the hold approved, lets the operation
                // through.
                ops.approve(hold, now).await?;
            }
            holds
        });
        let workers: Vec<WorkerKey> = holds.iter().map(|h| h.worker.clone()).collect();
        let (queued, report) = run_queued_work(&runtime, &clock, !holds.is_empty()).await?;
        let mut view = ResolvedView {
            queued,
            holds: Vec::new(),
        };
        for hold in &holds {
            let failed = report.as_ref().and_then(|r| failure(r, &hold.worker));
            let result =
                with_operations!(&runtime, ops => worker_result(&ops, &hold.worker, failed).await?);
            view.holds.push(ResolvedHold {
                id: hold.id.clone(),
                status: HoldStatus::Approved.as_str(),
                result,
            });
        }
        let failures = count_failed(&workers, report.as_ref());
        if args.format == Format::Json {
            print_json(&view)?;
            return Ok(failures);
        }
        if view.holds.is_empty() {
            outln!("no pending holds");
        }
        for hold in &view.holds {
            match queued {
                true => outln!("approved {}; {} will carry it out", hold.id, doer(&runtime)),
                false => outln!("approved {}: {}", hold.id, describe(&hold.result)),
            }
        }
        Ok(failures)
    })
}

fn holds_reject(args: HoldsRejectArgs) -> anyhow::Result<usize> {
    let clock = clock_at(args.clock);
    block_on(async {
        let runtime = Runtime::open(&args.config).await?;
        let (ids, all) = (&args.select.ids, args.select.all);
        let now = clock.now();
        let why = args.reason.as_deref().unwrap_or("no reason given");
        let mut view = ResolvedView {
            queued: false,
            holds: Vec::new(),
        };
        with_operations!(&runtime, ops => {
            let holds = ops.holds_to_resolve(ids, all, HoldStatus::Rejected).await?;
            for hold in &holds {
                ops.reject(hold, why, now).await?;
                let result = worker_result(&ops, &hold.worker, None).await?;
                view.holds.push(ResolvedHold {
                    id: hold.id.clone(),
                    status: HoldStatus::Rejected.as_str(),
                    result,
                });
            }
        });
        if args.format == Format::Json {
            print_json(&view)?;
            return Ok(0);
        }
        if view.holds.is_empty() {
            outln!("no pending holds");
        }
        for hold in &view.holds {
            outln!("rejected {}: {}", hold.id, describe(&hold.result));
        }
        Ok(0)
    })
}

fn dlq_redrive(args: DlqRedriveArgs) -> anyhow::Result<usize> {
    let clock = clock_at(args.clock);
    block_on(async {
        let runtime = Runtime::open(&args.config).await?;
        let letters = with_operations!(&runtime, ops => ops.dead_letters(args.queue).await?);
        let chosen: Vec<(QueueName, DeadLetter)> = match args.select.all {
            true => letters,
            false => {
                let unknown: Vec<&str> = args
                    .select
                    .ids
                    .iter()
                    .filter(|id| !letters.iter().any(|(_, l)| &l.id == *id))
                    .map(String::as_str)
                    .collect();
                if !unknown.is_empty() {
                    bail!(
                        "no dead letter with id {} (see `hrsync dlq list`)",
                        unknown.join(", ")
                    );
                }
                letters
                    .into_iter()
                    .filter(|(_, l)| args.select.ids.contains(&l.id))
                    .collect()
            }
        };
        let now = clock.now();
        let running = match chosen.is_empty() {
            true => None,
            false => runs_here(&runtime, &clock).await?,
        };
        // A stage after mapping converges to the stored decision. When the fix was in the
        // config (or time moved on), mapping decides again first, and only then do the dead
        // letters go back, so they carry out the new decision instead of failing on the old
        // one again. (A fetch, before mapping, just goes back.)
        let redecided =
            with_operations!(&runtime, ops => ops.decide_again_before_redrive(&chosen, now).await?);
        if !redecided.is_empty() {
            match &running {
                Some(running) => {
                    drain(running).await?;
                }
                None => {
                    with_operations!(&runtime, ops => wait_for_empty(&ops, QueueName::WorkerEvents).await?)
                }
            }
        }
        with_operations!(&runtime, ops => ops.redrive(&chosen, now).await?);
        let workers: Vec<WorkerKey> = chosen.iter().map(|(_, l)| l.nudge.worker.clone()).collect();
        let (queued, report) = match &running {
            Some(running) => (false, Some(drain(running).await?)),
            None => (!chosen.is_empty(), None),
        };
        let mut view = RedriveView {
            queued,
            redriven: Vec::new(),
        };
        for (queue, letter) in &chosen {
            let worker = &letter.nudge.worker;
            let failed = report.as_ref().and_then(|r| failure(r, worker));
            let result =
                with_operations!(&runtime, ops => worker_result(&ops, worker, failed).await?);
            view.redriven.push(Redriven {
                id: letter.id.clone(),
                queue: queue.as_str(),
                result,
            });
        }
        let failures = count_failed(&workers, report.as_ref());
        if args.format == Format::Json {
            print_json(&view)?;
            return Ok(failures);
        }
        if view.redriven.is_empty() {
            outln!("no dead letters");
        }
        for item in &view.redriven {
            match queued {
                true => outln!(
                    "redrove {} ({}); {} will handle it",
                    item.id,
                    item.queue,
                    doer(&runtime)
                ),
                false => outln!(
                    "redrove {} ({}): {}",
                    item.id,
                    item.queue,
                    describe(&item.result)
                ),
            }
        }
        Ok(failures)
    })
}

/// Who does the work an acting command queued when this process does not.
fn doer(runtime: &Runtime) -> String {
    match runtime {
        Runtime::Local(_) => "the running hrsync serve (which holds the lock)".to_owned(),
        Runtime::Aws(aws) => format!("the functions of {}", aws.described),
    }
}

/// This process's runtime, when it runs the queued work itself: a local runtime whose lock
/// is free. `None`: a running `hrsync serve`, or the stack's functions, do it.
async fn runs_here(runtime: &Runtime, clock: &Arc<dyn Clock>) -> anyhow::Result<Option<Running>> {
    match runtime {
        Runtime::Local(local) => start_if_free(local, clock).await,
        Runtime::Aws(_) => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn block_on<T>(work: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(work)
}

fn clock_at(at: Option<Timestamp>) -> Arc<dyn Clock> {
    match at {
        Some(start) => Arc::new(ShiftedClock::starting_at(start)),
        None => Arc::new(SystemClock),
    }
}

/// `source:employee_id`, or a bare employee id when the config has exactly one source.
fn worker_key(config: &Config, text: &str) -> anyhow::Result<WorkerKey> {
    if let Ok(key) = text.parse::<WorkerKey>() {
        return Ok(key);
    }
    let sources: Vec<&String> = config.sources.keys().collect();
    match sources.as_slice() {
        [only] => Ok(WorkerKey::new(only.as_str(), text)),
        [] => bail!("the config has no [source.<name>], so {text:?} names no worker"),
        several => bail!(
            "{text:?} is not a worker key: the config has several sources ({}), so write source:employee_id",
            several
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The zone the worker's dates are read in.
async fn timer_views<S: StateStore, Q: Queue, T: Timers>(
    ops: &Operations<'_, S, Q, T>,
    timers: &[TimerSpec],
    now: Timestamp,
) -> anyhow::Result<Vec<TimerView>> {
    let mut zones: std::collections::BTreeMap<WorkerKey, String> =
        std::collections::BTreeMap::new();
    let mut views = Vec::with_capacity(timers.len());
    for timer in timers {
        let zone = match zones.get(&timer.worker) {
            Some(zone) => zone.clone(),
            None => {
                let zone = ops.worker_zone(&timer.worker).await?;
                zones.insert(timer.worker.clone(), zone.clone());
                zone
            }
        };
        let tz = TimeZone::get(&zone).unwrap_or(TimeZone::UTC);
        views.push(TimerView {
            name: timer.name.clone(),
            worker: timer.worker.to_string(),
            kind: timer_kind_str(timer.kind),
            at: timer.at,
            local: timer.at.to_zoned_datetime(tz).to_string(),
            time_zone: zone,
            overdue: timer.at < now,
            due: match timer.at < now {
                true => format!("OVERDUE by {}", span(timer.at.duration_since(now).abs())),
                false => format!("in {}", span(timer.at.duration_since(now))),
            },
        });
    }
    Ok(views)
}

/// The runtime of this process, with its lock.
struct Running {
    started: Started,
    _lock: RuntimeLock,
}

/// Starts the runtime when no other process (`hrsync serve`) holds the lock; `None` when one
/// does: that process does the queued work instead.
async fn start_if_free(local: &Local, clock: &Arc<dyn Clock>) -> anyhow::Result<Option<Running>> {
    let Some(lock) = local.try_lock()? else {
        return Ok(None);
    };
    let started = local.start(&lock, Arc::clone(clock)).await?;
    Ok(Some(Running {
        started,
        _lock: lock,
    }))
}

/// Waits until another runtime (`hrsync serve`, the stack's functions) has emptied `queue`.
async fn wait_for_empty<S: StateStore, Q: Queue, T: Timers>(
    ops: &Operations<'_, S, Q, T>,
    queue: QueueName,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    loop {
        let depth = ops.queue.depth(queue).await?;
        if depth.visible + depth.in_flight == 0 {
            return Ok(());
        }
        if started.elapsed() > WAIT_FOR_THE_RUNTIME {
            bail!(
                "the {queue} queue still holds {} message(s) after {} s: is the pipeline running?",
                depth.visible + depth.in_flight,
                WAIT_FOR_THE_RUNTIME.as_secs()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// How long an acting command waits for another runtime to take up what it queued.
const WAIT_FOR_THE_RUNTIME: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs everything queued (and timers due) until the queues are empty.
async fn drain(running: &Running) -> anyhow::Result<Report> {
    let runner = &running.started.runner;
    runner.drain().await.map_err(crate::import::stopped)?;
    Ok(runner.report())
}

/// Runs the queued work here when the lock is free. Returns whether it was left to another
/// runtime, and this run's report.
async fn run_queued_work(
    runtime: &Runtime,
    clock: &Arc<dyn Clock>,
    anything: bool,
) -> anyhow::Result<(bool, Option<Report>)> {
    if !anything {
        return Ok((false, None));
    }
    match runs_here(runtime, clock).await? {
        Some(running) => Ok((false, Some(drain(&running).await?))),
        None => Ok((true, None)),
    }
}

fn failure(report: &Report, key: &WorkerKey) -> Option<String> {
    report.workers.get(key).and_then(|w| w.failed.clone())
}

/// Workers among `workers` whose work was dead-lettered during this run.
fn count_failed(workers: &[WorkerKey], report: Option<&Report>) -> usize {
    let mut failed: Vec<&WorkerKey> = workers
        .iter()
        .filter(|w| report.is_some_and(|r| failure(r, w).is_some()))
        .collect();
    failed.sort();
    failed.dedup();
    failed.len()
}

async fn worker_result<S: StateStore, Q: Queue, T: Timers>(
    ops: &Operations<'_, S, Q, T>,
    key: &WorkerKey,
    failed: Option<String>,
) -> anyhow::Result<WorkerResult> {
    let state = ops.store.load(key).await?.map(|stored| stored.state);
    Ok(WorkerResult {
        worker: key.to_string(),
        lifecycle: state
            .as_ref()
            .and_then(|s| s.lifecycle)
            .map(Lifecycle::as_str),
        disabled: state
            .as_ref()
            .and_then(|s| s.applied.as_ref())
            .map(|a| !a.enabled),
        failed,
    })
}

fn describe(result: &WorkerResult) -> String {
    let account = match result.disabled {
        Some(true) => "account disabled",
        Some(false) => "account enabled",
        None => "no account",
    };
    let mut text = format!(
        "{} ({}), {account}",
        result.worker,
        result.lifecycle.unwrap_or("undecided")
    );
    if let Some(reason) = &result.failed {
        text.push_str(&format!("; FAILED: {reason} (see `hrsync dlq list`)"));
    }
    text
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<usize> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(0)
}

/// A list command's output: JSON, `none` when empty, or the table `print` draws.
fn print_list<T: Serialize>(
    format: Format,
    views: &[T],
    none: &str,
    print: impl FnOnce(&[T]),
) -> anyhow::Result<usize> {
    match (format, views.is_empty()) {
        (Format::Json, _) => print_json(&views),
        (Format::Table, true) => {
            outln!("{none}");
            Ok(0)
        }
        (Format::Table, false) => {
            print(views);
            Ok(0)
        }
    }
}

fn print_holds(holds: &[HoldView]) {
    let rows = holds
        .iter()
        .map(|h| {
            vec![
                h.id.clone(),
                h.worker.clone(),
                h.action.clone(),
                h.status.to_owned(),
                h.created_at.to_string(),
                h.reason.clone(),
            ]
        })
        .collect();
    print_table(
        &["id", "worker", "action", "status", "created at", "reason"],
        rows,
    );
}

fn print_timers(timers: &[TimerView]) {
    let rows = timers
        .iter()
        .map(|t| {
            let local =
                t.at.to_zoned_datetime(TimeZone::get(&t.time_zone).unwrap_or(TimeZone::UTC));
            vec![
                t.at.strftime("%Y-%m-%d %H:%M UTC").to_string(),
                t.due.clone(),
                t.worker.clone(),
                t.kind.to_owned(),
                format!("{} {}", local.strftime("%Y-%m-%d %H:%M"), t.time_zone),
            ]
        })
        .collect();
    print_table(&["at", "due", "worker", "kind", "local time"], rows);
}

/// A duration as days, hours and minutes, the two largest parts (`13d 17h`, `18h`, `5m`).
fn span(duration: jiff::SignedDuration) -> String {
    let minutes = duration.as_secs().max(0) / 60;
    let (days, hours, minutes) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours) {
        (0, 0) => format!("{minutes}m"),
        (0, _) if minutes == 0 => format!("{hours}h"),
        (0, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

/// Columns padded to their widest cell; the last column is not padded.
fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let padded: Vec<String> = cells
            .into_iter()
            .enumerate()
            .map(|(i, cell)| match i == last {
                true => cell,
                false => format!("{cell:<width$}", width = widths[i]),
            })
            .collect();
        outln!("  {}", padded.join("  "));
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row);
    }
}

#[cfg(test)]
mod tests {
    use super::inert;

    /// OWASP's CSV injection: a cell a spreadsheet would evaluate stays text.
    #[test]
    fn cells_a_spreadsheet_would_run_are_made_text() {
        for formula in ["=HYPERLINK(\"x\")", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(inert(formula), format!("'{formula}"));
        }
        for text in ["hr:1003", "import workers.csv", "{\"upn\":1}", ""] {
            assert_eq!(inert(text), text);
        }
    }
}
