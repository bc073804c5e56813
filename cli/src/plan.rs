//! `hrsync plan`: decide every worker of an export against an empty (or saved) state and
//! print, per worker, the transition, the account it should have, its timers and why.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use anyhow::{Context, bail};
use hrsync_core::config::SourceKind;
use hrsync_core::{
    Config, DataProblem, Decision, NameRegistry, Op, Presence, WorkerKey, WorkerState,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use hrsync_directory::provision::{self, ApplyReport, ForeignNames};

use crate::output::{out, outln};
use crate::{Format, PlanArgs, directory};

/// The file `--save-state` writes and `--state` reads.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    /// The `--now` of the run that wrote it.
    now: Option<Timestamp>,
    workers: BTreeMap<WorkerKey, WorkerState>,
}

/// One worker's line of the plan; the keys are a contract for scripts.
#[derive(Debug, Serialize)]
struct PlannedWorker {
    worker: Option<String>,
    /// The export's row, for rows that could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    row: Option<usize>,
    name: Option<String>,
    transition: Option<&'static str>,
    lifecycle: Option<&'static str>,
    presence: Option<Presence>,
    upn: Option<String>,
    mail: Option<String>,
    enabled: Option<bool>,
    attributes: BTreeMap<String, Option<String>>,
    groups: Vec<String>,
    licenses: Vec<String>,
    manager: Option<String>,
    time_zone: Option<String>,
    timers: Vec<PlannedTimer>,
    ops: Vec<Op>,
    explanation: Vec<String>,
    /// Values Graph would refuse, left out of the account, and what to fix.
    problems: Vec<DataProblem>,
    error: Option<String>,
    /// With --apply: what converging into the directory did.
    #[serde(skip_serializing_if = "Option::is_none")]
    applied: Option<ApplyReport>,
}

#[derive(Debug, Serialize)]
struct PlannedTimer {
    /// RFC 3339, UTC.
    at: Timestamp,
    kind: hrsync_core::TimerKind,
    /// The same instant on the worker's own clock.
    local: String,
}

#[derive(Debug, Serialize)]
struct Plan {
    now: Timestamp,
    workers: Vec<PlannedWorker>,
    summary: BTreeMap<String, usize>,
    /// The display names (`[labels]`) of the group ids and skuIds in the plan.
    labels: BTreeMap<String, String>,
}

/// The configured names of the groups and licences the planned workers have.
fn labels(config: &Config, planned: &[PlannedWorker]) -> BTreeMap<String, String> {
    planned
        .iter()
        .flat_map(|w| w.groups.iter().chain(&w.licenses))
        .filter_map(|id| Some((id.clone(), config.label(id)?.to_owned())))
        .collect()
}

