//! Signed JSON: any system that can make an HTTP POST can be an HR source.
//!
//! `[source.<name>] kind = "signed-json"` receives worker records as JSON, each delivery
//! signed with the source's `webhook_secret`.
//!
//! # Signing
//!
//! A delivery carries these headers (names in any case, as HTTP has them):
//!
//! | header | value |
//! |---|---|
//! | `X-Hrsync-Timestamp` | when it was signed: Unix time in whole seconds, decimal digits only |
//! | `X-Hrsync-Signature` | `v1=` + the lowercase hex HMAC-SHA256, keyed with the secret, of `{timestamp}.{body}`: the timestamp header's text, a `.`, and the raw body bytes |
//! | `X-Hrsync-Delivery` | optional, unsigned: the sender's id of the delivery, for tracing only |
//!
//! - Several signatures may be given, comma-separated (`v1=<hex>,v1=<hex>`), so a secret can
//!   be rotated: sign with both the old and the new one until every receiver has the new
//!   one. Any one that matches passes. Entries of another scheme (`v2=...`) are ignored, so a
//!   later scheme can be added beside `v1`; a `v1` entry must be exactly 64 lowercase hex
//!   digits, and at least one must be there, at most [`MAX_SIGNATURES`] (5): each is an
//!   HMAC to compute, so a header listing thousands is refused before any is checked.
//! - Signatures are compared in constant time.
//! - The timestamp must be within 5 minutes of the receiver's clock, either way: an old
//!   delivery replayed later is refused. A sender that retries signs again with a new
//!   timestamp.
//! - `X-Hrsync-Delivery` is not signed, so nothing is decided on it: it is still accepted
//!   (and logged at debug) so a sender can trace its deliveries. Deduplication uses only
//!   signed bytes ([`delivery_id`]: the signed timestamp and the body). Were the header the
//!   dedupe id, a captured body replayed under the id of the sender's next delivery would
//!   make that delivery (say, a termination) a "duplicate" that is never applied. A replay
//!   within the 5 minutes, under any id, is the same delivery and taken once.
//!
//! A sender in shell:
//!
//! ```sh
//! ts=$(date +%s)
//! sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
//! curl -H "X-Hrsync-Timestamp: $ts" -H "X-Hrsync-Signature: v1=$sig" \
//!      -H 'Content-Type: application/json' --data-binary "$body" "$URL"
//! ```
//!
//! # Body
//!
//! One worker as a JSON object, or several as `{"workers": [...]}` (at most
//! [`MAX_WORKERS`]). A worker object uses the field names of [`Worker`]:
//!
//! ```json
//! {"employee_id": "1042", "given_name": "Ada", "family_name": "Lovelace",
//!  "status": "active", "hire_date": "2026-01-05", "department": "Engineering",
//!  "custom": {"badge": "B-7"}}
//! ```
//!
//! - `employee_id`, `given_name`, `family_name` and `status` are required; `status` is
//!   active / inactive / terminated / leave in any case.
//! - `key` is not accepted: it is `<source name>:<employee_id>`.
//! - `as_of` (RFC 3339) is optional and defaults to the signed timestamp; one more than 5
//!   minutes (the signature's tolerance) after the signed timestamp is refused: a snapshot
//!   older than the stored one is ignored, so a far-future `as_of` would make every real
//!   change until then stale.
//! - Dates are `YYYY-MM-DD`; `termination_time` is `HH:MM` or `HH:MM:SS`.
//! - Strings are trimmed; `null`, or an empty string, is an absent value. `custom` is an
//!   object of strings.
//! - An unknown field is an error naming it, and so is every value of the wrong type.
//! - A key given twice in one object is refused: it is ambiguous (the last would win).
//! - Each worker is validated as every source's workers are ([`Worker::validate`]). A
//!   delivery is taken whole or refused whole: the first bad worker is the error, naming
//!   its index in `workers`, the field and the rule it breaks, never a value from the body
//!   (not even the employee id: the answer goes into the audit and the log).

