//! `hrsync import --config FILE EXPORT.csv [--now RFC3339]`: feed an HR export through the
//! pipeline (intake -> mapping -> entra -> writeback) on the local runtime and wait until all
//! the work it caused has drained; timers due by then fire too.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hrsync_core::WorkerKey;
use hrsync_local::SqliteQueue;
use hrsync_pipeline::ports::{Queue, QueueDepth, QueueName, StateStore, Timers};
use hrsync_pipeline::stages::intake::{Incoming, take_in};
use hrsync_pipeline::synthetic::{ABSENT_FROM_EXPORT, leaving_now};
use hrsync_pipeline::{Clock, DrainError, Outcome, Report, ShiftedClock, Summary, SystemClock};
use jiff::Timestamp;
use serde::Serialize;

use crate::Format;
use crate::output::outln;
use crate::plan::pick_source;
use crate::runtime::{Local, LocalRunner, Work};

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The hrsync.toml to use.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The HR export (CSV).
    #[arg(value_name = "EXPORT.csv")]
    export: PathBuf,
    /// Start the run's clock at this instant (RFC 3339): timers due by then fire during the run.
    #[arg(long, value_name = "RFC3339")]
    now: Option<Timestamp>,
    /// The `[source.<name>]` the export belongs to; needed only when the config has several CSV sources.
    #[arg(long, value_name = "NAME")]
    source: Option<String>,
    /// Unreadable rows the run may skip and still succeed (for exports known to carry junk);
    /// they are still listed. More than this, and every one counts as failed.
    #[arg(long, value_name = "N", default_value_t = 0)]
    max_row_errors: usize,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// The summary; its keys are a contract for scripts.
#[derive(Debug, Serialize)]
struct ImportSummary {
    export: String,
    now: Timestamp,
    rows: usize,
    counts: Summary,
    /// Workers whose records were already taken in (the same export again).
    duplicates: usize,
    /// Workers a complete export no longer lists, now leaving.
    absent: Vec<String>,
    held: Vec<Problem>,
    failed: Vec<Problem>,
    /// Workers waiting for something (a manager's account).
    deferred: Vec<Problem>,
    /// Rows that could not be read.
    row_errors: Vec<hrsync_hr::csv::RowError>,
    /// Unreadable rows skipped within `--max-row-errors` (not counted as failed).
    rows_skipped: usize,
    /// Licences without a free unit, by SKU: the workers waiting for one (each is tried again
    /// later; everything else about them is applied).
    pending_licenses: Vec<PendingLicenses>,
    /// Why absences were not read as leavers, if they were not.
    #[serde(skip_serializing_if = "Option::is_none")]
    absences_ignored: Option<String>,
}

#[derive(Debug, Serialize)]
struct Problem {
    worker: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct PendingLicenses {
    sku: String,
    /// e.g. `SPE_E3`, when the directory listed it.
    part_number: Option<String>,
    /// Its name in the config's `[labels]`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    /// How many workers wait for a unit.
    workers: usize,
    /// Graph's reason (or what `subscribedSkus` showed) for the first of them.
    reason: String,
    /// The workers, by key.
    waiting: Vec<String>,
}

/// Why the pipeline stopped: an outage says it all (the service, the cause, what is kept).
pub fn stopped(error: DrainError) -> anyhow::Error {
    match error {
        DrainError::Outage { .. } => error.into(),
        DrainError::Queue(_) => anyhow::Error::new(error).context("the pipeline stopped"),
    }
}

/// How an import ended, for the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// Workers or rows that failed.
    pub failed: usize,
    /// Workers with everything applied but a licence waiting for a free unit.
    pub waiting_for_licenses: usize,
}

