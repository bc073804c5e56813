//! CSV exports: the lowest common denominator of HR systems.
//!
//! `[source.<name>] kind = "csv"` maps canonical worker fields to the export's column
//! headers. [`read_export`] turns one export into [`Worker`] snapshots; a row that cannot be
//! read becomes a [`RowError`] with its spreadsheet row number and does not stop the others.
//! Only a problem with the file as a whole (no header, a configured column missing) is an
//! [`ExportError`].
//!
//! Reading rules:
//! - A UTF-8 byte order mark at the start is ignored; header cells and data cells are trimmed.
//! - An empty cell is an absent value. A row whose cells are all empty (a spreadsheet's
//!   `,,,,` filler) is skipped; a row with a different number of cells from the header row
//!   is an error.
//! - Row numbers are what a spreadsheet shows: the header is row 1, the first data row is
//!   row 2; blank lines count as rows, line breaks inside quoted cells do not.
//! - `status` is Active / Inactive / Terminated / Leave in any case; unmapped or empty
//!   means Active.
//! - Dates use `date_format` (strftime); `termination_time` is "HH:MM"; `as_of` is an
//!   RFC 3339 timestamp and defaults to the time the export was taken; a row whose `as_of`
//!   is more than [`AS_OF_SKEW`] after that is an error (a snapshot older than the stored
//!   one is ignored, so a far-future `as_of` would make every real change stale).
//! - `custom.<name>` columns fill `Worker::custom[name]`; empty cells are left out.
//! - An `employee_id` seen on an earlier row makes the later row an error, and so does an
//!   `employee_id` or `manager_id` that breaks the rule every source's ids follow
//!   ([`crate::connector::id_problem`]: e.g. `..`, or `#webhook`, one of hrsync's own keys).

use std::collections::HashMap;
use std::fmt;

use hrsync_core::config::{LocalTime, SourceConfig};
use hrsync_core::template::CANONICAL_FIELDS;
use hrsync_core::{Status, Worker, WorkerKey};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

#[cfg(test)]
mod tests;

/// What one export yielded: the workers that could be read and the rows that could not.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvExport {
    pub workers: Vec<Worker>,
    pub errors: Vec<RowError>,
}

/// A row that could not be read, e.g.
/// `row 7 (employee 1042): hire_date: "31/02/2024" is not a date in format %d/%m/%Y`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct RowError {
    /// The row as a spreadsheet numbers it: the header is row 1, the first data row is row 2.
    pub row: usize,
    /// The row's employee id, when it has one.
    pub employee_id: Option<String>,
    /// The canonical field at fault (`hire_date`, `custom.badge`...), when it is one field.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row {}", self.row)?;
        if let Some(id) = &self.employee_id {
            write!(f, " (employee {id})")?;
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A problem with the export as a whole: no worker in it can be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("the export is empty: it has no header row")]
    Empty,
    #[error("the export is not valid CSV: {0}")]
    Invalid(String),
    #[error("the delimiter {0:?} is not a single-byte (ASCII) character, which CSV needs")]
    Delimiter(char),
    #[error(
        "unknown field `{0}` in the column mapping, expected one of {fields}, termination_time, as_of or custom.<name>",
        fields = CANONICAL_FIELDS.join(", ")
    )]
    UnknownField(String),
    #[error("{}", missing_column(field, header, present, *delimiter))]
    MissingColumn {
        /// The canonical field whose column is missing.
        field: String,
        /// The header the config maps it to.
        header: String,
        /// The headers the export does have.
        present: Vec<String>,
        delimiter: char,
    },
    #[error(
        "the column for `{field}` is ambiguous: the header {header:?} appears {count} times in the header row"
    )]
    DuplicateHeader {
        field: String,
        header: String,
        count: usize,
    },
}

