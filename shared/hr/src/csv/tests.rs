#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use hrsync_core::config::{SourceConfig, SourceKind};
use hrsync_core::template::context;
use hrsync_core::{Config, Status, Worker, WorkerKey};
use jiff::Timestamp;
use jiff::civil::{date, time};

use super::*;

const AS_OF: &str = "2026-12-01T09:00:00Z";

fn as_of() -> Timestamp {
    AS_OF.parse().unwrap()
}

/// A source mapping each field to a header of the same name.
fn source(fields: &[&str]) -> SourceConfig {
    SourceConfig {
        kind: SourceKind::Csv,
        columns: fields
            .iter()
            .map(|f| (f.to_string(), f.to_string()))
            .collect(),
        ..SourceConfig::of_kind(SourceKind::Csv)
    }
}

/// The fields most tests use; the header row is exactly these names.
const BASIC: &[&str] = &[
    "employee_id",
    "given_name",
    "family_name",
    "status",
    "hire_date",
];
const BASIC_HEADER: &str = "employee_id,given_name,family_name,status,hire_date\n";

fn read(source: &SourceConfig, csv: &str) -> CsvExport {
    read_export("hr", source, csv.as_bytes(), as_of()).unwrap()
}

fn ids(export: &CsvExport) -> Vec<&str> {
    export
        .workers
        .iter()
        .map(|w| w.employee_id.as_str())
        .collect()
}

fn messages(export: &CsvExport) -> Vec<String> {
    export.errors.iter().map(ToString::to_string).collect()
}

fn worker(id: &str, given: &str, family: &str) -> Worker {
    Worker::new(WorkerKey::new("hr", id), given, family, as_of())
}

#[test]
fn happy_path_reads_every_field() {
    let mut fields: Vec<&str> = hrsync_core::template::CANONICAL_FIELDS.to_vec();
    fields.extend(["termination_time", "as_of", "custom.badge"]);
    let source = source(&fields);
    let header = fields.join(",");
    let row = [
        "1042",
        " Zoë ",
        "O'Brien-Smith",
        "Anne",
        "Zo",
        "zoe@example.org",
        "zoe.obrien-smith@acme.example",
        "ACTIVE",
        "2024-03-04",
        "2026-12-18",
        " voluntary ",
        "Employee",
        "Engineer",
        "Engineering",
        "Product",
        "ENG-100",
        "Acme Ltd",
        "London",
        "GB",
        "Europe/London",
        "1001",
        "16:30",
        "2026-11-30T18:00:00Z",
        "B-1042",
    ]
    .join(",");
    let export = read(&source, &format!("{header}\n{row}\n"));
    assert_eq!(messages(&export), Vec::<String>::new());

    let mut expected = worker("1042", "Zoë", "O'Brien-Smith");
    let text = |s: &str| Some(s.to_owned());
    expected.middle_name = text("Anne");
    expected.preferred_name = text("Zo");
    expected.personal_email = text("zoe@example.org");
    expected.work_email = text("zoe.obrien-smith@acme.example");
    expected.status = Status::Active;
    expected.hire_date = Some(date(2024, 3, 4));
    expected.termination_date = Some(date(2026, 12, 18));
    expected.termination_time = Some(time(16, 30, 0, 0));
    expected.termination_type = text("voluntary");
    expected.worker_type = text("Employee");
    expected.job_title = text("Engineer");
    expected.department = text("Engineering");
    expected.division = text("Product");
    expected.cost_center = text("ENG-100");
    expected.company = text("Acme Ltd");
    expected.location = text("London");
    expected.country = text("GB");
    expected.time_zone = text("Europe/London");
    expected.manager_id = text("1001");
    expected.as_of = "2026-11-30T18:00:00Z".parse().unwrap();
    expected.custom = BTreeMap::from([("badge".to_owned(), "B-1042".to_owned())]);
    assert_eq!(export.workers, vec![expected]);
}

#[test]
fn unmapped_and_empty_cells_are_absent() {
    let source = source(&[
        "employee_id",
        "given_name",
        "family_name",
        "hire_date",
        "department",
    ]);
    let export = read(
        &source,
        "employee_id,given_name,family_name,hire_date,department,Unmapped\n7,Ann,Lee,2024-01-02,  ,whatever\n",
    );
    let mut expected = worker("7", "Ann", "Lee");
    expected.hire_date = Some(date(2024, 1, 2));
    assert_eq!(export.workers, vec![expected]);
    assert_eq!(export.errors, vec![]);
}