pub fn run(args: ImportArgs) -> anyhow::Result<Ended> {
    let local = Local::open(&args.config)?;
    let (source_name, source) = pick_source(&local.config, args.source.as_deref())?;
    let clock: Arc<dyn Clock> = match args.now {
        Some(start) => Arc::new(ShiftedClock::starting_at(start)),
        None => Arc::new(SystemClock),
    };
    let now = clock.now();
    let data = std::fs::read(&args.export)
        .with_context(|| format!("cannot read the export {}", args.export.display()))?;
    let export = hrsync_hr::csv::read_export(source_name, source, &data, now)
        .with_context(|| format!("cannot read the export {}", args.export.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let lock = local.try_lock()?;
        let started = match &lock {
            Some(lock) => Some(local.start_as(lock, Arc::clone(&clock), Work::Bulk).await?),
            None => {
                eprintln!(
                    "hrsync serve is running on {}: handing the export to it",
                    local.state_path.display()
                );
                None
            }
        };
        let progress = Progress::new(export.workers.len(), args.format == Format::Table);
        // Unique per run: the audit records this run causes carry it (the summary of a
        // handed-off run is read back from them).
        let run = format!("import@{}", Timestamp::now().as_nanosecond());
        let cause = format!("import {}", file_name(&args.export));
        let mut outcomes = Vec::new();
        for worker in &export.workers {
            let delivery = format!("import:{}:{}", worker.key, content_id(worker));
            let trace = format!("{run}:{}", worker.key);
            let incoming = Incoming {
                snapshot: worker,
                delivery: &delivery,
                cause: &cause,
                trace: &trace,
            };
            let outcome = take_in(&*local.store, &*local.queue, clock.now(), incoming)
                .await
                .with_context(|| format!("cannot take in {}", worker.key))?;
            outcomes.push(outcome);
            progress.intake();
        }
        let (absent, absences_ignored) = match source.complete {
            true => {
                leavers_by_absence(
                    &local,
                    &*clock,
                    source_name,
                    &export,
                    &cause,
                    &run,
                    &mut outcomes,
                )
                .await?
            }
            false => (Vec::new(), None),
        };
        let duplicates = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Duplicate { .. }))
            .count();
        progress.draining();
        let report = match &started {
            Some(started) => {
                let runner = &started.runner;
                for outcome in outcomes {
                    runner.note(outcome);
                }
                let watcher = progress.watch(&local.queue, Some(Arc::clone(runner)));
                let drained = runner.drain().await;
                watcher.abort();
                progress.finish();
                drained.map_err(stopped)?;
                runner.report()
            }
            None => {
                let watcher = progress.watch(&local.queue, None);
                wait_until_drained(&local).await?;
                watcher.abort();
                progress.finish();
                report_from_audit(&local, &outcomes, &run).await?
            }
        };
        let mut summary = summarize(
            &report,
            &export,
            args.export.display().to_string(),
            clock.now(),
            duplicates,
            absent,
            absences_ignored,
        );
        summary.count_row_errors(args.max_row_errors);
        for pending in &mut summary.pending_licenses {
            pending.label = local.config.label(&pending.sku).map(str::to_owned);
        }
        if let Some(started) = &started {
            for pending in &mut summary.pending_licenses {
                if pending.part_number.is_none() {
                    let graph = &started.connection.graph;
                    pending.part_number = graph.license_part_number(&pending.sku).await;
                }
            }
        }
        print(&summary, args.format)?;
        Ok(Ended {
            failed: summary.counts.failed,
            waiting_for_licenses: summary.counts.pending_licenses,
        })
    })
}

