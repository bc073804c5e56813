//! The end-to-end benchmark of `hrsync import`: Microsoft Graph requests for a first load, the
//! same export again and a day of churn (each inner request of a `$batch` counted, as Graph
//! throttles each one), with direct licences and with group-based licensing; and the wall time
//! of importing 10,000 workers on the embedded default (SQLite state, in-process sandbox).
//!
//! ```sh
//! cargo bench -p hrsync --bench end_to_end                  # both parts
//! cargo bench -p hrsync --bench end_to_end -- requests 1000 # request counts only, for N workers
//! cargo bench -p hrsync --bench end_to_end -- time 10000    # import time only, for N workers
//! ```
//!
//! It runs the release `hrsync` binary as a user would: a separate `hrsync sandbox` (seeded
//! with the workforce's groups and licences, counting requests at `/sandbox/stats`) for the
//! counts, and the in-process sandbox of the default config for the time. The workforce is
//! `hrsync_hr_emulators::workforce` (the same people for the same seed).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hrsync_hr_emulators::workforce::{E3, F3, Licensing, Workforce};
use serde_json::Value;

const SEED: u64 = 20261201;
const SECRET_ENV: &str = "HRSYNC_BENCH_GRAPH_SECRET";

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let size = |default: usize| args.get(1).and_then(|n| n.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("requests") => requests(size(1000)),
        Some("time") => time(size(10_000)),
        _ => {
            requests(1000);
            time(10_000);
        }
    }
}

fn hrsync() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hrsync"))
}

/// A running `hrsync sandbox`, stopped when dropped.
struct Sandbox {
    child: Child,
    url: String,
}

impl Sandbox {
    fn start(licensing: Licensing, secret: &str, units: u32) -> Self {
        let mut command = hrsync();
        command.args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--client-secret",
            secret,
        ]);
        for (id, name, license) in Workforce::groups(licensing) {
            let seed = match license {
                Some(sku) => format!("{id}={name}@{sku}"),
                None => format!("{id}={name}"),
            };
            command.args(["--group", &seed]);
        }
        for (sku, part) in [E3, F3] {
            command.args(["--sku", &format!("{sku}={part}@{units}")]);
        }
        let mut child = command
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("hrsync sandbox starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut line = String::new();
        BufReader::new(stderr)
            .read_line(&mut line)
            .expect("the sandbox says where it listens");
        // "hrsync sandbox: Graph at http://127.0.0.1:PORT/v1.0, tokens at ..."
        let url = line
            .split("Graph at ")
            .nth(1)
            .and_then(|rest| rest.split("/v1.0").next())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no URL in {line:?}"));
        Self { child, url }
    }

    /// `(reads, writes)` answered so far (inner `$batch` requests each counted).
    fn counts(&self) -> (u64, u64) {
        let stats: Value = tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async {
                reqwest::get(format!("{}/sandbox/stats", self.url))
                    .await
                    .expect("stats")
                    .json()
                    .await
                    .expect("stats JSON")
            });
        let n = |k: &str| stats[k].as_u64().unwrap_or_default();
        (n("reads"), n("writes"))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `hrsync import` and returns its JSON summary and exit code.
fn import(config: &Path, export: &Path, now: &str) -> (Value, i32) {
    let output = hrsync()
        .args(["import", "--format", "json", "--now", now, "--config"])
        .arg(config)
        .arg(export)
        .env(SECRET_ENV, secret())
        .output()
        .expect("hrsync import runs");
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "hrsync import printed no summary: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    for problem in ["failed", "row_errors"] {
        if let Some(first) = summary[problem].as_array().and_then(|p| p.first()) {
            let count = summary[problem].as_array().map_or(0, Vec::len);
            eprintln!("{count} {problem}, the first: {first}");
        }
    }
    (summary, output.status.code().unwrap_or(-1))
}

fn secret() -> String {
    format!("bench-{SEED}")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn requests(size: usize) {
    println!(
        "Graph requests of `hrsync import` ({size} workers; inner $batch requests counted one each)"
    );
    println!(
        "| licensing | run | reads | writes | total | per worker | joiners | movers | leavers | unchanged | exit |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for licensing in [Licensing::Direct, Licensing::Groups] {
        let dir = tempfile::tempdir().expect("tempdir");
        let sandbox = Sandbox::start(licensing, &secret(), (size as u32) * 2);
        let directory = format!(
            "kind = \"sandbox\"\nurl = \"{}\"\nclient_secret = {{ env = \"{SECRET_ENV}\" }}",
            sandbox.url
        );
        let config = write(
            dir.path(),
            "hrsync.toml",
            &Workforce::config(&directory, licensing),
        );
        let mut workforce = Workforce::new(size, SEED);
        let first = write(dir.path(), "first.csv", &workforce.csv());
        let churned = workforce.churn("2026-12-02", "2026-12-01");
        let churn = write(dir.path(), "churn.csv", &workforce.csv());
        let name = match licensing {
            Licensing::Direct => "direct",
            Licensing::Groups => "group-based",
        };
        let runs = [
            ("first load", &first, "2026-12-01T09:00:00Z"),
            ("same export again", &first, "2026-12-01T10:00:00Z"),
            ("a day of churn", &churn, "2026-12-02T09:00:00Z"),
        ];
        for (run, export, now) in runs {
            let (reads, writes) = sandbox.counts();
            let (summary, exit) = import(&config, export, now);
            let (reads, writes) = {
                let (r, w) = sandbox.counts();
                (r - reads, w - writes)
            };
            let c = &summary["counts"];
            let workers = c["workers"].as_u64().unwrap_or_default().max(1);
            println!(
                "| {name} | {run} | {reads} | {writes} | {} | {:.2} | {} | {} | {} | {} | {exit} |",
                reads + writes,
                (reads + writes) as f64 / workers as f64,
                c["joiners"],
                c["movers"],
                c["leavers"],
                c["unchanged"],
            );
        }
        println!(
            "(churn: {} joiners, {} movers, {} manager changes, {} renames, {} leavers)",
            churned.joiners,
            churned.movers,
            churned.manager_changes,
            churned.renames,
            churned.leavers
        );
    }
}

fn time(size: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(
        dir.path(),
        "hrsync.toml",
        &Workforce::config("kind = \"sandbox\"", Licensing::Direct),
    );
    let export = write(dir.path(), "workers.csv", &Workforce::new(size, SEED).csv());
    let started = Instant::now();
    let (summary, exit) = import(&config, &export, "2026-12-01T09:00:00Z");
    let took = started.elapsed();
    let c = &summary["counts"];
    println!();
    println!(
        "`hrsync import` of {size} workers on the embedded default (SQLite state, in-process sandbox)"
    );
    println!("| workers | joiners | directory operations | failed | exit | wall time |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {size} | {} | {} | {} | {exit} | {:.1} s |",
        c["joiners"],
        c["directory_operations"],
        c["failed"],
        secs(took)
    );
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