use std::collections::HashMap;
use std::fmt;

use hmac::{Hmac, Mac};
use hrsync_core::config::LocalTime;
use hrsync_core::template::CANONICAL_FIELDS;
use hrsync_core::{Status, Worker, WorkerKey};
use jiff::civil::{Date, Time};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub const TIMESTAMP_HEADER: &str = "X-Hrsync-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Hrsync-Signature";
pub const DELIVERY_HEADER: &str = "X-Hrsync-Delivery";

/// How far the signed timestamp may be from the receiver's clock, either way.
pub const TOLERANCE: SignedDuration = SignedDuration::from_mins(5);

/// The most `v1` signatures one delivery may list: each is an HMAC to check, and a
/// rotation needs two.
pub const MAX_SIGNATURES: usize = 5;

/// The most workers one delivery may carry.
pub const MAX_WORKERS: usize = 1000;

type HmacSha256 = Hmac<Sha256>;

/// The headers of a delivery that [`verify`] reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignedHeaders<'a> {
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub delivery: Option<&'a str>,
}

impl<'a> SignedHeaders<'a> {
    /// Reads the headers through `get`, which is given each header name as written in
    /// [`TIMESTAMP_HEADER`] etc. and must match names without regard to case.
    pub fn from_lookup(get: impl Fn(&str) -> Option<&'a str>) -> Self {
        Self {
            timestamp: get(TIMESTAMP_HEADER),
            signature: get(SIGNATURE_HEADER),
            delivery: get(DELIVERY_HEADER),
        }
    }
}

/// Why a delivery was refused. No message says what the signature should have been.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing the {0} header")]
    MissingHeader(&'static str),
    #[error(
        "the {TIMESTAMP_HEADER} header is not a Unix time in whole seconds (decimal digits, e.g. 1767225600)"
    )]
    BadTimestamp,
    #[error(
        "the {SIGNATURE_HEADER} header is not of the form v1=<64 lowercase hex digits>, several separated by commas"
    )]
    MalformedSignature,
    #[error(
        "no signature in the {SIGNATURE_HEADER} header matches the timestamp and body under this source's webhook secret"
    )]
    BadSignature,
    #[error(
        "the delivery was signed at {signed_at}, {} this receiver's clock; more than 5 minutes either way is refused (a replay, or a clock out of step)",
        skew(*skew_seconds)
    )]
    OutsideTolerance {
        signed_at: Timestamp,
        /// Receiver's clock minus the signed time: positive when the delivery is old.
        skew_seconds: i64,
    },
    #[error("the webhook secret is empty")]
    EmptySecret,
    #[error(
        "the {SIGNATURE_HEADER} header lists more than {MAX_SIGNATURES} v1 signatures; at most {MAX_SIGNATURES} are checked (one per secret in rotation)"
    )]
    TooManySignatures,
}

fn skew(seconds: i64) -> String {
    if seconds >= 0 {
        format!("{seconds} seconds behind")
    } else {
        format!("{} seconds ahead of", seconds.unsigned_abs())
    }
}

/// The `X-Hrsync-Signature` value for a body signed at `timestamp` (Unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = keyed(secret);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a delivery's signature and timestamp; returns when it was signed, which
/// [`parse`] takes as the default `as_of`.
pub fn verify(
    secret: &[u8],
    headers: &SignedHeaders<'_>,
    body: &[u8],
    now: Timestamp,
) -> Result<Timestamp, VerifyError> {
    if secret.is_empty() {
        return Err(VerifyError::EmptySecret);
    }
    let timestamp = headers
        .timestamp
        .ok_or(VerifyError::MissingHeader(TIMESTAMP_HEADER))?;
    let signature = headers
        .signature
        .ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
    let timestamp = timestamp.trim();
    let signed_at = parse_timestamp(timestamp).ok_or(VerifyError::BadTimestamp)?;
    let candidates = parse_signatures(signature)?;

    let mut mac = keyed(secret);
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    // `verify_slice` compares in constant time; which candidate matched is no secret.
    let matched = candidates
        .iter()
        .any(|candidate| mac.clone().verify_slice(candidate).is_ok());
    if !matched {
        return Err(VerifyError::BadSignature);
    }

    let skew = now.duration_since(signed_at);
    if skew.abs() > TOLERANCE {
        return Err(VerifyError::OutsideTolerance {
            signed_at,
            skew_seconds: skew.as_secs(),
        });
    }
    Ok(signed_at)
}