/// Runs the plan; with `--apply`, the number of workers whose changes could not be applied.
pub fn run(args: PlanArgs) -> anyhow::Result<usize> {
    if args.live {
        return run_live(&args);
    }
    let config = crate::runtime::load_config(&args.config)?;
    let (source_name, source) = pick_source(&config, args.source.as_deref())?;
    let now = args.now.unwrap_or_else(Timestamp::now);
    let input = args.input.as_deref().context("--input is required")?;
    let data = std::fs::read(input)
        .with_context(|| format!("cannot read the export {}", input.display()))?;
    let export = hrsync_hr::csv::read_export(source_name, source, &data, now)
        .with_context(|| format!("cannot read the export {}", input.display()))?;
    let mut states = match &args.state {
        Some(path) => read_state(path)?,
        None => StateFile::default(),
    }
    .workers;

    let registry = Registry::seeded(&states);
    let runtime = match args.apply {
        true => Some(tokio::runtime::Runtime::new().context("cannot start the async runtime")?),
        false => None,
    };
    let connection = match &runtime {
        Some(runtime) => {
            let connection = runtime.block_on(directory::connect(
                &config,
                crate::runtime::config_dir(&args.config),
            ))?;
            eprintln!("applying to {}", connection.description);
            Some(connection)
        }
        None => None,
    };
    let mut planned = Vec::new();
    for worker in &export.workers {
        let state = states.remove(&worker.key).unwrap_or_default();
        let (outcome, next, report) = match (&runtime, &connection) {
            (Some(runtime), Some(connection)) => {
                let object_ids = |key: &WorkerKey| {
                    states
                        .get(key)
                        .and_then(|s| s.applied.as_ref())
                        .and_then(|a| a.object_id.clone())
                };
                let settled = runtime.block_on(provision::settle(
                    &connection.graph,
                    &config,
                    worker,
                    state.clone(),
                    now,
                    &registry,
                    &object_ids,
                ));
                (settled.decision, Some(settled.state), Some(settled.report))
            }
            _ => {
                let names = |name: &str, by: &WorkerKey| registry.is_taken(name, by);
                (
                    hrsync_core::decide(worker, &state, &config, now, &names),
                    None,
                    None,
                )
            }
        };
        match outcome {
            Ok(decision) => {
                let ops = hrsync_core::plan(decision.desired.as_ref(), state.applied.as_ref());
                let next = next.unwrap_or_else(|| {
                    // A dry run: assume the plan succeeds, so a later export plans against it.
                    let mut next = decision.state.clone();
                    next.applied = hrsync_core::apply(state.applied.clone(), &ops);
                    next
                });
                registry.claim(&next, &worker.key);
                let mut line = describe(worker, &decision, ops);
                line.applied = report;
                planned.push(line);
                states.insert(worker.key.clone(), next);
            }
            Err(error) => {
                let mut line =
                    PlannedWorker::failed(Some(worker.key.to_string()), None, error.to_string());
                line.applied = report;
                planned.push(line);
                states.insert(worker.key.clone(), next.unwrap_or(state));
            }
        }
    }
    if let (Some(runtime), Some(connection)) = (&runtime, &connection) {
        // Reports whose manager had no account yet: their managers may have one now.
        runtime.block_on(retry_deferred(&connection.graph, &mut planned, &mut states));
    }
    for row in &export.errors {
        let key = row
            .employee_id
            .as_ref()
            .map(|id| WorkerKey::new(source_name, id.as_str()).to_string());
        planned.push(PlannedWorker::failed(key, Some(row.row), row.to_string()));
    }
    let plan = print(&config, &args, now, planned, false)?;
    if let Some(path) = &args.save_state {
        let file = StateFile {
            now: Some(now),
            workers: states,
        };
        let json = serde_json::to_string_pretty(&file)?;
        // The state names people: its folder and file are the owner's alone.
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            hrsync_local::files::create_private_dir_all(folder)
                .with_context(|| format!("cannot create {}", folder.display()))?;
        }
        hrsync_local::files::create_private_file(path)
            .and_then(|()| std::fs::write(path, json + "\n"))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let failed = plan
        .workers
        .iter()
        .filter(|w| w.applied.as_ref().is_some_and(|a| a.status == "failed"))
        .count();
    Ok(failed)
}

/// `--live`: every worker the local runtime's state keeps, decided again with this config as
/// of `now` on their latest HR record. Reads the state; changes nothing.
fn run_live(args: &PlanArgs) -> anyhow::Result<usize> {
    let config = crate::runtime::load_config(&args.config)?;
    let now = args.now.unwrap_or_else(Timestamp::now);
    let path = match &args.state_db {
        Some(path) => path.clone(),
        None => crate::runtime::state_path(&config, &args.config),
    };
    if !path.is_file() {
        bail!(
            "no state at {}: --live reads the state hrsync import or serve keep (name another with --state-db)",
            path.display()
        );
    }
    let store = hrsync_local::SqliteStore::open(&path)
        .with_context(|| format!("cannot open the state store {}", path.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let mut states = BTreeMap::new();
    let mut records = BTreeMap::new();
    runtime.block_on(async {
        use hrsync_pipeline::ports::StateStore;
        for key in store.workers().await? {
            let Some(stored) = store.load(&key).await? else {
                continue;
            };
            // The inbox may hold a record newer than the one last decided.
            let record = match store.snapshot(&key).await? {
                Some(record) => Some(record),
                None => stored.state.snapshot.clone(),
            };
            if let Some(record) = record {
                records.insert(key.clone(), record);
            }
            states.insert(key, stored.state);
        }
        anyhow::Ok(())
    })?;
    let registry = Registry::seeded(&states);
    let names = |name: &str, by: &WorkerKey| registry.is_taken(name, by);
    let mut planned = Vec::new();
    for (key, record) in &records {
        let state = &states[key];
        match hrsync_core::decide(record, state, &config, now, &names) {
            Ok(decision) => {
                let ops = hrsync_core::plan(decision.desired.as_ref(), state.applied.as_ref());
                planned.push(describe(record, &decision, ops));
            }
            Err(error) => planned.push(PlannedWorker::failed(
                Some(key.to_string()),
                None,
                error.to_string(),
            )),
        }
    }
    print(&config, args, now, planned, true)?;
    Ok(0)
}

/// Prints the plan of `planned` (only those that change with `--changes-only`); `changes`
/// counts each group, licence and attribute change in the summary.
fn print(
    config: &Config,
    args: &PlanArgs,
    now: Timestamp,
    mut planned: Vec<PlannedWorker>,
    changes: bool,
) -> anyhow::Result<Plan> {
    if args.changes_only {
        planned.retain(PlannedWorker::changes);
    }
    let plan = Plan {
        now,
        summary: summarize(&planned, changes),
        labels: labels(config, &planned),
        workers: planned,
    };
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&plan)?),
        Format::Table => out!("{}", table(&plan)),
    }
    Ok(plan)
}

