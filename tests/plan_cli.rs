//! End to end: the `hrsync plan` binary on the shipped examples, as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn hrsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hrsync"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("the hrsync binary runs")
}

fn plan_json(args: &[&str]) -> Value {
    let mut all = vec![
        "plan",
        "--config",
        "examples/hrsync.toml",
        "--format",
        "json",
    ];
    all.extend_from_slice(args);
    let output = hrsync(&all);
    assert!(
        output.status.success(),
        "hrsync plan failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON document")
}

fn worker<'a>(plan: &'a Value, key: &str) -> &'a Value {
    plan["workers"]
        .as_array()
        .expect("workers array")
        .iter()
        .find(|w| w["worker"] == key)
        .unwrap_or_else(|| panic!("{key} is in the plan"))
}

fn timers(worker: &Value) -> Vec<(String, String)> {
    worker["timers"]
        .as_array()
        .expect("timers array")
        .iter()
        .map(|t| (text(&t["kind"]), text(&t["at"])))
        .collect()
}

fn ops(worker: &Value) -> Vec<String> {
    worker["ops"]
        .as_array()
        .expect("ops")
        .iter()
        .map(|o| text(&o["op"]))
        .collect()
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is a string"))
        .to_owned()
}

const TODAY: &str = "2026-12-01T09:00:00Z";