fn keyed(secret: &[u8]) -> HmacSha256 {
    let Ok(mac) = <HmacSha256 as Mac>::new_from_slice(secret) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac
}

/// Decimal digits only (no sign, no spaces inside), within jiff's range.
fn parse_timestamp(text: &str) -> Option<Timestamp> {
    if text.is_empty() || text.len() > 15 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Timestamp::from_second(text.parse().ok()?).ok()
}

/// The `v1` signatures of the header: at least one, at most [`MAX_SIGNATURES`].
fn parse_signatures(header: &str) -> Result<Vec<[u8; 32]>, VerifyError> {
    let malformed = VerifyError::MalformedSignature;
    let mut signatures = Vec::new();
    for entry in header.split(',') {
        let (scheme, value) = entry.trim().split_once('=').ok_or(malformed.clone())?;
        let version = scheme.strip_prefix('v').ok_or(malformed.clone())?;
        if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed);
        }
        if version == "1" {
            if signatures.len() == MAX_SIGNATURES {
                return Err(VerifyError::TooManySignatures);
            }
            signatures.push(from_hex(value).ok_or(malformed.clone())?);
        }
    }
    if signatures.is_empty() {
        return Err(malformed);
    }
    Ok(signatures)
}

/// Exactly 64 lowercase hex digits.
fn from_hex(text: &str) -> Option<[u8; 32]> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// The id that deduplicates a delivery: `sha256:` + the hex SHA-256 of
/// `{signed_at seconds}.{body}`, signed bytes only (the unsigned `X-Hrsync-Delivery` is not
/// used: whoever replays a body may set it).
///
/// The hash covers the signed time as well as the body: the same body signed at another
/// time is a later statement (its workers' `as_of` defaults to that time), which must not
/// be dropped as a duplicate of the earlier one. A retry that resends the same signed
/// request gets the same id.
pub fn delivery_id(signed_at: Timestamp, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(signed_at.as_second().to_string().as_bytes());
    hash.update(b".");
    hash.update(body);
    format!("sha256:{}", hex::encode(hash.finalize()))
}