pub(crate) fn pick_source<'c>(
    config: &'c Config,
    wanted: Option<&str>,
) -> anyhow::Result<(&'c str, &'c hrsync_core::config::SourceConfig)> {
    let csv: Vec<_> = config
        .sources
        .iter()
        .filter(|(_, source)| source.kind == SourceKind::Csv)
        .collect();
    match (wanted, csv.as_slice()) {
        (Some(name), _) => match config.sources.get_key_value(name) {
            Some((name, source)) if source.kind == SourceKind::Csv => Ok((name, source)),
            Some(_) => bail!("source {name:?} is not a CSV source (kind = \"csv\")"),
            None => bail!("the config has no [source.{name}]"),
        },
        (None, [(name, source)]) => Ok((name.as_str(), source)),
        (None, []) => {
            bail!("the config has no CSV source: add a [source.<name>] with kind = \"csv\"")
        }
        (None, several) => bail!(
            "the config has several CSV sources ({}): choose one with --source",
            several
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn read_state(path: &Path) -> anyhow::Result<StateFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the state {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a state file written by --save-state",
            path.display()
        )
    })
}

/// UPNs and mail addresses in use, so that two workers of one run never share one.
struct Registry {
    owners: Mutex<HashMap<String, WorkerKey>>,
}

impl Registry {
    fn seeded(states: &BTreeMap<WorkerKey, WorkerState>) -> Self {
        let registry = Self {
            owners: Mutex::new(HashMap::new()),
        };
        for (key, state) in states {
            registry.claim(state, key);
        }
        registry
    }

    fn claim(&self, state: &WorkerState, owner: &WorkerKey) {
        let mut owners = self.owners();
        let ids = state
            .identifiers
            .iter()
            .flat_map(|ids| [&ids.upn, &ids.mail]);
        let applied = state
            .applied
            .iter()
            .flat_map(|a| std::iter::once(&a.upn).chain(a.mail.as_ref()));
        for name in ids.chain(applied) {
            owners
                .entry(name.to_lowercase())
                .or_insert_with(|| owner.clone());
        }
    }
}