#[test]
fn names_keep_their_diacritics_and_punctuation() {
    let source = source(&[
        "employee_id",
        "given_name",
        "family_name",
        "middle_name",
        "hire_date",
    ]);
    let cases = [
        ("Zoë", "O'Brien-Smith", ""),
        ("José María", "García", ""),
        ("Łukasz", "Żółć", ""),
        ("An", "Nguyễn", "Văn"),
        ("Søren", "Kierkegård", ""),
        ("François", "Dupont", ""),
        ("Seán", "Ó Briain", ""),
        ("Mary-Kate", "D’Souza", ""),
    ];
    for (given, family, middle) in cases {
        let csv = format!(
            "employee_id,given_name,family_name,middle_name,hire_date\n1,{given},{family},{middle},2024-01-02\n"
        );
        let export = read(&source, &csv);
        assert_eq!(messages(&export), Vec::<String>::new(), "{given} {family}");
        let w = &export.workers[0];
        assert_eq!(
            (
                w.given_name.as_str(),
                w.family_name.as_str(),
                w.middle_name.as_deref()
            ),
            (given, family, (!middle.is_empty()).then_some(middle)),
        );
    }
}

#[test]
fn custom_fields_fill_the_custom_map_and_skip_empty_cells() {
    let source = source(&[
        "employee_id",
        "given_name",
        "family_name",
        "hire_date",
        "custom.badge",
        "custom.shirt_size",
    ]);
    let export = read(
        &source,
        "employee_id,given_name,family_name,hire_date,custom.badge,custom.shirt_size\n\
         1,Ann,Lee,2024-01-02,B-1, M \n\
         2,Bob,Ray,2024-01-02,,\n",
    );
    assert_eq!(messages(&export), Vec::<String>::new());
    let custom: Vec<_> = export.workers.iter().map(|w| w.custom.clone()).collect();
    assert_eq!(
        custom,
        vec![
            BTreeMap::from([
                ("badge".to_owned(), "B-1".to_owned()),
                ("shirt_size".to_owned(), "M".to_owned())
            ]),
            BTreeMap::new(),
        ]
    );
}

#[test]
fn status_is_parsed_in_any_case_and_defaults_to_active() {
    let cases = [
        ("Active", Status::Active),
        ("active", Status::Active),
        ("INACTIVE", Status::Inactive),
        ("Terminated", Status::Terminated),
        (" leave ", Status::Leave),
        ("", Status::Active),
    ];
    for (cell, expected) in cases {
        let export = read(
            &source(BASIC),
            &format!("{BASIC_HEADER}1,Ann,Lee,{cell},2024-01-02\n"),
        );
        assert_eq!(messages(&export), Vec::<String>::new(), "{cell:?}");
        assert_eq!(export.workers[0].status, expected, "{cell:?}");
    }
    let unmapped = source(&["employee_id", "given_name", "family_name", "hire_date"]);
    let export = read(
        &unmapped,
        "employee_id,given_name,family_name,hire_date,status\n1,Ann,Lee,2024-01-02,Leave\n",
    );
    assert_eq!(export.workers[0].status, Status::Active);
}