/// A body that cannot be taken, e.g. `workers[3]: hire_date: is not a date (YYYY-MM-DD)`.
/// It names the worker's place and the field, never a value from the body (values are
/// personal data, and the message goes back to the sender, into the audit and the log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// The worker's position in `workers`; `None` for a one-worker body, or when the body
    /// as a whole is at fault.
    pub index: Option<usize>,
    /// The field at fault (`hire_date`, `custom.badge`, ...), when it is one field.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(index) = self.index {
            write!(f, "workers[{index}]: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl ParseError {
    fn body(field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            index: None,
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// Reads a verified body of the source `source_name` into validated workers.
pub fn parse(
    source_name: &str,
    body: &[u8],
    signed_at: Timestamp,
) -> Result<Vec<Worker>, ParseError> {
    let value = crate::connector::read_json(body)
        .map_err(|crate::connector::BadPayload(problem)| ParseError::body(None, problem))?;
    let Value::Object(object) = value else {
        return Err(ParseError::body(
            None,
            format!(
                "the body is {}, expected an object: one worker, or {{\"workers\": [...]}}",
                type_name(&value)
            ),
        ));
    };
    if !object.contains_key("workers") {
        return read_worker(source_name, &object, signed_at)
            .map(|worker| vec![worker])
            .map_err(|(field, message)| ParseError {
                index: None,
                field,
                message,
            });
    }

    let mut entries = None;
    for (key, value) in object {
        if key != "workers" {
            return Err(ParseError::body(
                Some(&crate::connector::field_name(&key)),
                "unknown field beside `workers`; a batch body is {\"workers\": [...]} alone",
            ));
        }
        entries = Some(value);
    }
    let entries = match entries {
        Some(Value::Array(entries)) => entries,
        Some(other) => {
            return Err(ParseError::body(
                Some("workers"),
                format!(
                    "is {}, expected an array of worker objects",
                    type_name(&other)
                ),
            ));
        }
        None => Vec::new(),
    };
    if entries.len() > MAX_WORKERS {
        return Err(ParseError::body(
            Some("workers"),
            format!(
                "lists {} workers; at most {MAX_WORKERS} go in one delivery",
                entries.len()
            ),
        ));
    }

    let mut workers: Vec<Worker> = Vec::with_capacity(entries.len());
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let error = |(field, message): (Option<String>, String)| ParseError {
            index: Some(index),
            field,
            message,
        };
        let Value::Object(object) = entry else {
            return Err(error((
                None,
                format!("is {}, expected a worker object", type_name(entry)),
            )));
        };
        let worker = read_worker(source_name, object, signed_at).map_err(error)?;
        if let Some(first) = first_seen.insert(worker.employee_id.clone(), index) {
            return Err(error((
                Some("employee_id".into()),
                format!("appears twice, first at workers[{first}]"),
            )));
        }
        workers.push(worker);
    }
    Ok(workers)
}

/// The fields a worker object may have besides the canonical ones.
const EXTRA_FIELDS: &[&str] = &["termination_time", "as_of", "custom"];

const STATUSES: &str = "active, inactive, terminated, leave";

/// A field error: the field, when it is one, and the message.
type FieldError = (Option<String>, String);

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    (Some(field.to_owned()), message.into())
}

