//! What a long-running pipeline has done, for a Prometheus scrape of `hrsync serve`'s
//! `GET /metrics`: counters of deliveries, decisions, directory operations, write-backs and
//! failures since the process started, and gauges read at the scrape (queue depths, how late
//! the earliest due timer is). Counts only: no worker, name or value.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::ports::{Queue, QueueError, QueueName, StateStore, Timers};
use crate::runner::Runner;
use crate::stages::Outcome;

/// Counters since the process started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Records taken in, by outcome: `received`, `queued` (a fetch to come), `duplicate`, `stale`.
    pub deliveries: BTreeMap<&'static str, u64>,
    /// Mapping's decisions, by transition.
    pub decisions: BTreeMap<&'static str, u64>,
    /// Disables the breaker held.
    pub held: u64,
    /// Confirmed directory operations.
    pub directory_operations: u64,
    pub written_back: u64,
    /// Stage failures given another attempt, by queue.
    pub retried: BTreeMap<&'static str, u64>,
    /// Stage failures dead-lettered, by queue.
    pub dead_lettered: BTreeMap<&'static str, u64>,
    /// Messages and deliveries handled, whatever came of them (a progress bar's position).
    pub handled: u64,
}

impl Counters {
    pub fn observe(&mut self, outcome: &Outcome) {
        self.handled += 1;
        let delivery =
            |counters: &mut Self, kind| *counters.deliveries.entry(kind).or_default() += 1;
        match outcome {
            Outcome::Received { .. } => delivery(self, "received"),
            Outcome::Queued { .. } => delivery(self, "queued"),
            Outcome::Duplicate { .. } => delivery(self, "duplicate"),
            Outcome::Stale { .. } => delivery(self, "stale"),
            Outcome::Mapped { transition, .. } => {
                *self.decisions.entry(transition.as_str()).or_default() += 1;
            }
            Outcome::Held { .. } => self.held += 1,
            Outcome::Converged { steps, .. } => self.directory_operations += steps.len() as u64,
            Outcome::WrittenBack { .. } => self.written_back += 1,
            Outcome::Nothing { .. } => {}
        }
    }

    /// A stage failed on `queue`: retried, or dead-lettered.
    pub fn failed(&mut self, queue: QueueName, dead_lettered: bool) {
        self.handled += 1;
        let counts = match dead_lettered {
            true => &mut self.dead_lettered,
            false => &mut self.retried,
        };
        *counts.entry(queue.as_str()).or_default() += 1;
    }
}

/// The Prometheus text exposition (version 0.0.4) of `runner`'s counters, its queues' depths
/// and its timer lag, read now.
pub async fn render<S, Q, T>(runner: &Runner<S, Q, T>) -> Result<String, QueueError>
where
    S: StateStore + 'static,
    Q: Queue + 'static,
    T: Timers + 'static,
{
    let counters = runner.counters();
    let pipeline = runner.pipeline();
    let mut text = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, u64)>| {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(text, "{name}{labels} {value}");
        }
    };
    let labelled = |label: &str, counts: &BTreeMap<&'static str, u64>| -> Vec<(String, u64)> {
        counts
            .iter()
            .map(|(value, count)| (format!("{{{label}=\"{value}\"}}"), *count))
            .collect()
    };
    let queues = |counts: &BTreeMap<&'static str, u64>| -> Vec<(String, u64)> {
        QueueName::ALL
            .iter()
            .map(|q| {
                let count = counts.get(q.as_str()).copied().unwrap_or(0);
                (format!("{{queue=\"{}\"}}", q.as_str()), count)
            })
            .collect()
    };
    family(
        "hrsync_deliveries_total",
        "counter",
        "HR records taken in, by outcome.",
        labelled("outcome", &counters.deliveries),
    );
    family(
        "hrsync_decisions_total",
        "counter",
        "Mapping decisions, by transition.",
        labelled("transition", &counters.decisions),
    );
    family(
        "hrsync_held_total",
        "counter",
        "Disables the safety breaker held for approval.",
        vec![(String::new(), counters.held)],
    );
    family(
        "hrsync_directory_operations_total",
        "counter",
        "Confirmed directory operations.",
        vec![(String::new(), counters.directory_operations)],
    );
    family(
        "hrsync_written_back_total",
        "counter",
        "Identifiers written back to HR.",
        vec![(String::new(), counters.written_back)],
    );
    family(
        "hrsync_stage_retries_total",
        "counter",
        "Stage failures given another attempt, by queue.",
        queues(&counters.retried),
    );
    family(
        "hrsync_dead_letters_total",
        "counter",
        "Stage failures dead-lettered, by queue.",
        queues(&counters.dead_lettered),
    );
    let mut depths = Vec::new();
    for queue in QueueName::ALL {
        let depth = pipeline.queue.depth(queue).await?;
        for (state, count) in [
            ("visible", depth.visible),
            ("in_flight", depth.in_flight),
            ("dead", depth.dead),
        ] {
            let labels = format!("{{queue=\"{}\",state=\"{state}\"}}", queue.as_str());
            depths.push((labels, count));
        }
    }
    family(
        "hrsync_queue_messages",
        "gauge",
        "Messages per queue: visible, in flight, dead-lettered.",
        depths,
    );
    let now = pipeline.clock.now();
    let lag = pipeline
        .timers
        .next(1)
        .await?
        .first()
        .map_or(0, |timer| now.duration_since(timer.at).as_secs().max(0));
    family(
        "hrsync_timer_lag_seconds",
        "gauge",
        "How long the earliest timer is past due (0: none is).",
        vec![(String::new(), lag as u64)],
    );
    Ok(text)
}