#[test]
fn plan_on_the_examples_shows_every_worker_with_the_contract_keys() {
    let plan = plan_json(&[
        "--input",
        "examples/workers-with-a-bad-row.csv",
        "--now",
        TODAY,
    ]);
    let workers = plan["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 36, "35 workers and one bad row");
    for worker in workers {
        for key in [
            "worker",
            "transition",
            "lifecycle",
            "upn",
            "mail",
            "enabled",
            "attributes",
            "groups",
            "licenses",
            "timers",
            "explanation",
            "problems",
            "error",
        ] {
            assert!(worker.get(key).is_some(), "{key} missing in {worker}");
        }
    }

    let zoe = worker(&plan, "hr:1003");
    assert_eq!(zoe["transition"], "join");
    assert_eq!(zoe["upn"], "zoe.obrien-smith@acme.example");
    assert_eq!(zoe["attributes"]["displayName"], "Zoë O'Brien-Smith");
    assert_eq!(ops(zoe)[0], "create");

    let janes: Vec<&Value> = ["hr:1009", "hr:1011", "hr:1012"]
        .iter()
        .map(|k| &worker(&plan, k)["upn"])
        .collect();
    assert_eq!(
        janes,
        [
            "jane.smith@acme.example",
            "j.smith@acme.example",
            "jane.smith2@acme.example"
        ]
    );
    let mut upns: Vec<&str> = workers.iter().filter_map(|w| w["upn"].as_str()).collect();
    let count = upns.len();
    upns.sort_unstable();
    upns.dedup();
    assert_eq!(upns.len(), count, "no two workers share a UPN");

    let leaver = worker(&plan, "hr:1023");
    assert_eq!(leaver["lifecycle"], "leave_scheduled");
    assert_eq!(
        timers(leaver),
        [("leave".into(), "2026-12-18T17:00:00Z".into())]
    );
    let sydney = worker(&plan, "hr:1024");
    assert_eq!(
        timers(sydney),
        [("leave".into(), "2026-12-04T06:00:00Z".into())],
        "17:00 AEDT is 06:00Z"
    );

    let fired = worker(&plan, "hr:1026");
    assert_eq!(fired["lifecycle"], "terminated");
    assert_eq!(fired["presence"], "if_exists");
    assert!(
        ops(fired).is_empty(),
        "no account is ever created for a leaver"
    );

    let intern = worker(&plan, "hr:1015");
    assert_eq!(intern["transition"], "none");
    assert!(
        intern["presence"].is_null() && ops(intern).is_empty(),
        "out of scope: nothing"
    );

    let in_window = worker(&plan, "hr:1019");
    assert_eq!(in_window["transition"], "prehire");
    assert_eq!(in_window["enabled"], false);
    assert_eq!(ops(in_window)[0], "create");
    // Los Angeles is on PST (UTC-8) in December: 08:00 local is 16:00Z.
    assert_eq!(
        timers(in_window),
        [("start".into(), "2026-12-07T16:00:00Z".into())]
    );
    let later = worker(&plan, "hr:1021");
    assert!(
        ops(later).is_empty() && later["upn"].is_null(),
        "no account before the window"
    );
    assert_eq!(
        timers(later),
        [
            ("prehire".into(), "2026-12-28T08:00:00Z".into()),
            ("start".into(), "2027-01-04T08:00:00Z".into())
        ]
    );

    let bad = workers
        .iter()
        .find(|w| !w["error"].is_null())
        .expect("the bad row");
    assert_eq!(bad["worker"], "hr:1029");
    assert_eq!(bad["row"], 30);
    assert_eq!(
        bad["error"],
        "row 30 (employee 1029): hire_date: \"2026-02-30\" is not a date in format %Y-%m-%d"
    );
}

#[test]
fn planning_a_later_export_against_saved_state_shows_movers_leavers_and_rehires() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let state = state.to_str().unwrap();
    plan_json(&[
        "--input",
        "examples/workers-2026-10-15.csv",
        "--now",
        "2026-10-15T09:00:00Z",
        "--save-state",
        state,
    ]);
    let plan = plan_json(&[
        "--input",
        "examples/workers.csv",
        "--now",
        TODAY,
        "--state",
        state,
    ]);

    let transition = |key: &str| {
        worker(&plan, key)["transition"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(transition("hr:1001"), "none", "unchanged");
    assert_eq!(transition("hr:1017"), "move");
    assert_eq!(transition("hr:1018"), "join");
    assert_eq!(transition("hr:1025"), "leave");
    assert_eq!(transition("hr:1026"), "leave");
    assert_eq!(transition("hr:1028"), "rehire");
    assert!(
        ops(worker(&plan, "hr:1001")).is_empty(),
        "nothing to do for an unchanged worker"
    );
    assert_eq!(ops(worker(&plan, "hr:1026"))[0], "disable");

    let rescinded = worker(&plan, "hr:1031");
    assert!(ops(rescinded).is_empty() && timers(rescinded).is_empty());
    assert!(
        rescinded["explanation"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("rescinded"))
    );

    // The UPNs chosen a month ago stay; the new joiner does not take one of them.
    assert_eq!(worker(&plan, "hr:1012")["upn"], "jane.smith2@acme.example");
}

#[test]
fn a_broken_config_fails_with_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hrsync.toml");
    std::fs::write(&config, "[identity]\nupn = [\"{{ given_name }}@acme.example\"]\n\n[lifecycle]\nleave_at = \"5pm\"\n").unwrap();
    let output = hrsync(&[
        "plan",
        "--config",
        config.to_str().unwrap(),
        "--input",
        "examples/workers.csv",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim(),
        format!(
            "error: {}:5:12: lifecycle.leave_at: invalid time \"5pm\", expected \"HH:MM\" (24-hour, e.g. \"17:00\")",
            config.display()
        )
    );
}

#[test]
fn a_missing_export_is_a_clear_error() {
    let output = hrsync(&[
        "plan",
        "--config",
        "examples/hrsync.toml",
        "--input",
        "examples/nope.csv",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: cannot read the export examples/nope.csv: "),
        "{stderr}"
    );
}

#[test]
fn the_table_shows_the_explanation_and_a_summary() {
    let output = hrsync(&[
        "plan",
        "--config",
        "examples/hrsync.toml",
        "--input",
        "examples/workers.csv",
        "--now",
        TODAY,
    ]);
    assert!(output.status.success());
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(
        table.contains("hr:1024  Charlotte Davies  join -> leave_scheduled"),
        "{table}"
    );
    assert!(table.contains("timer      leave at 2026-12-04T06:00:00Z (2026-12-04 17:00 AEDT)"));
    // Groups and licences by their [labels] names.
    assert!(
        table.contains(
            "    groups     All Staff, Sales, CRM users\n    licenses   Microsoft 365 E3\n"
        ),
        "{table}"
    );
    assert!(table.contains("why        leave: termination_date 2026-12-04 at 17:00 (lifecycle.leave_at) in Australia/Sydney is 2026-12-04T06:00:00Z"));
    assert!(
        table
            .trim_end()
            .ends_with("summary: join: 27, none: 4, ops: 153, prehire: 4, timers: 9"),
        "{table}"
    );
}

#[test]
fn plan_apply_converges_the_examples_into_the_sandbox_and_a_second_run_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sandbox.db");
    let config = dir.path().join("hrsync.toml");
    let example = std::fs::read_to_string(repo().join("examples/hrsync.toml")).unwrap();
    let with_data = example.replacen(
        "kind = \"sandbox\"",
        &format!(
            "kind = \"sandbox\"\ndata = {:?}",
            data.display().to_string()
        ),
        1,
    );
    assert_ne!(
        with_data, example,
        "the example config has a sandbox directory"
    );
    std::fs::write(&config, with_data).unwrap();
    let state = dir.path().join("state.json");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "plan",
            "--config",
            config.to_str().unwrap(),
            "--input",
            "examples/workers.csv",
            "--now",
            TODAY,
            "--format",
            "json",
            "--apply",
        ];
        args.extend_from_slice(extra);
        let output = hrsync(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };

    let first = run(&["--save-state", state.to_str().unwrap()]);
    let statuses: Vec<String> = first["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["error"].is_null())
        .map(|w| text(&w["applied"]["status"]))
        .collect();
    assert_eq!(statuses.len(), 35);
    assert!(statuses.iter().all(|s| s == "converged"), "{statuses:?}");
    let zoe = worker(&first, "hr:1003");
    assert_eq!(zoe["applied"]["steps"][0], "create");

    let directory = hrsync_sandbox::read_data_file(&data).unwrap();
    let users = directory["users"]
        .as_array()
        .expect("the sandbox keeps users");
    let mut upns: Vec<String> = users
        .iter()
        .map(|u| text(&u["user"]["userPrincipalName"]).to_lowercase())
        .collect();
    // Accounts: every worker with an account to create (joiners and the pre-hire in its window).
    let created = first["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| {
            w["applied"]["steps"]
                .as_array()
                .is_some_and(|s| s.first() == Some(&Value::from("create")))
        })
        .count();
    assert_eq!(users.len(), created);
    upns.sort();
    upns.dedup();
    assert_eq!(upns.len(), created, "unique UPNs in the directory");

    // The same export against the saved state: nothing left to do.
    let second = run(&["--state", state.to_str().unwrap()]);
    for w in second["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["error"].is_null())
    {
        assert_eq!(w["applied"]["status"], "converged", "{w}");
        assert!(w["applied"]["steps"].as_array().unwrap().is_empty(), "{w}");
    }

    // Without the state, the accounts are found by employeeId and adopted: no duplicates.
    run(&[]);
    let directory = hrsync_sandbox::read_data_file(&data).unwrap();
    assert_eq!(directory["users"].as_array().unwrap().len(), created);
}

/// Two rows of the example export's shape that Graph would refuse as they are: a job title of
/// 200 characters, and a worker with no country (so no usageLocation) whom a rule licenses.
fn export_graph_would_refuse(dir: &Path) -> PathBuf {
    let example = std::fs::read_to_string(repo().join("examples/workers.csv"))
        .expect("the example export is readable");
    let header = example.lines().next().expect("a header row");
    let title = format!("{}Architects", "Principal ".repeat(19));
    let rows = [
        format!(
            "2001,Ada,Lovelace,,,,Active,2024-01-08,,,Employee,{title},Engineering,Product & Technology,ENG-100,Acme Ltd,London,GB,Europe/London,,B-2001"
        ),
        "2002,Bob,Kahn,,,,Active,2024-01-08,,,Employee,Account Executive,Sales,Commercial,SAL-200,Acme Ltd,London,,Europe/London,,B-2002".to_owned(),
    ];
    let path = dir.join("workers.csv");
    std::fs::write(&path, format!("{header}\n{}\n", rows.join("\n")))
        .expect("the export is written");
    path
}

#[test]
fn plan_shows_the_data_graph_would_refuse_per_worker() {
    let dir = tempfile::tempdir().unwrap();
    let export = export_graph_would_refuse(dir.path());
    let export = export.to_str().unwrap();
    let plan = plan_json(&["--input", export, "--now", TODAY]);

    let ada = worker(&plan, "hr:2001");
    assert_eq!(ada["transition"], "join");
    assert!(ada["error"].is_null());
    assert!(ada["attributes"].get("jobTitle").is_none(), "{ada}");
    assert_eq!(
        ada["problems"],
        serde_json::json!([{
            "property": "jobTitle",
            "length": 200,
            "limit": 128,
            "message": "jobTitle has 200 characters and Graph takes at most 128: not sent, the directory keeps its value; shorten it in HR or change attributes.jobTitle",
        }])
    );
    let bob = worker(&plan, "hr:2002");
    assert!(bob["licenses"].as_array().unwrap().is_empty(), "{bob}");
    assert!(!ops(bob).contains(&"assign_license".to_owned()));
    assert_eq!(bob["problems"][0]["property"], "usageLocation");
    assert_eq!(
        bob["problems"][0]["message"],
        "licence 7e3c9a10-5d2b-4f6e-8a71-00000000e301 not assigned: the account has no usageLocation, which Graph requires before a licence; give the worker a country in HR that attributes.usageLocation renders as a two-letter ISO 3166 code"
    );
    assert_eq!(plan["summary"]["problems"], 2);

    let output = hrsync(&[
        "plan",
        "--config",
        "examples/hrsync.toml",
        "--input",
        export,
        "--now",
        TODAY,
    ]);
    assert!(output.status.success());
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(
        table.contains("    problem    jobTitle has 200 characters and Graph takes at most 128: not sent, the directory keeps its value; shorten it in HR or change attributes.jobTitle\n"),
        "{table}"
    );
    assert!(
        table.contains("    problem    licence 7e3c9a10-5d2b-4f6e-8a71-00000000e301 not assigned: the account has no usageLocation"),
        "{table}"
    );
    assert!(table.contains("problems: 2"), "{table}");
}

// -------------------------------------------------------------------------------------------
// The README's commands, as written

/// Every command block (```sh) of README.md and examples/README.md, run in order in a fresh copy
/// of the examples, as a reader would: `hrsync` is the built binary, and `cargo run --release -p
/// hrsync -- ...` runs it too. A command must exit 0 unless its line ends `# exits N`; the
/// `#   text` lines after it are output it must print. Blocks after a `<!-- readme-test: skip
/// REASON -->` line, and `scripts/test.sh` (this suite), are not run; they are listed.
#[test]
fn the_readmes_commands_work_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("examples")).unwrap();
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        // A checkout's own state (examples/.hrsync) is not part of a fresh copy.
        if path.is_file() {
            std::fs::copy(&path, root.join("examples").join(path.file_name().unwrap())).unwrap();
        }
    }
    let bin = root.join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_hrsync"), bin.join("hrsync")).unwrap();
    let cargo = bin.join("cargo");
    std::fs::write(
        &cargo,
        "#!/bin/sh\n\
         if [ \"$1 $2 $3 $4 $5\" = \"run --release -p hrsync --\" ]; then shift 5; exec hrsync \"$@\"; fi\n\
         echo \"the README test runs no cargo command but cargo run --release -p hrsync --: cargo $*\" >&2\n\
         exit 97\n",
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&cargo).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&cargo, permissions).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut ran = 0;
    let mut skipped = Vec::new();
    for document in ["README.md", "examples/README.md"] {
        let text = std::fs::read_to_string(repo().join(document)).unwrap();
        for command in readme_commands(&text) {
            if let Some(reason) = &command.skip {
                skipped.push(format!("{document}: {} ({reason})", command.line));
                continue;
            }
            let output = Command::new("bash")
                .args(["-c", &command.line])
                .current_dir(root)
                .env("PATH", &path)
                .output()
                .unwrap();
            let shown = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert_eq!(
                output.status.code(),
                Some(command.exits),
                "{document}: `{}` exited {}:\n{shown}",
                command.line,
                output.status
            );
            for expected in &command.prints {
                assert!(
                    shown.contains(expected.as_str()),
                    "{document}: `{}` does not print {expected:?}:\n{shown}",
                    command.line
                );
            }
            ran += 1;
        }
    }
    assert!(ran >= 8, "ran {ran} commands");
    // `plan --save-state .hrsync/state.json` made the folder, and both are the owner's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root.join(".hrsync")), 0o700);
    assert_eq!(mode(&root.join(".hrsync/state.json")), 0o600);
    // What is not run, and why: each must stay justified.
    eprintln!(
        "README commands: {ran} run; not run:\n  {}",
        skipped.join("\n  ")
    );
    assert!(skipped.len() <= 6, "{skipped:#?}");
}