fn read_worker(
    source_name: &str,
    object: &Map<String, Value>,
    signed_at: Timestamp,
) -> Result<Worker, FieldError> {
    for field in object.keys() {
        if field == "key" {
            return Err(field_error(
                field,
                "is not accepted: hrsync derives it from the source name and employee_id",
            ));
        }
        if !CANONICAL_FIELDS.contains(&field.as_str()) && !EXTRA_FIELDS.contains(&field.as_str()) {
            return Err(field_error(
                &crate::connector::field_name(field),
                format!(
                    "unknown field, expected one of {}, {}",
                    CANONICAL_FIELDS.join(", "),
                    EXTRA_FIELDS.join(", ")
                ),
            ));
        }
    }

    let required = |field: &'static str| -> Result<String, FieldError> {
        text(object, field)?.ok_or_else(|| field_error(field, "is missing"))
    };
    let employee_id = required("employee_id")?;
    if let Some(problem) = crate::connector::id_problem(&employee_id) {
        return Err(field_error("employee_id", problem));
    }
    let given_name = required("given_name")?;
    let family_name = required("family_name")?;
    let status = required("status")?;

    let key = WorkerKey::new(source_name, employee_id);
    let mut worker = Worker::new(key, given_name, family_name, signed_at);
    worker.status = Status::parse(&status).ok_or_else(|| {
        field_error(
            "status",
            format!("is not a known status; expected one of {STATUSES}"),
        )
    })?;
    worker.middle_name = text(object, "middle_name")?;
    worker.preferred_name = text(object, "preferred_name")?;
    worker.personal_email = text(object, "personal_email")?;
    worker.work_email = text(object, "work_email")?;
    worker.hire_date = date(object, "hire_date")?;
    worker.termination_date = date(object, "termination_date")?;
    worker.termination_time = text(object, "termination_time")?
        .map(|value| {
            parse_time(&value).ok_or_else(|| {
                field_error(
                    "termination_time",
                    "is not a time HH:MM or HH:MM:SS (24-hour, e.g. 17:00)",
                )
            })
        })
        .transpose()?;
    worker.termination_type = text(object, "termination_type")?;
    worker.worker_type = text(object, "worker_type")?;
    worker.job_title = text(object, "job_title")?;
    worker.department = text(object, "department")?;
    worker.division = text(object, "division")?;
    worker.cost_center = text(object, "cost_center")?;
    worker.company = text(object, "company")?;
    worker.location = text(object, "location")?;
    worker.country = text(object, "country")?;
    worker.time_zone = text(object, "time_zone")?;
    worker.manager_id = text(object, "manager_id")?;
    // The manager's id becomes a worker key too.
    if let Some(problem) = worker
        .manager_id
        .as_deref()
        .and_then(crate::connector::id_problem)
    {
        return Err(field_error("manager_id", problem));
    }
    if let Some(value) = text(object, "as_of")? {
        let as_of: Timestamp = value.parse().map_err(|_| {
            field_error(
                "as_of",
                "is not an RFC 3339 timestamp (e.g. 2026-12-01T09:00:00Z)",
            )
        })?;
        // A snapshot older than the stored one is ignored: a far-future as_of would make
        // every real change until then stale. The signature's own tolerance is the skew.
        if as_of.duration_since(signed_at) > TOLERANCE {
            return Err(field_error(
                "as_of",
                "is more than 5 minutes after the delivery was signed; a record cannot speak for a later time (it would make every real change until then look stale)",
            ));
        }
        worker.as_of = as_of;
    }
    match object.get("custom") {
        None | Some(Value::Null) => {}
        Some(Value::Object(custom)) => {
            for (name, value) in custom {
                let field = format!("custom.{}", crate::connector::field_name(name));
                if name.trim().is_empty() {
                    return Err((Some(field), "a custom field needs a name".into()));
                }
                match value {
                    Value::Null => {}
                    Value::String(value) if value.trim().is_empty() => {}
                    Value::String(value) => {
                        worker.custom.insert(name.clone(), value.trim().to_owned());
                    }
                    other => {
                        return Err((
                            Some(field),
                            format!("is {}, expected a string", type_name(other)),
                        ));
                    }
                }
            }
        }
        Some(other) => {
            return Err(field_error(
                "custom",
                format!(
                    "is {}, expected an object of strings, e.g. {{\"badge\": \"B-7\"}}",
                    type_name(other)
                ),
            ));
        }
    }

    worker.validate_record().map_err(|invalid| {
        field_error(
            invalid.field,
            crate::connector::problem_without_value(&invalid, &worker),
        )
    })?;
    Ok(worker)
}

/// A string field, trimmed; absent, `null` or empty is `None`.
fn text(object: &Map<String, Value>, field: &str) -> Result<Option<String>, FieldError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => {
            let value = value.trim();
            Ok((!value.is_empty()).then(|| value.to_owned()))
        }
        Some(other) => Err(field_error(
            field,
            format!("is {}, expected a string", type_name(other)),
        )),
    }
}

fn date(object: &Map<String, Value>, field: &str) -> Result<Option<Date>, FieldError> {
    text(object, field)?
        .map(|value| {
            parse_date(&value).ok_or_else(|| field_error(field, "is not a date (YYYY-MM-DD)"))
        })
        .transpose()
}

/// Exactly `YYYY-MM-DD`, a real calendar day.
fn parse_date(text: &str) -> Option<Date> {
    let bytes = text.as_bytes();
    let shape = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    Date::strptime("%Y-%m-%d", text).ok()
}