fn missing_column(field: &str, header: &str, present: &[String], delimiter: char) -> String {
    let listed: Vec<String> = present.iter().map(|h| format!("{h:?}")).collect();
    let mut message = format!(
        "the column for `{field}` (header {header:?}) is not in the export; its headers are {}",
        listed.join(", ")
    );
    if let [only] = present
        && let Some(other) = [',', ';', '\t', '|']
            .into_iter()
            .find(|&c| c != delimiter && only.contains(c))
    {
        message.push_str(&format!(
            " (the header row is one cell: is the delimiter {other:?} rather than {delimiter:?}?)"
        ));
    }
    message
}

/// How far a row's `as_of` may be ahead of the time the export was read (clocks out of
/// step): the same 5 minutes a signed delivery's timestamp may be off.
pub const AS_OF_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// The accepted `status` values, for error messages.
const STATUSES: &str = "Active, Inactive, Terminated, Leave";

/// Reads one CSV export of the source `source_name` (the prefix of every worker key).
///
/// `as_of` is when the export was taken; it stamps every worker unless the `as_of`
/// column gives a row its own time.
pub fn read_export(
    source_name: &str,
    source: &SourceConfig,
    data: &[u8],
    as_of: Timestamp,
) -> Result<CsvExport, ExportError> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let delimiter = u8::try_from(source.delimiter)
        .ok()
        .filter(u8::is_ascii)
        .ok_or(ExportError::Delimiter(source.delimiter))?;
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(data);
    let mut records = reader.byte_records();
    let mut rows = RowCounter::new(data);

    let header = loop {
        match records.next() {
            None => return Err(ExportError::Empty),
            Some(Err(e)) => return Err(ExportError::Invalid(e.to_string())),
            Some(Ok(record)) => {
                rows.next(&record);
                if !is_blank(&record) {
                    break record;
                }
            }
        }
    };
    let headers: Vec<String> = header
        .iter()
        .map(|cell| {
            std::str::from_utf8(cell)
                .map(|text| text.trim().to_owned())
                .map_err(|_| {
                    ExportError::Invalid(
                        "the header row is not valid UTF-8; save the export as \"CSV UTF-8\""
                            .into(),
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    let layout = Layout::new(source, &headers)?;

    let mut export = CsvExport {
        workers: Vec::new(),
        errors: Vec::new(),
    };
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    for record in records {
        let record = record.map_err(|e| ExportError::Invalid(e.to_string()))?;
        let row = rows.next(&record);
        if is_blank(&record) {
            continue;
        }
        match layout.read_row(source_name, source, &record, row, as_of, &mut first_seen) {
            Ok(worker) => export.workers.push(worker),
            Err(errors) => export.errors.extend(errors),
        }
    }
    Ok(export)
}

/// A row with no content: every cell empty or whitespace.
fn is_blank(record: &::csv::ByteRecord) -> bool {
    record.iter().all(|cell| cell.trim_ascii().is_empty())
}

/// Which column holds which canonical field.
#[derive(Debug)]
struct Layout {
    /// (canonical field, column index), left to right.
    columns: Vec<(String, usize)>,
    /// The header row's width.
    width: usize,
}

impl Layout {
    fn new(source: &SourceConfig, headers: &[String]) -> Result<Self, ExportError> {
        let mut columns = Vec::with_capacity(source.columns.len());
        for (field, header) in &source.columns {
            let known = CANONICAL_FIELDS.contains(&field.as_str())
                || matches!(field.as_str(), "as_of" | "termination_time")
                || field
                    .strip_prefix("custom.")
                    .is_some_and(|name| !name.is_empty());
            if !known {
                return Err(ExportError::UnknownField(field.clone()));
            }
            let wanted = header.trim();
            let matches: Vec<usize> = (0..headers.len())
                .filter(|&i| headers[i] == wanted)
                .collect();
            match matches.as_slice() {
                [index] => columns.push((field.clone(), *index)),
                [] => {
                    return Err(ExportError::MissingColumn {
                        field: field.clone(),
                        header: header.clone(),
                        present: headers.iter().filter(|h| !h.is_empty()).cloned().collect(),
                        delimiter: source.delimiter,
                    });
                }
                several => {
                    return Err(ExportError::DuplicateHeader {
                        field: field.clone(),
                        header: header.clone(),
                        count: several.len(),
                    });
                }
            }
        }
        // Left to right, so a row's errors read in the order of its cells.
        columns.sort_by_key(|&(_, index)| index);
        Ok(Self {
            columns,
            width: headers.len(),
        })
    }

    fn index(&self, field: &str) -> Option<usize> {
        self.columns
            .iter()
            .find(|(f, _)| f == field)
            .map(|&(_, index)| index)
    }

    /// One data row into a validated worker, or every problem found in it.
    fn read_row(
        &self,
        source_name: &str,
        source: &SourceConfig,
        record: &::csv::ByteRecord,
        row: usize,
        as_of: Timestamp,
        first_seen: &mut HashMap<String, usize>,
    ) -> Result<Worker, Vec<RowError>> {
        let cell = |index: usize| -> Result<Option<&str>, ()> {
            match record.get(index) {
                None => Ok(None),
                Some(bytes) => {
                    let text = std::str::from_utf8(bytes).map_err(|_| ())?.trim();
                    Ok((!text.is_empty()).then_some(text))
                }
            }
        };
        let employee_id = self
            .index("employee_id")
            .and_then(|index| cell(index).ok().flatten())
            .map(str::to_owned);
        let error = |field: Option<&str>, message: String| RowError {
            row,
            employee_id: employee_id.clone(),
            field: field.map(str::to_owned),
            message,
        };

        if record.len() != self.width {
            return Err(vec![error(
                None,
                format!(
                    "has {} cells but the header row has {}; a cell containing the delimiter {:?} must be quoted",
                    record.len(),
                    self.width,
                    source.delimiter
                ),
            )]);
        }

        let mut errors = Vec::new();
        let key = WorkerKey::new(source_name, employee_id.clone().unwrap_or_default());
        let mut worker = Worker::new(key, "", "", as_of);
        for (field, index) in &self.columns {
            let value = match cell(*index) {
                Ok(Some(value)) => value,
                Ok(None) => continue,
                Err(()) => {
                    errors.push(error(
                        Some(field),
                        "is not valid UTF-8; save the export as \"CSV UTF-8\"".into(),
                    ));
                    continue;
                }
            };
            if let Err(message) = set_field(&mut worker, field, value, &source.date_format) {
                errors.push(error(Some(field), message));
            }
        }

        // Both become worker keys: the rule every source's ids follow.
        for (field, id) in [
            ("employee_id", employee_id.as_deref()),
            ("manager_id", worker.manager_id.as_deref()),
        ] {
            if let Some(problem) = id.and_then(crate::connector::id_problem) {
                errors.push(error(Some(field), problem.to_owned()));
            }
        }
        if worker.as_of.duration_since(as_of) > AS_OF_SKEW {
            errors.push(error(
                Some("as_of"),
                "is more than 5 minutes after the export was read; a record cannot speak for a later time (it would make every real change until then look stale)".into(),
            ));
        }
        if let Some(id) = &employee_id {
            if let Some(first) = first_seen.get(id) {
                errors.push(error(
                    None,
                    format!("duplicate employee_id, first seen on row {first}"),
                ));
            } else {
                first_seen.insert(id.clone(), row);
            }
        }
        if errors.is_empty()
            && let Err(invalid) = worker.validate_record()
        {
            errors.push(error(Some(invalid.field), invalid.problem));
        }
        if errors.is_empty() {
            Ok(worker)
        } else {
            Err(errors)
        }
    }
}

/// Stores one non-empty, trimmed cell; the error message does not repeat the field name.
fn set_field(
    worker: &mut Worker,
    field: &str,
    value: &str,
    date_format: &str,
) -> Result<(), String> {
    let text = Some(value.to_owned());
    match field {
        "employee_id" => worker.employee_id = value.to_owned(),
        "given_name" => worker.given_name = value.to_owned(),
        "family_name" => worker.family_name = value.to_owned(),
        "middle_name" => worker.middle_name = text,
        "preferred_name" => worker.preferred_name = text,
        "personal_email" => worker.personal_email = text,
        "work_email" => worker.work_email = text,
        "status" => {
            worker.status = Status::parse(value).ok_or_else(|| {
                format!("{value:?} is not a known status; expected one of {STATUSES}")
            })?;
        }
        "hire_date" => worker.hire_date = Some(parse_date(value, date_format)?),
        "termination_date" => worker.termination_date = Some(parse_date(value, date_format)?),
        "termination_time" => {
            let time = LocalTime::parse(value).ok_or_else(|| {
                format!("{value:?} is not a time in format HH:MM (24-hour, e.g. 17:00)")
            })?;
            worker.termination_time = Some(time.0);
        }
        "termination_type" => worker.termination_type = text,
        "worker_type" => worker.worker_type = text,
        "job_title" => worker.job_title = text,
        "department" => worker.department = text,
        "division" => worker.division = text,
        "cost_center" => worker.cost_center = text,
        "company" => worker.company = text,
        "location" => worker.location = text,
        "country" => worker.country = text,
        "time_zone" => worker.time_zone = text,
        "manager_id" => worker.manager_id = text,
        "as_of" => {
            worker.as_of = value.parse().map_err(|_| {
                format!("{value:?} is not an RFC 3339 timestamp (e.g. 2026-12-01T09:00:00Z)")
            })?;
        }
        other => match other.strip_prefix("custom.") {
            Some(name) => {
                worker.custom.insert(name.to_owned(), value.to_owned());
            }
            // `Layout::new` accepts only the fields above.
            None => return Err(format!("unknown field `{other}`")),
        },
    }
    Ok(())
}

fn parse_date(value: &str, format: &str) -> Result<Date, String> {
    Date::strptime(format, value).map_err(|_| format!("{value:?} is not a date in format {format}"))
}

/// Spreadsheet row numbers of successive records: the line of each record's first byte,
/// less the line breaks inside the quoted cells of the records before it.
#[derive(Debug)]
struct RowCounter<'a> {
    data: &'a [u8],
    /// Where the previous record's content started, and its row.
    previous: Option<(usize, usize)>,
    /// Line breaks inside the previous record's cells.
    embedded: usize,
}

impl<'a> RowCounter<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            previous: None,
            embedded: 0,
        }
    }

    /// The row of `record`, which must be the record after the previous one given.
    fn next(&mut self, record: &::csv::ByteRecord) -> usize {
        let data = self.data;
        let position = record
            .position()
            .map_or(data.len(), |p| {
                usize::try_from(p.byte()).unwrap_or(data.len())
            })
            .min(data.len());
        // The reader may stop before the `\n` of a CRLF, and skips blank lines silently.
        let start = data[position..]
            .iter()
            .position(|b| !matches!(b, b'\r' | b'\n'))
            .map_or(data.len(), |offset| position + offset);
        let row = match self.previous {
            None => 1 + line_breaks(&data[..start]),
            Some((previous_start, previous_row)) => (previous_row
                + line_breaks(&data[previous_start..start]))
            .saturating_sub(self.embedded),
        };
        self.previous = Some((start, row));
        self.embedded = record.iter().map(line_breaks).sum();
        row
    }
}

/// Line breaks in `bytes`: `\r\n`, `\n` and a lone `\r` each count once.
fn line_breaks(bytes: &[u8]) -> usize {
    let mut count = 0;
    let mut iter = bytes.iter().peekable();
    while let Some(&byte) = iter.next() {
        match byte {
            b'\n' => count += 1,
            b'\r' => {
                count += 1;
                if iter.peek() == Some(&&b'\n') {
                    iter.next();
                }
            }
            _ => {}
        }
    }
    count
}