impl Registry {
    fn owners(&self) -> MutexGuard<'_, HashMap<String, WorkerKey>> {
        self.owners.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl hrsync_core::NameRegistry for Registry {
    fn is_taken(&self, name: &str, by: &WorkerKey) -> bool {
        self.owners()
            .get(&name.to_lowercase())
            .is_some_and(|owner| owner != by)
    }
}

impl ForeignNames for Registry {
    fn mark_foreign(&self, name: &str) {
        self.owners()
            .insert(name.to_lowercase(), WorkerKey::new("directory", "unknown"));
    }
}

/// Converges again the workers whose manager had no account during the first pass.
async fn retry_deferred(
    graph: &hrsync_directory::graph::GraphClient,
    planned: &mut [PlannedWorker],
    states: &mut BTreeMap<WorkerKey, WorkerState>,
) {
    for line in planned.iter_mut() {
        let (Some(report), Some(key)) = (
            line.applied.as_mut().filter(|a| a.status == "deferred"),
            line.worker
                .as_deref()
                .and_then(|k| k.parse::<WorkerKey>().ok()),
        ) else {
            continue;
        };
        let Some(mut state) = states.get(&key).cloned() else {
            continue;
        };
        let object_ids = |other: &WorkerKey| {
            states
                .get(other)
                .and_then(|s| s.applied.as_ref())
                .and_then(|a| a.object_id.clone())
        };
        provision::converge_again(graph, &key, &mut state, &object_ids, report).await;
        states.insert(key, state);
    }
}

fn describe(worker: &hrsync_core::Worker, decision: &Decision, ops: Vec<Op>) -> PlannedWorker {
    let desired = decision.desired.as_ref();
    let ids = desired.and_then(|d| d.identifiers.as_ref());
    let zone = jiff::tz::TimeZone::get(&decision.time_zone).ok();
    PlannedWorker {
        worker: Some(worker.key.to_string()),
        row: None,
        name: Some(format!(
            "{} {}",
            worker
                .preferred_name
                .as_deref()
                .unwrap_or(&worker.given_name),
            worker.family_name
        )),
        transition: Some(decision.transition.as_str()),
        lifecycle: Some(decision.lifecycle.as_str()),
        presence: desired.map(|d| d.presence),
        upn: ids.map(|i| i.upn.clone()),
        mail: ids.map(|i| i.mail.clone()),
        enabled: desired.map(|d| d.enabled),
        attributes: desired.map(|d| d.attributes.clone()).unwrap_or_default(),
        groups: desired
            .map(|d| d.groups.iter().cloned().collect())
            .unwrap_or_default(),
        licenses: desired
            .map(|d| d.licenses.iter().cloned().collect())
            .unwrap_or_default(),
        manager: desired
            .and_then(|d| d.manager.as_ref())
            .map(ToString::to_string),
        time_zone: Some(decision.time_zone.clone()),
        timers: decision
            .timers
            .iter()
            .map(|timer| PlannedTimer {
                at: timer.at,
                kind: timer.kind,
                local: zone
                    .as_ref()
                    .map(|zone| {
                        timer
                            .at
                            .to_zoned_datetime(zone.clone())
                            .strftime("%Y-%m-%d %H:%M %Z")
                            .to_string()
                    })
                    .unwrap_or_default(),
            })
            .collect(),
        ops,
        explanation: decision.explanation.clone(),
        problems: decision.problems.clone(),
        error: None,
        applied: None,
    }
}

impl PlannedWorker {
    /// The worker's account would change (or the worker cannot be decided any more).
    fn changes(&self) -> bool {
        !self.ops.is_empty() || self.error.is_some()
    }