/// `HH:MM` or `HH:MM:SS`, 24-hour.
fn parse_time(text: &str) -> Option<Time> {
    match text.len() {
        5 => LocalTime::parse(text).map(|time| time.0),
        8 => {
            let (hour_minute, second) = (text.get(..5)?, text.get(5..)?);
            let second = second.strip_prefix(':')?;
            if second.len() != 2 || !second.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let time = LocalTime::parse(hour_minute)?.0;
            time.with().second(second.parse().ok()?).build().ok()
        }
        _ => None,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `kind = "signed-json"` as a [`Connector`]: the records arrive whole, so there is nothing
/// to fetch and nowhere to write back.
#[derive(Debug)]
pub struct SignedJson {
    source: String,
    secret: crate::sources::WebhookSecret,
}

impl SignedJson {
    pub fn new(setup: crate::sources::Setup<'_>) -> Result<Self, crate::sources::SetupError> {
        Ok(Self {
            source: setup.name.to_owned(),
            secret: setup.webhook_secret()?,
        })
    }

    fn signed_headers<'a>(delivery: &crate::connector::Delivery<'a>) -> SignedHeaders<'a> {
        let headers = delivery.headers;
        SignedHeaders::from_lookup(|name| headers.get(name).and_then(|v| v.to_str().ok()))
    }
}

impl crate::connector::Connector for SignedJson {
    fn source(&self) -> &str {
        &self.source
    }

    fn verify(
        &self,
        delivery: &crate::connector::Delivery<'_>,
    ) -> Result<(), crate::connector::Unauthorized> {
        let headers = Self::signed_headers(delivery);
        verify(
            self.secret.bytes()?,
            &headers,
            delivery.body,
            delivery.received_at,
        )
        .map(|_| ())
        .map_err(|e| crate::connector::Unauthorized(e.to_string()))
    }

    fn parse(
        &self,
        delivery: &crate::connector::Delivery<'_>,
    ) -> Result<crate::connector::Parsed, crate::connector::BadPayload> {
        use crate::connector::{Action, BadPayload, Event, Parsed};
        let headers = Self::signed_headers(delivery);
        let signed_at = verify(
            self.secret.bytes().map_err(|e| BadPayload(e.0))?,
            &headers,
            delivery.body,
            delivery.received_at,
        )
        .map_err(|e| BadPayload(e.to_string()))?;
        let workers =
            parse(&self.source, delivery.body, signed_at).map_err(|e| BadPayload(e.to_string()))?;
        if let Some(id) = headers.delivery {
            // The sender's own id, for tracing its deliveries; never the dedupe id.
            tracing::debug!(
                source = %self.source,
                sender_delivery = %crate::connector::field_name(id.trim()),
                "signed-json delivery"
            );
        }
        let delivery_id = delivery_id(signed_at, delivery.body);
        let events = workers
            .into_iter()
            .map(|worker| Event {
                employee_id: worker.employee_id.clone(),
                // The body has no event name: it is the record itself.
                event_type: String::new(),
                dedupe: format!("{delivery_id}#{}", worker.employee_id),
                action: Action::Record(Box::new(worker)),
                operation: None,
            })
            .collect();
        Ok(Parsed {
            events,
            ..Parsed::default()
        })
    }

    fn fetch<'a>(
        &'a self,
        _: &'a str,
        _: Timestamp,
    ) -> crate::connector::BoxFuture<'a, Result<crate::connector::Fetched, crate::connector::HrError>>
    {
        let error = crate::connector::HrError::permanent(format!(
            "source {}: signed-json records arrive whole; there is no API to fetch from",
            self.source
        ));
        Box::pin(std::future::ready(Err(error)))
    }

    fn writes_back(&self) -> bool {
        false
    }

    fn write_back<'a>(
        &'a self,
        _: &'a Worker,
        _: &'a hrsync_core::Identifiers,
    ) -> crate::connector::BoxFuture<'a, Result<(), crate::connector::HrError>> {
        let error = crate::connector::HrError::permanent(format!(
            "source {}: signed-json has no API to write back to",
            self.source
        ));
        Box::pin(std::future::ready(Err(error)))
    }
}
