//! `hrsync`: the command line. `plan` is the dry run: what hrsync would do, and why.

mod aws;
mod directory;
mod doctor;
mod import;
mod ops;
mod output;
mod plan;
mod runtime;
mod sandbox;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "hrsync",
    version,
    about = "HR-driven identity provisioning for Microsoft Entra ID"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to stderr: text (coloured only on a terminal, and never
    /// when NO_COLOR is set) or one JSON object per line. RUST_LOG sets the level (default
    /// warn; info shows each run's steps, debug adds the workers).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr. Nothing personal is logged above debug.
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => {
            // no-color.org: set and not empty turns colour off.
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            logs.with_ansi(std::io::stderr().is_terminal() && !no_color)
                .init();
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Dry run: decide every worker of an HR export and show what would change, and why.
    Plan(PlanArgs),
    /// Feed an HR export through the pipeline into the directory and wait until it is applied.
    Import(import::ImportArgs),
    /// Run the pipeline: webhooks in, directory changes out, timers on time.
    Serve(serve::ServeArgs),
    /// Run the Entra-compatible sandbox directory (a Microsoft Graph v1.0 subset) on its own.
    Sandbox(sandbox::SandboxArgs),
    /// Queues, pending holds and upcoming timers of the local runtime.
    Status(ops::StatusArgs),
    /// Everything hrsync did to one worker, and why, oldest first.
    Audit(ops::AuditArgs),
    /// Upcoming timers (joins, leaves, staged offboarding), in UTC and the worker's time.
    Timers(ops::TimersArgs),
    /// Emergency leaver: disable a worker's account now, whatever HR says.
    Terminate(ops::TerminateArgs),
    /// Operations the safety breaker held: list, approve, reject.
    Holds(ops::HoldsArgs),
    /// Dead letters (work that ran out of attempts): list, redrive.
    Dlq(ops::DlqArgs),
    /// Check the config, its secrets, the directory (token and permissions), the HR APIs and
    /// the state, and say what is wrong and how to fix it.
    Doctor(doctor::DoctorArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
    /// The hrsync.toml to use.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The HR export (CSV) to decide.
    #[arg(long, value_name = "FILE.csv", required_unless_present = "live")]
    input: Option<PathBuf>,
    /// Decide every worker the local runtime's state keeps (their latest HR records) with this
    /// config instead of an export: a preview of a config change against the live state.
    #[arg(long, conflicts_with_all = ["input", "state", "save_state", "apply", "source"])]
    live: bool,
    /// With --live: the state file to read (default: the one this config's `[state]` names).
    #[arg(long, value_name = "FILE", requires = "live")]
    state_db: Option<PathBuf>,
    /// Show only the workers whose account would change.
    #[arg(long)]
    changes_only: bool,
    /// Decide as of this instant (RFC 3339, e.g. 2026-12-01T09:00:00Z); default: now.
    #[arg(long, value_name = "RFC3339")]
    now: Option<jiff::Timestamp>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// The `[source.<name>]` the export belongs to; needed only when the config has several CSV sources.
    #[arg(long, value_name = "NAME")]
    source: Option<String>,
    /// Decide against this stored state (from --save-state) instead of an empty directory.
    #[arg(long, value_name = "FILE.json")]
    state: Option<PathBuf>,
    /// Write the state after applying the plan, to plan the next export against it.
    #[arg(long, value_name = "FILE.json")]
    save_state: Option<PathBuf>,
    /// Converge the planned workers into the configured directory (`[directory]`: the sandbox
    /// by default). Unique names are checked against the directory too.
    #[arg(long)]
    apply: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let (result, failure) = match cli.command {
        Command::Plan(args) => (
            plan::run(args),
            "worker(s) could not be applied; their \"applied\" entries say why",
        ),
        Command::Import(args) => match import::run(args) {
            // Everything else applied: exit 3 tells a scheduler that licences must be bought
            // or freed.
            Ok(ended) if ended.failed == 0 && ended.waiting_for_licenses > 0 => {
                eprintln!(
                    "hrsync: {} worker(s) wait for a licence with no free unit; the summary names the SKU",
                    ended.waiting_for_licenses
                );
                return ExitCode::from(3);
            }
            result => (
                result.map(|ended| ended.failed),
                "worker(s) or unreadable row(s) failed; the summary says why",
            ),
        },
        Command::Serve(args) => (serve::run(args), "worker(s) failed"),
        Command::Sandbox(args) => (sandbox::run(args).map(|()| 0), ""),
        Command::Status(args) => (ops::status(args), ""),
        Command::Audit(args) => (ops::audit(args), ""),
        Command::Timers(args) => (ops::timers(args), ""),
        Command::Terminate(args) => (
            ops::terminate(args),
            "worker(s) failed; `hrsync dlq list` says why",
        ),
        Command::Holds(args) => (
            ops::run_holds(args),
            "worker(s) failed; `hrsync dlq list` says why",
        ),
        Command::Doctor(args) => return doctor::main(args),
        Command::Dlq(args) => (
            ops::run_dlq(args),
            "worker(s) failed again; `hrsync dlq list` says why",
        ),
    };
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failed) => {
            eprintln!("error: {failed} {failure}");
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