    fn failed(worker: Option<String>, row: Option<usize>, error: String) -> Self {
        Self {
            worker,
            row,
            name: None,
            transition: None,
            lifecycle: None,
            presence: None,
            upn: None,
            mail: None,
            enabled: None,
            attributes: BTreeMap::new(),
            groups: Vec::new(),
            licenses: Vec::new(),
            manager: None,
            time_zone: None,
            timers: Vec::new(),
            ops: Vec::new(),
            explanation: Vec::new(),
            problems: Vec::new(),
            error: Some(error),
            applied: None,
        }
    }
}

/// The plan's counts; with `changes`, also how many workers each group, licence and
/// attribute change touches (`--live`).
fn summarize(workers: &[PlannedWorker], changes: bool) -> BTreeMap<String, usize> {
    let mut summary = BTreeMap::new();
    for worker in workers {
        let key = match (&worker.error, worker.transition) {
            (Some(_), _) => "error",
            (None, Some(transition)) => transition,
            (None, None) => "none",
        };
        *summary.entry(key.to_owned()).or_default() += 1;
        if let Some(applied) = &worker.applied {
            *summary
                .entry(format!("applied_{}", applied.status))
                .or_default() += 1;
        }
        *summary.entry("ops".to_owned()).or_default() += worker.ops.len();
        for op in worker.ops.iter().filter(|_| changes) {
            let change = match op {
                Op::AddGroup { group } => format!("group +{group}"),
                Op::RemoveGroup { group } => format!("group -{group}"),
                Op::AssignLicense { sku } => format!("licence +{sku}"),
                Op::RemoveLicense { sku } => format!("licence -{sku}"),
                Op::Update { set, clear } => {
                    for attribute in set.keys().chain(clear) {
                        *summary.entry(format!("attribute {attribute}")).or_default() += 1;
                    }
                    continue;
                }
                _ => continue,
            };
            *summary.entry(change).or_default() += 1;
        }
        if !worker.problems.is_empty() {
            *summary.entry("problems".to_owned()).or_default() += worker.problems.len();
        }
        *summary.entry("timers".to_owned()).or_default() += worker.timers.len();
    }
    summary
}

fn table(plan: &Plan) -> String {
    let mut out = String::new();
    let applied = plan.workers.iter().any(|w| w.applied.is_some());
    let mode = match applied {
        true => "applied to the directory",
        false => "dry run: nothing was changed",
    };
    let _ = writeln!(out, "hrsync plan as of {} ({mode})\n", plan.now);
    for worker in &plan.workers {
        let title = worker.worker.as_deref().unwrap_or("(no employee id)");
        if let Some(error) = &worker.error {
            let row = worker
                .row
                .map(|r| format!(" (row {r})"))
                .unwrap_or_default();
            let _ = writeln!(out, "{title}{row}  ERROR  {error}\n");
            continue;
        }
        let _ = writeln!(
            out,
            "{title}  {}  {} -> {}",
            worker.name.as_deref().unwrap_or_default(),
            worker.transition.unwrap_or_default(),
            worker.lifecycle.unwrap_or_default()
        );
        if let (Some(upn), Some(mail)) = (&worker.upn, &worker.mail) {
            let enabled = if worker.enabled == Some(true) {
                "enabled"
            } else {
                "disabled"
            };
            let _ = writeln!(out, "    upn        {upn}  mail {mail}  ({enabled})");
        } else {
            let account = match worker.presence {
                None => "none",
                Some(Presence::IfExists) => "never created; disabled if one exists",
                Some(Presence::Deleted) => "deleted if it exists",
                Some(Presence::Present) => "present",
            };
            let _ = writeln!(out, "    account    {account}");
        }
        if !worker.attributes.is_empty() {
            let attributes: Vec<String> = worker
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("(clear)")))
                .collect();
            let _ = writeln!(out, "    attributes {}", attributes.join(", "));
        }
        for (label, values) in [("groups", &worker.groups), ("licenses", &worker.licenses)] {
            if !values.is_empty() {
                let named: Vec<&str> = values
                    .iter()
                    .map(|id| plan.labels.get(id).unwrap_or(id).as_str())
                    .collect();
                let _ = writeln!(out, "    {label:<10} {}", named.join(", "));
            }
        }
        if let Some(manager) = &worker.manager {
            let _ = writeln!(out, "    manager    {manager}");
        }
        for timer in &worker.timers {
            let kind = serde_json::to_value(timer.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    timer      {kind} at {} ({})",
                timer.at, timer.local
            );
        }
        if !worker.ops.is_empty() {
            let ops: Vec<&str> = worker.ops.iter().map(Op::name).collect();
            let _ = writeln!(out, "    ops        {}", ops.join(", "));
        }
        if let Some(applied) = &worker.applied {
            let steps = if applied.steps.is_empty() {
                "nothing to do".to_owned()
            } else {
                applied.steps.join(", ")
            };
            let _ = writeln!(out, "    applied    {}: {steps}", applied.status);
            for reason in applied.deferred.iter().chain(&applied.error) {
                let _ = writeln!(out, "    applied    {reason}");
            }
        }
        for problem in &worker.problems {
            let _ = writeln!(out, "    problem    {problem}");
        }
        for line in &worker.explanation {
            let _ = writeln!(out, "    why        {line}");
        }
        out.push('\n');
    }
    let summary: Vec<String> = plan
        .summary
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let _ = writeln!(out, "summary: {}", summary.join(", "));
    out
}