/// One command of a README block.
#[derive(Debug)]
struct ReadmeCommand {
    line: String,
    exits: i32,
    /// Output fragments: the `#   text` lines after it (a trailing `...` dropped).
    prints: Vec<String>,
    /// Why it is not run, if it is not.
    skip: Option<String>,
}

fn readme_commands(text: &str) -> Vec<ReadmeCommand> {
    let mut commands: Vec<ReadmeCommand> = Vec::new();
    let mut in_block = false;
    let mut skip_block: Option<String> = None;
    let mut pending = String::new();
    for line in text.lines() {
        if let Some(reason) = line
            .trim()
            .strip_prefix("<!-- readme-test: skip")
            .and_then(|rest| rest.strip_suffix("-->"))
        {
            skip_block = Some(reason.trim().to_owned());
            continue;
        }
        if line.starts_with("```") {
            in_block = !in_block && line.trim() == "```sh";
            if !in_block {
                skip_block = None;
            }
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(fragment) = line.strip_prefix("#   ") {
            let fragment = fragment.trim_end().trim_end_matches("...").trim_end();
            if let Some(last) = commands.last_mut() {
                last.prints.push(fragment.to_owned());
            }
            continue;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        pending.push_str(trimmed.trim_end_matches('\\'));
        if trimmed.ends_with('\\') {
            pending.push(' ');
            continue;
        }
        let line = std::mem::take(&mut pending);
        let exits = line
            .rsplit_once("# exits ")
            .and_then(|(_, code)| code.trim().parse().ok())
            .unwrap_or(0);
        let skip = skip_block.clone().or_else(|| {
            (line == "scripts/test.sh").then(|| "the test suite this test is part of".to_owned())
        });
        commands.push(ReadmeCommand {
            line,
            exits,
            prints: Vec::new(),
            skip,
        });
    }
    commands
}