/// Waits until the running `hrsync serve` has handled everything queued.
/// Waits for `hrsync serve` to finish the handed-off work; gives up when serve has touched
/// none of it for [`SERVE_STALLED`] (a service it needs is down: it keeps the work and says so
/// in its own log).
async fn wait_until_drained(local: &Local) -> anyhow::Result<()> {
    let mut last: Option<(Vec<hrsync_pipeline::ports::QueueDepth>, std::time::Instant)> = None;
    loop {
        let mut depths = Vec::new();
        for queue in QueueName::ALL {
            depths.push(local.queue.depth(queue).await?);
        }
        let waiting: u64 = depths.iter().map(|d| d.visible + d.in_flight).sum();
        if waiting == 0 {
            return Ok(());
        }
        let in_flight = depths.iter().any(|d| d.in_flight > 0);
        match &last {
            Some((before, since)) if *before == depths && !in_flight => {
                if since.elapsed() >= SERVE_STALLED {
                    anyhow::bail!(
                        "hrsync serve has done none of the {waiting} queued message(s) for {} s: \
                         a service it needs is probably down (its log says which); the work stays \
                         queued and serve goes on with it once it is back",
                        SERVE_STALLED.as_secs()
                    );
                }
            }
            _ => last = Some((depths, std::time::Instant::now())),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How long a handed-off import waits for serve to make any progress.
const SERVE_STALLED: Duration = Duration::from_secs(180);

/// What the run did, read back from the audit records that carry its trace.
async fn report_from_audit(
    local: &Local,
    outcomes: &[Outcome],
    run: &str,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    for outcome in outcomes {
        let worker = match outcome {
            Outcome::Received { worker }
            | Outcome::Duplicate { worker }
            | Outcome::Stale { worker } => worker,
            _ => continue,
        };
        report.workers.entry(worker.clone()).or_default();
        for record in local.store.audit(worker).await? {
            if record
                .trace
                .as_deref()
                .is_some_and(|trace| trace.starts_with(run))
            {
                report.record_audit(&record);
            }
        }
        report.workers.entry(worker.clone()).or_default().timers =
            local.timers.worker_timers(worker).await?.len();
    }
    Ok(report)
}

/// Workers of this source hrsync knows that a complete export no longer lists leave now,
/// unless the export cannot be trusted to be complete (empty, or rows it could not read).
#[allow(clippy::too_many_arguments)]
async fn leavers_by_absence(
    local: &Local,
    clock: &dyn Clock,
    source_name: &str,
    export: &hrsync_hr::csv::CsvExport,
    cause: &str,
    run: &str,
    outcomes: &mut Vec<Outcome>,
) -> anyhow::Result<(Vec<String>, Option<String>)> {
    if export.workers.is_empty() {
        return Ok((
            Vec::new(),
            Some("the export lists nobody: never read as \"everyone left\"".into()),
        ));
    }
    if !export.errors.is_empty() {
        return Ok((
            Vec::new(),
            Some(format!(
                "{} row(s) could not be read, so the export may be incomplete",
                export.errors.len()
            )),
        ));
    }
    let listed: BTreeSet<&WorkerKey> = export.workers.iter().map(|w| &w.key).collect();
    let mut absent = Vec::new();
    for key in local.store.workers().await? {
        if key.source() != source_name || listed.contains(&key) {
            continue;
        }
        let Some(stored) = local.store.load(&key).await? else {
            continue;
        };
        if stored.state.lifecycle.is_none_or(|l| l.has_left()) {
            continue;
        }
        let Some(latest) = local.latest_record(&key).await? else {
            continue;
        };
        let now = clock.now();
        let leaving = leaving_now(
            &latest,
            now,
            &local.config.lifecycle.default_time_zone.0,
            ABSENT_FROM_EXPORT,
        );
        let delivery = format!("absent:{key}:{}", latest.as_of);
        let cause = format!("{cause}: no longer listed in a complete export");
        let trace = format!("{run}:{key}");
        let incoming = Incoming {
            snapshot: &leaving,
            delivery: &delivery,
            cause: &cause,
            trace: &trace,
        };
        let outcome = take_in(&*local.store, &*local.queue, now, incoming)
            .await
            .with_context(|| format!("cannot take in the absence of {key}"))?;
        outcomes.push(outcome);
        absent.push(key.to_string());
    }
    Ok((absent, None))
}

impl ImportSummary {
    /// `counts.failed`: the workers that failed and, beyond the `allowed` few, the unreadable
    /// rows. The table, the JSON and the exit status all show this one number.
    fn count_row_errors(&mut self, allowed: usize) {
        let rows = self.row_errors.len();
        let (skipped, failed_rows) = match rows <= allowed {
            true => (rows, 0),
            false => (0, rows),
        };
        self.rows_skipped = skipped;
        self.counts.failed = self.failed.len() + failed_rows;
    }
}

fn summarize(
    report: &Report,
    export: &hrsync_hr::csv::CsvExport,
    export_name: String,
    now: Timestamp,
    duplicates: usize,
    absent: Vec<String>,
    absences_ignored: Option<String>,
) -> ImportSummary {
    let mut held = Vec::new();
    let mut failed = Vec::new();
    let mut deferred = Vec::new();
    let mut pending_licenses: Vec<PendingLicenses> = Vec::new();
    for (worker, entry) in &report.workers {
        if let Some(hold) = &entry.held {
            held.push(Problem {
                worker: worker.to_string(),
                reason: format!(
                    "disable held by the breaker: approve with `hrsync holds approve {hold}`"
                ),
            });
        }
        if let Some(reason) = &entry.failed {
            failed.push(Problem {
                worker: worker.to_string(),
                reason: reason.clone(),
            });
        }
        if !entry.deferred.is_empty() {
            deferred.push(Problem {
                worker: worker.to_string(),
                reason: entry.deferred.join("; "),
            });
        }
        for license in &entry.pending_licenses {
            let by_sku = match pending_licenses
                .iter_mut()
                .find(|p: &&mut PendingLicenses| p.sku.eq_ignore_ascii_case(&license.sku))
            {
                Some(by_sku) => by_sku,
                None => {
                    pending_licenses.push(PendingLicenses {
                        sku: license.sku.clone(),
                        part_number: license.part_number.clone(),
                        label: None,
                        workers: 0,
                        reason: license.reason.clone(),
                        waiting: Vec::new(),
                    });
                    pending_licenses.last_mut().expect("just pushed")
                }
            };
            by_sku.workers += 1;
            by_sku.waiting.push(worker.to_string());
        }
    }
    ImportSummary {
        export: export_name,
        now,
        rows: export.workers.len() + export.errors.len(),
        counts: report.summary(),
        duplicates,
        absent,
        held,
        failed,
        deferred,
        row_errors: export.errors.clone(),
        rows_skipped: 0,
        absences_ignored,
        pending_licenses,
    }
}

fn print(summary: &ImportSummary, format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(summary)?);
        return Ok(());
    }
    let c = &summary.counts;
    outln!(
        "imported {} ({} rows) at {}",
        summary.export,
        summary.rows,
        summary.now
    );
    outln!(
        "  joiners {}  movers {}  leavers {}  rehires {}  unchanged {}  (duplicates {})",
        c.joiners,
        c.movers,
        c.leavers,
        c.rehires,
        c.unchanged,
        summary.duplicates
    );
    outln!(
        "  directory operations {}  timers set {}  held {}  failed {}",
        c.directory_operations,
        c.timers_set,
        c.held,
        c.failed
    );
    if summary.rows_skipped > 0 {
        outln!(
            "  skipped {} unreadable row(s), within --max-row-errors",
            summary.rows_skipped
        );
    }
    if !summary.absent.is_empty() {
        outln!(
            "  no longer listed (leaving now): {}",
            summary.absent.join(", ")
        );
    }
    if let Some(why) = &summary.absences_ignored {
        outln!("  workers missing from the export were not treated as leavers: {why}");
    }
    for p in &summary.held {
        outln!("  held     {}: {}", p.worker, p.reason);
    }
    for p in &summary.deferred {
        outln!("  waiting  {}: {}", p.worker, p.reason);
    }
    for p in &summary.pending_licenses {
        let name = match (&p.label, &p.part_number) {
            (Some(label), _) => format!("{label} ({})", p.sku),
            (None, Some(part)) => format!("{part} ({})", p.sku),
            (None, None) => p.sku.clone(),
        };
        outln!(
            "  LICENCES {} worker(s) wait for a free unit of {name}: {} (tried again later; buy or free units, `hrsync status` lists them)",
            p.workers,
            p.reason
        );
    }
    for p in &summary.failed {
        outln!("  FAILED   {}: {}", p.worker, p.reason);
    }
    let row_label = match summary.rows_skipped {
        0 => "FAILED  ",
        _ => "SKIPPED ",
    };
    for e in &summary.row_errors {
        outln!("  {row_label} {e}");
    }
    Ok(())
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Identifies a record's content regardless of when it was read, so importing the same
/// export again is recognised as a redelivery.
fn content_id(worker: &hrsync_core::Worker) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut value = serde_json::to_value(worker).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("as_of");
    }
    let mut hasher = DefaultHasher::new();
    value.to_string().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// A progress bar on a terminal; nothing otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(rows: usize, table: bool) -> Self {
        let bar = (table && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(rows as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message("taking in");
            bar
        });
        Self { bar }
    }

    fn intake(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn draining(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message("applying");
        }
    }

    /// While the pipeline drains: the messages handled out of those handled plus those still
    /// queued (from `runner`, when this process runs the pipeline), and the queues' depths.
    fn watch(
        &self,
        queue: &Arc<SqliteQueue>,
        runner: Option<Arc<LocalRunner>>,
    ) -> tokio::task::JoinHandle<()> {
        let bar = self.bar.clone();
        let queue = Arc::clone(queue);
        tokio::spawn(async move {
            let Some(bar) = bar else { return };
            let handled = || runner.as_ref().map_or(0, |r| r.counters().handled);
            let start = handled();
            if runner.is_some() {
                bar.set_position(0);
            }
            loop {
                let mut depths = Vec::new();
                for name in QueueName::ALL {
                    if let Ok(depth) = hrsync_pipeline::ports::Queue::depth(&*queue, name).await {
                        depths.push((name, depth));
                    }
                }
                let (done, length, message) = applying(handled().saturating_sub(start), &depths);
                if runner.is_some() {
                    bar.set_length(length);
                    bar.set_position(done);
                }
                bar.set_message(message);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The bar while the pipeline applies: the messages handled since it began (`done`) out of
/// those plus the ones still queued, and what each queue still holds.
fn applying(done: u64, depths: &[(QueueName, QueueDepth)]) -> (u64, u64, String) {
    let queued = |depth: &QueueDepth| depth.visible + depth.in_flight;
    let remaining: u64 = depths.iter().map(|(_, depth)| queued(depth)).sum();
    let parts: Vec<String> = depths
        .iter()
        .map(|(name, depth)| format!("{name} {}", queued(depth)))
        .collect();
    (
        done,
        done + remaining,
        format!("applying ({})", parts.join(", ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(visible: u64, in_flight: u64) -> QueueDepth {
        QueueDepth {
            visible,
            in_flight,
            dead: 0,
        }
    }

    /// The bar follows the applying phase instead of sitting full at the rows taken in: it
    /// counts the messages handled out of those plus the ones still queued.
    #[test]
    fn the_bar_tracks_the_applying_phase() {
        let (events, directory) = (QueueName::WorkerEvents, QueueName::Directory);
        let taken_in = [(events, depth(1990, 10)), (directory, depth(0, 0))];
        assert_eq!(
            applying(0, &taken_in),
            (0, 2000, format!("applying ({events} 2000, {directory} 0)"))
        );
        // Mapping done; the directory work it queued is still to do: not full.
        let (done, length, _) =
            applying(2000, &[(events, depth(0, 0)), (directory, depth(1968, 32))]);
        assert_eq!((done, length), (2000, 4000));
        let (done, length, message) =
            applying(4000, &[(events, depth(0, 0)), (directory, depth(0, 0))]);
        assert_eq!((done, length), (4000, 4000), "full once nothing is queued");
        assert_eq!(message, format!("applying ({events} 0, {directory} 0)"));
    }
}