#[test]
fn bad_rows_are_reported_and_do_not_stop_the_others() {
    // (case, data rows after BASIC_HEADER, expected errors, employee ids read)
    let cases: &[(&str, &str, &[&str], &[&str])] = &[
        (
            "bad date",
            "1,Ann,Lee,Active,2024-01-02\n2,Bob,Ray,Active,2024-02-30\n3,Cy,Fox,Active,2024-01-03\n",
            &[r#"row 3 (employee 2): hire_date: "2024-02-30" is not a date in format %Y-%m-%d"#],
            &["1", "3"],
        ),
        (
            "unknown status",
            "1,Ann,Lee,Retired,2024-01-02\n2,Bob,Ray,Active,2024-01-02\n",
            &[
                r#"row 2 (employee 1): status: "Retired" is not a known status; expected one of Active, Inactive, Terminated, Leave"#,
            ],
            &["2"],
        ),
        (
            "every bad cell of a row is reported",
            "1,Ann,Lee,Gone,01/02/2024\n",
            &[
                r#"row 2 (employee 1): status: "Gone" is not a known status; expected one of Active, Inactive, Terminated, Leave"#,
                r#"row 2 (employee 1): hire_date: "01/02/2024" is not a date in format %Y-%m-%d"#,
            ],
            &[],
        ),
        (
            "duplicate employee id",
            "1,Ann,Lee,Active,2024-01-02\n2,Bob,Ray,Active,2024-01-02\n1,Ann,Leigh,Active,2024-01-02\n",
            &["row 4 (employee 1): duplicate employee_id, first seen on row 2"],
            &["1", "2"],
        ),
        (
            "a duplicate of a bad row is still a duplicate",
            "1,Ann,Lee,Active,2024-13-01\n1,Ann,Lee,Active,2024-01-02\n",
            &[
                r#"row 2 (employee 1): hire_date: "2024-13-01" is not a date in format %Y-%m-%d"#,
                "row 3 (employee 1): duplicate employee_id, first seen on row 2",
            ],
            &[],
        ),
        (
            "missing employee id",
            ",Ann,Lee,Active,2024-01-02\n",
            &["row 2: employee_id: is empty"],
            &[],
        ),
        (
            "missing family name",
            "1,Ann,,Active,2024-01-02\n",
            &["row 2 (employee 1): family_name: is empty"],
            &[],
        ),
        (
            "missing hire date of an active worker",
            "1,Ann,Lee,Active,\n2,Bob,Ray,Terminated,\n",
            &["row 2 (employee 1): hire_date: is missing for a worker with status active"],
            &["2"],
        ),
        (
            "too few cells",
            "1,Ann,Lee,Active\n2,Bob,Ray,Active,2024-01-02\n",
            &[
                r#"row 2 (employee 1): has 4 cells but the header row has 5; a cell containing the delimiter ',' must be quoted"#,
            ],
            &["2"],
        ),
        (
            "too many cells",
            "1,Ann,Lee,Smith,Active,2024-01-02\n",
            &[
                r#"row 2 (employee 1): has 6 cells but the header row has 5; a cell containing the delimiter ',' must be quoted"#,
            ],
            &[],
        ),
        (
            "filler rows of empty cells are skipped but counted",
            ",,,,\n1,Ann,Lee,Active,2024-02-31\n",
            &[r#"row 3 (employee 1): hire_date: "2024-02-31" is not a date in format %Y-%m-%d"#],
            &[],
        ),
    ];
    for (case, rows, errors, read_ids) in cases {
        let export = read(&source(BASIC), &format!("{BASIC_HEADER}{rows}"));
        assert_eq!(messages(&export), errors.to_vec(), "{case}");
        assert_eq!(ids(&export), read_ids.to_vec(), "{case}");
    }
}

#[test]
fn errors_carry_row_employee_and_field() {
    let export = read(
        &source(BASIC),
        &format!("{BASIC_HEADER}1,Ann,Lee,Active,2024-01-02\n7,Bob,Ray,Nope,2024-01-02\n"),
    );
    assert_eq!(
        export.errors,
        vec![RowError {
            row: 3,
            employee_id: Some("7".into()),
            field: Some("status".into()),
            message: r#""Nope" is not a known status; expected one of Active, Inactive, Terminated, Leave"#.into(),
        }]
    );
}

#[test]
fn other_fields_are_checked() {
    let source = source(&[
        "employee_id",
        "given_name",
        "family_name",
        "hire_date",
        "termination_time",
        "as_of",
        "time_zone",
        "manager_id",
    ]);
    let header = "employee_id,given_name,family_name,hire_date,termination_time,as_of,time_zone,manager_id\n";
    let cases = [
        (
            "1,Ann,Lee,2024-01-02,5pm,,,",
            r#"row 2 (employee 1): termination_time: "5pm" is not a time in format HH:MM (24-hour, e.g. 17:00)"#,
        ),
        (
            "1,Ann,Lee,2024-01-02,,yesterday,,",
            r#"row 2 (employee 1): as_of: "yesterday" is not an RFC 3339 timestamp (e.g. 2026-12-01T09:00:00Z)"#,
        ),
        (
            "1,Ann,Lee,2024-01-02,,,Europe/Londn,",
            r#"row 2 (employee 1): time_zone: "Europe/Londn" is not an IANA time zone name (e.g. Europe/London)"#,
        ),
        (
            "1,Ann,Lee,2024-01-02,,,,1",
            "row 2 (employee 1): manager_id: a worker cannot be their own manager",
        ),
    ];
    for (row, expected) in cases {
        let export = read(&source, &format!("{header}{row}\n"));
        assert_eq!(messages(&export), vec![expected.to_owned()], "{row}");
        assert!(export.workers.is_empty(), "{row}");
    }
}

#[test]
fn invalid_utf8_cell_is_a_row_error() {
    let mut data = BASIC_HEADER.as_bytes().to_vec();
    data.extend_from_slice(b"1,Zo\xEB,Lee,Active,2024-01-02\n2,Bob,Ray,Active,2024-01-02\n");
    let export = read_export("hr", &source(BASIC), &data, as_of()).unwrap();
    assert_eq!(
        messages(&export),
        vec![
            r#"row 2 (employee 1): given_name: is not valid UTF-8; save the export as "CSV UTF-8""#
        ]
    );
    assert_eq!(ids(&export), vec!["2"]);
}

#[test]
fn whole_file_problems_are_export_errors() {
    let mapped = SourceConfig {
        columns: [
            ("employee_id", "Employee ID"),
            ("given_name", "First Name"),
            ("family_name", "Last Name"),
            ("hire_date", "Hire Date"),
        ]
        .into_iter()
        .map(|(f, h)| (f.to_owned(), h.to_owned()))
        .collect(),
        ..source(&[])
    };
    let cases: &[(&str, SourceConfig, &[u8], &str)] = &[
        (
            "empty",
            mapped.clone(),
            b"",
            "the export is empty: it has no header row",
        ),
        (
            "only a BOM and blank lines",
            mapped.clone(),
            b"\xEF\xBB\xBF\n\r\n",
            "the export is empty: it has no header row",
        ),
        (
            "missing header",
            mapped.clone(),
            b"Employee ID,First Name,Last Name,Start Date\n1,Ann,Lee,2024-01-02\n",
            r#"the column for `hire_date` (header "Hire Date") is not in the export; its headers are "Employee ID", "First Name", "Last Name", "Start Date""#,
        ),
        (
            "wrong delimiter",
            mapped.clone(),
            b"Employee ID;First Name;Last Name;Hire Date\n",
            r#"the column for `employee_id` (header "Employee ID") is not in the export; its headers are "Employee ID;First Name;Last Name;Hire Date" (the header row is one cell: is the delimiter ';' rather than ','?)"#,
        ),
        (
            "duplicate header",
            mapped.clone(),
            b"Employee ID,First Name,Last Name,Hire Date,Hire Date\n",
            r#"the column for `hire_date` is ambiguous: the header "Hire Date" appears 2 times in the header row"#,
        ),
        (
            "header not UTF-8",
            mapped.clone(),
            b"Employee ID,Pr\xE9nom,Last Name,Hire Date\n",
            r#"the export is not valid CSV: the header row is not valid UTF-8; save the export as "CSV UTF-8""#,
        ),
        (
            "unknown field",
            source(&["employee_id", "given_name", "family_name", "nickname"]),
            b"employee_id,given_name,family_name,nickname\n",
            "unknown field `nickname` in the column mapping, expected one of employee_id, given_name, family_name, middle_name, preferred_name, personal_email, work_email, status, hire_date, termination_date, termination_type, worker_type, job_title, department, division, cost_center, company, location, country, time_zone, manager_id, termination_time, as_of or custom.<name>",
        ),
        (
            "non-ASCII delimiter",
            SourceConfig {
                delimiter: '§',
                ..mapped.clone()
            },
            b"Employee ID",
            "the delimiter '§' is not a single-byte (ASCII) character, which CSV needs",
        ),
    ];
    for (case, source, data, expected) in cases {
        let error = read_export("hr", source, data, as_of()).unwrap_err();
        assert_eq!(error.to_string(), *expected, "{case}");
    }
}

#[test]
fn a_utf8_bom_is_ignored() {
    let export = read(
        &source(BASIC),
        &format!("\u{FEFF}{BASIC_HEADER}1,Ann,Lee,Active,2024-01-02\n"),
    );
    assert_eq!(messages(&export), Vec::<String>::new());
    assert_eq!(ids(&export), vec!["1"]);
}

#[test]
fn headers_are_trimmed_and_mapped_by_name_in_any_order() {
    let source = SourceConfig {
        columns: [
            ("employee_id", "Employee ID"),
            ("given_name", "First Name"),
            ("family_name", "Last Name"),
            ("hire_date", "Hire Date"),
        ]
        .into_iter()
        .map(|(f, h)| (f.to_owned(), h.to_owned()))
        .collect(),
        ..source(&[])
    };
    let export = read(
        &source,
        " Hire Date ,Last Name, Employee ID,First Name\n2024-01-02,Lee,1,Ann\n",
    );
    let mut expected = worker("1", "Ann", "Lee");
    expected.hire_date = Some(date(2024, 1, 2));
    assert_eq!(export.workers, vec![expected]);
}

#[test]
fn semicolon_delimiter() {
    let source = SourceConfig {
        delimiter: ';',
        ..source(&[
            "employee_id",
            "given_name",
            "family_name",
            "hire_date",
            "job_title",
        ])
    };
    let export = read(
        &source,
        "employee_id;given_name;family_name;hire_date;job_title\n1;François;Dupont;2024-01-02;Director, Sales\n2;Bob;Ray;2024-01-02\n",
    );
    assert_eq!(export.workers[0].given_name, "François");
    assert_eq!(
        export.workers[0].job_title.as_deref(),
        Some("Director, Sales")
    );
    assert_eq!(
        messages(&export),
        vec![
            "row 3 (employee 2): has 4 cells but the header row has 5; a cell containing the delimiter ';' must be quoted"
        ]
    );
}

#[test]
fn custom_date_format() {
    let source = SourceConfig {
        date_format: "%d/%m/%Y".into(),
        ..source(&[
            "employee_id",
            "given_name",
            "family_name",
            "hire_date",
            "termination_date",
        ])
    };
    let export = read(
        &source,
        "employee_id,given_name,family_name,hire_date,termination_date\n\
         1,Ann,Lee,04/03/2024,31/12/2026\n\
         1042,Bob,Ray,31/02/2024,\n\
         3,Cy,Fox,2024-03-04,\n",
    );
    assert_eq!(
        messages(&export),
        vec![
            r#"row 3 (employee 1042): hire_date: "31/02/2024" is not a date in format %d/%m/%Y"#,
            r#"row 4 (employee 3): hire_date: "2024-03-04" is not a date in format %d/%m/%Y"#,
        ]
    );
    let w = &export.workers[0];
    assert_eq!(
        (w.hire_date, w.termination_date),
        (Some(date(2024, 3, 4)), Some(date(2026, 12, 31)))
    );
}

#[test]
fn quoted_cells_keep_commas_quotes_and_line_breaks() {
    let source = source(&[
        "employee_id",
        "given_name",
        "family_name",
        "hire_date",
        "job_title",
        "location",
    ]);
    let export = read(
        &source,
        "employee_id,given_name,family_name,hire_date,job_title,location\n\
         1,Ann,Lee,2024-01-02,\"Director, Sales EMEA\",\"Sydney, NSW\"\n\
         2,Bob,\"O\"\"Hara\",2024-01-02,\"Head of\nPeople\",London\n\
         3,Cy,Fox,2024-02-30,,\n",
    );
    let w = &export.workers;
    assert_eq!(w[0].job_title.as_deref(), Some("Director, Sales EMEA"));
    assert_eq!(w[0].location.as_deref(), Some("Sydney, NSW"));
    assert_eq!(w[1].family_name, "O\"Hara");
    assert_eq!(w[1].job_title.as_deref(), Some("Head of\nPeople"));
    // The line break inside row 3's cell does not shift the row numbers after it.
    assert_eq!(
        messages(&export),
        vec![r#"row 4 (employee 3): hire_date: "2024-02-30" is not a date in format %Y-%m-%d"#]
    );
}

#[test]
fn row_numbers_count_blank_lines_but_not_line_breaks_in_cells() {
    let bad = "9,Bad,Row,Active,2024-02-30";
    let cases = [
        (
            "LF",
            format!("{BASIC_HEADER}1,A,B,Active,2024-01-02\n{bad}\n"),
            3,
        ),
        (
            "CRLF",
            format!(
                "{}1,A,B,Active,2024-01-02\r\n{bad}\r\n",
                BASIC_HEADER.replace('\n', "\r\n")
            ),
            3,
        ),
        (
            "CR",
            format!(
                "{}1,A,B,Active,2024-01-02\r{bad}\r",
                BASIC_HEADER.replace('\n', "\r")
            ),
            3,
        ),
        (
            "blank lines LF",
            format!("{BASIC_HEADER}\n1,A,B,Active,2024-01-02\n\n\n{bad}\n"),
            6,
        ),
        (
            "blank lines CRLF",
            format!(
                "{}\r\n1,A,B,Active,2024-01-02\r\n\r\n\r\n{bad}",
                BASIC_HEADER.replace('\n', "\r\n")
            ),
            6,
        ),
        (
            "line breaks in quoted cells",
            format!(
                "{BASIC_HEADER}1,\"A\r\nB\nC\",D,Active,2024-01-02\n2,\"X\nY\",D,Active,2024-01-02\r\n{bad}\n"
            ),
            4,
        ),
        ("no final line break", format!("{BASIC_HEADER}{bad}"), 2),
        ("BOM", format!("\u{FEFF}{BASIC_HEADER}{bad}\n"), 2),
    ];
    for (case, csv, row) in cases {
        let export = read(&source(BASIC), &csv);
        assert_eq!(
            messages(&export),
            vec![format!(
                r#"row {row} (employee 9): hire_date: "2024-02-30" is not a date in format %Y-%m-%d"#
            )],
            "{case}"
        );
    }
}

/// The shipped example: the config parses, its templates render, and the export reads without
/// an error; its copy with a bad row reads with exactly that one.
#[test]
fn the_example_config_and_export_work_together() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let text = std::fs::read_to_string(format!("{root}/hrsync.toml")).unwrap();
    let config = Config::parse(&text, "examples/hrsync.toml").unwrap_or_else(|e| panic!("{e}"));
    let source = config.source("hr").unwrap();
    let bad = std::fs::read(format!("{root}/workers-with-a-bad-row.csv")).unwrap();
    let with_bad_row = read_export("hr", source, &bad, as_of()).unwrap_or_else(|e| panic!("{e}"));
    // Employee 1029's hire date is 30 February: the one deliberately bad row.
    assert_eq!(
        messages(&with_bad_row),
        vec![r#"row 30 (employee 1029): hire_date: "2026-02-30" is not a date in format %Y-%m-%d"#]
    );
    assert_eq!(with_bad_row.workers.len(), 35);

    let data = std::fs::read(format!("{root}/workers.csv")).unwrap();
    let export = read_export("hr", source, &data, as_of()).unwrap_or_else(|e| panic!("{e}"));
    assert!(messages(&export).is_empty(), "{:?}", messages(&export));
    assert!(export.workers.len() >= 30, "{}", export.workers.len());
    assert_eq!(export.workers.len(), 35);

    let by_id: BTreeMap<&str, &Worker> = export
        .workers
        .iter()
        .map(|w| (w.employee_id.as_str(), w))
        .collect();
    let engine = config.engine();
    let render =
        |key: &str, id: &str, n: Option<u32>| engine.render(key, &context(by_id[id], n)).unwrap();

    // Every manager is a worker of the export; only the CEO and the board member have none.
    for w in &export.workers {
        match &w.manager_id {
            Some(manager) => assert!(
                by_id.contains_key(manager.as_str()),
                "{} -> {manager}",
                w.employee_id
            ),
            None => assert!(
                ["1001", "1035"].contains(&w.employee_id.as_str()),
                "{}",
                w.employee_id
            ),
        }
    }

    let upns = [
        ("1003", 0, None, "zoe.obrien-smith@acme.example"),
        ("1004", 0, None, "jose.maria.garcia@acme.example"),
        ("1005", 0, None, "lukasz.zolc@acme.example"),
        ("1006", 0, None, "an.nguyen@acme.example"),
        ("1007", 0, None, "soren.kierkegard@acme.example"),
        ("1013", 0, None, "kate.lindqvist@acme.example"),
        ("1033", 0, None, "sean.o.briain@acme.example"),
        ("1034", 0, None, "mary-kate.dsouza@acme.example"),
        ("1009", 0, None, "jane.smith@acme.example"),
        ("1011", 1, None, "j.smith@acme.example"),
        ("1012", 2, Some(2), "jane.smith2@acme.example"),
        ("1030", 1, None, "rk.patel@acme.example"),
    ];
    for (id, index, n, expected) in upns {
        assert_eq!(
            render(&format!("identity.upn[{index}]"), id, n),
            expected,
            "{id}"
        );
    }
    assert_eq!(
        render("identity.display_name", "1013", None),
        "Kate Lindqvist"
    );
    assert_eq!(render("identity.display_name", "1006", None), "An Nguyễn");
    assert_eq!(render("attributes.usageLocation", "1006", None), "AU");
    assert_eq!(
        render("attributes.jobTitle", "1008", None),
        "Director, Sales EMEA"
    );

    let in_scope = |id: &str| {
        engine
            .test("lifecycle.scope", &context(by_id[id], None))
            .unwrap()
    };
    assert!(in_scope("1001") && in_scope("1014"));
    assert!(!in_scope("1015"), "the intern is out of scope");
    assert!(!in_scope("1035"), "the board member is out of scope");

    // Access rules by name: (rule, employee, applies).
    let applies = |name: &str, id: &str| {
        let index = config
            .access
            .iter()
            .position(|r| r.name.as_deref() == Some(name))
            .unwrap();
        config.access[index].when.is_none()
            || engine
                .test(&format!("access[{index}].when"), &context(by_id[id], None))
                .unwrap()
    };
    for (rule, id, expected) in [
        ("All Staff", "1001", true),
        ("Employees outside Engineering", "1001", true),
        ("Employees outside Engineering", "1004", false),
        ("Engineering", "1004", true),
        ("Engineering", "1014", false),
        ("Contractors", "1014", true),
        ("Sales", "1008", true),
        ("US staff", "1009", true),
        ("US staff", "1011", false),
        ("Managers of Engineering", "1003", true),
        ("Managers of Engineering", "1005", false),
    ] {
        assert_eq!(applies(rule, id), expected, "{rule} / {id}");
    }

    let sydney_leaver = by_id["1024"];
    assert_eq!(sydney_leaver.time_zone.as_deref(), Some("Australia/Sydney"));
    assert_eq!(
        sydney_leaver.current_termination_date(),
        Some(date(2026, 12, 4))
    );
    let rehire = by_id["1028"];
    assert_eq!(rehire.termination_date, Some(date(2025, 6, 30)));
    assert_eq!(rehire.current_termination_date(), None);
    assert_eq!(
        by_id["1026"].termination_type.as_deref(),
        Some("involuntary")
    );
    assert_eq!(by_id["1027"].status, Status::Leave);
    assert_eq!(
        by_id["1011"].time_zone, None,
        "falls back to lifecycle.default_time_zone"
    );
    assert_eq!(
        by_id["1001"].custom.get("badge").map(String::as_str),
        Some("B-0001")
    );
}

#[test]
fn an_as_of_later_than_the_run_plus_five_minutes_is_refused() {
    let source = source(&[
        "employee_id",
        "given_name",
        "family_name",
        "hire_date",
        "as_of",
    ]);
    let header = "employee_id,given_name,family_name,hire_date,as_of\n";
    // AS_OF is the run's time: four minutes ahead is a clock out of step, 2099 is not.
    let rows = "1,Ann,Lee,2024-01-02,2026-12-01T09:04:00Z\n2,Bob,Ray,2024-01-02,2099-01-01T00:00:00Z\n3,Cy,Fox,2024-01-02,2026-12-01T09:06:00Z\n";
    let export = read(&source, &format!("{header}{rows}"));
    assert_eq!(ids(&export), ["1"]);
    let expected = "as_of: is more than 5 minutes after the export was read; a record cannot speak for a later time (it would make every real change until then look stale)";
    assert_eq!(
        messages(&export),
        [
            format!("row 3 (employee 2): {expected}"),
            format!("row 4 (employee 3): {expected}")
        ]
    );
}

#[test]
fn an_employee_or_manager_id_that_could_be_an_internal_key_is_a_row_error() {
    let source = source(&[
        "employee_id",
        "given_name",
        "family_name",
        "hire_date",
        "manager_id",
    ]);
    let header = "employee_id,given_name,family_name,hire_date,manager_id\n";
    let rows = "#webhook,Ann,Lee,2024-01-02,\n2,Bob,Ray,2024-01-02,a:b\n..,Cy,Fox,2024-01-02,\n";
    let export = read(&source, &format!("{header}{rows}"));
    assert!(export.workers.is_empty());
    let fields: Vec<Option<&str>> = export.errors.iter().map(|e| e.field.as_deref()).collect();
    assert_eq!(
        fields,
        [Some("employee_id"), Some("manager_id"), Some("employee_id")]
    );
}
