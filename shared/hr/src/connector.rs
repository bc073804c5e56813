//! What every HR vendor connector does, whatever its wire format: verify a webhook delivery
//! over its raw bytes, read the events out of it, fetch the worker's full record through the
//! vendor's API (most webhooks are thin: an id and maybe changed field names), list what
//! changed since a cursor (a poll for missed events), and write the generated identifiers
//! back.
//!
//! Every parser reads JSON bodies with [`read_json`] (a key given twice is refused) and
//! checks the ids it takes from a body with [`checked_id`]; its refusals name the field and
//! the rule, never a value from the body.
//!
//! Verification and parsing are pure and fast (the webhook answers within the vendor's
//! deadline); fetching and writing back are the slow, fallible parts and run later, from
//! a queue.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use hrsync_core::worker::EMPLOYEE_ID_MAX_CHARS;
use hrsync_core::{Identifiers, InvalidWorker, Worker};
use http::HeaderMap;
use jiff::Timestamp;
use sha2::{Digest, Sha256};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One webhook delivery as it arrived: the raw body, before any parsing.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// The real time it arrived (for schemes with a signed timestamp).
    pub received_at: Timestamp,
}

impl Delivery<'_> {
    /// A header's value as text; `None` when absent or not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The media type of the body, lowercase, without parameters (`application/json`).
    pub fn media_type(&self) -> Option<String> {
        let value = self.header(http::header::CONTENT_TYPE.as_str())?;
        let media = value.split(';').next().unwrap_or_default().trim();
        Some(media.to_ascii_lowercase())
    }

    /// Identifies the delivery's content: a vendor that retries sends the same bytes.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.body))
    }
}

/// A delivery that is not from the HR system (bad or missing signature or token). The reason
/// is for the operator's log and the audit; the sender gets a bare 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unauthorized(pub String);

/// A genuine delivery whose body hrsync cannot read. The message names what is wrong and
/// never quotes the body's values (they are personal data); it is safe to send back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadPayload(pub String);

/// What one event asks of hrsync.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The worker changed (created, updated, a lifecycle event...): fetch the full record.
    Fetch,
    /// HR deleted the worker's record. Still fetched: a record that is really gone makes the
    /// worker leave; one that is back (an undo) is taken as it is.
    Deleted,
    /// The delivery carries the whole record (signed JSON, SCIM): no fetch.
    Record(Box<Worker>),
}

/// One event read out of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The worker's id in the HR system: the second half of the worker key.
    pub employee_id: String,
    /// The vendor's own name for it (`employee.updated`, `Employee exit approved`...), for the
    /// audit's cause; a long or unprintable one is described by its length ([`field_name`]).
    pub event_type: String,
    pub action: Action,
    /// Identifies this event across the vendor's redeliveries (vendors retry for up to three
    /// days, often with identical bytes): deliveries with the same id are taken once.
    pub dedupe: String,
    /// Where the delivery addresses operations one by one (SCIM `bulkId`), the operation's id,
    /// so the reply can answer per operation.
    pub operation: Option<String>,
}

/// A part of a delivery that could not be taken, answered per operation (SCIM bulk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub operation: Option<String>,
    pub method: Option<String>,
    pub problem: String,
}

/// Everything read out of one delivery.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    pub events: Vec<Event>,
    /// Operations refused one by one while the rest of the delivery is taken.
    pub refused: Vec<Refused>,
    /// A handshake (HiBob's "Ping test", a verification call): answer 2xx, take nothing.
    pub handshake: bool,
}

impl Parsed {
    /// A delivery about one employee: one event, identified across redeliveries by the
    /// body's digest and the employee id.
    pub fn one(
        delivery: &Delivery<'_>,
        employee_id: String,
        event_type: impl Into<String>,
        action: Action,
    ) -> Self {
        Self {
            events: vec![Event {
                dedupe: format!("{}#{employee_id}", delivery.digest()),
                employee_id,
                // The vendor's name comes from the body and goes into the audit: bounded.
                event_type: field_name(&event_type.into()),
                action,
                operation: None,
            }],
            ..Self::default()
        }
    }
}

/// A connector's own answer to a delivery it took in, where the vendor's protocol defines
/// one (SCIM's BulkResponse).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: serde_json::Value,
}

/// The full record of a worker, as fetched from the vendor's API.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    Worker(Box<Worker>),
    /// The HR system has no such worker (deleted, or never existed).
    Gone,
}

/// Workers changed since a cursor, from the vendor's change feed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    /// Employee ids; each is fetched (a deleted one comes back [`Fetched::Gone`]).
    pub employee_ids: Vec<String>,
    /// Where the next poll starts (the vendor's own `latest`, or the poll's start time).
    pub cursor: String,
}

/// A failed call to the vendor's API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HrError {
    pub message: String,
    /// Worth another attempt later (429, 5xx, a timeout); false for a refusal (401, 403,
    /// 400) that needs an operator.
    pub retryable: bool,
    /// The vendor's HTTP status, when the error is an answer.
    pub status: Option<u16>,
    /// The API as a whole is unreachable or refuses hrsync's credential (every call to it
    /// fails alike until that is fixed, so the runtime waits instead of failing each worker):
    /// what is wrong, naming the endpoint and no worker.
    pub outage: Option<String>,
}

impl HrError {
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
            status: None,
            outage: None,
        }
    }

    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            status: None,
            outage: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Marks the error as the whole API's, not this call's (see [`HrError::outage`]).
    pub fn as_outage(mut self, what_is_wrong: String) -> Self {
        self.outage = Some(what_is_wrong);
        self
    }
}

/// One configured HR source (`[source.<name>]`) of a given vendor.
pub trait Connector: Send + Sync + fmt::Debug {
    /// The `[source.<name>]` name: the first half of every worker key from this source.
    fn source(&self) -> &str;

    /// Checks the delivery is the HR system's own, over the raw bytes, in constant time.
    fn verify(&self, delivery: &Delivery<'_>) -> Result<(), Unauthorized>;

    /// Reads the events out of a verified delivery.
    fn parse(&self, delivery: &Delivery<'_>) -> Result<Parsed, BadPayload>;

    /// The worker's full, current record (future-dated values included where the vendor
    /// has them), normalized; `as_of` is `now`.
    fn fetch<'a>(
        &'a self,
        employee_id: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Fetched, HrError>>;

    /// Workers changed since `cursor` (`None`: since `now`, which lists nobody and returns
    /// the first cursor). Vendors without a change feed return a permanent error.
    fn changed_since<'a>(
        &'a self,
        cursor: Option<&'a str>,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Changes, HrError>> {
        let _ = (cursor, now);
        let source = self.source().to_owned();
        Box::pin(std::future::ready(Err(HrError::permanent(format!(
            "source {source} has no change feed to poll"
        )))))
    }

    /// One harmless authenticated read of the vendor's API (`hrsync doctor`): what it read, in
    /// words without personal data, or why it failed. `None`, the default: the source has no
    /// API to check (its deliveries carry the whole record).
    fn check(&self, now: Timestamp) -> Option<BoxFuture<'_, Result<String, HrError>>> {
        let _ = now;
        None
    }

    /// The answer to a delivery whose events were all taken in (`parsed` as [`Connector::parse`]
    /// gave it). `None`, the default: hrsync's own answer, 202 with a tally of the events.
    fn answer(&self, parsed: &Parsed) -> Option<Answer> {
        let _ = parsed;
        None
    }

    /// Whether identifiers are written back to this source (the vendor can take them and
    /// the config did not turn it off).
    fn writes_back(&self) -> bool;

    /// Writes the work email (and the username, where the vendor has one) to the worker's
    /// HR record.
    fn write_back<'a>(
        &'a self,
        worker: &'a Worker,
        identifiers: &'a Identifiers,
    ) -> BoxFuture<'a, Result<(), HrError>>;
}

/// The most characters an HR record id may have (Keka's GUIDs have 36, Bob's ids 19).
pub const MAX_ID_CHARS: usize = 128;

/// Why `id` cannot be an HR record id, or `None` when it can: the one rule for an id a
/// webhook names (it becomes a worker key) and for an id put in a vendor's URL.
///
/// - Empty, `.` or `..`: a URL path resolves a dot segment away (`POST /employees/.`
///   reaches the vendor as `POST /employees/`), and percent-encoding does not help: URL
///   parsers treat `%2e` as a dot too.
/// - Control characters: they have no place in an id and would reach logs and URLs.
/// - Starting with `#`, or containing `:`: hrsync's own keys are made of those
///   (`<source>:#webhook` is where refused deliveries are audited), so a worker must never
///   share one.
/// - Longer than [`MAX_ID_CHARS`].
pub fn id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("is empty")
    } else if id == "." || id == ".." {
        Some("is a dot segment (. or ..), which a URL path would resolve away")
    } else if id.chars().any(char::is_control) {
        Some("contains a control character")
    } else if id.starts_with('#') {
        Some("starts with #, which hrsync keeps for its own keys (e.g. <source>:#webhook)")
    } else if id.contains(':') {
        Some("contains :, which separates the source from the id in hrsync's keys")
    } else if id.chars().count() > MAX_ID_CHARS {
        Some("is longer than 128 characters")
    } else {
        None
    }
}

/// An id a webhook names in `field`, checked with [`id_problem`]; the refusal names the
/// field and the rule, never the id.
pub fn checked_id(field: &str, id: String) -> Result<String, BadPayload> {
    match id_problem(&id) {
        Some(problem) => Err(BadPayload(format!("{field} {problem}"))),
        None => Ok(id),
    }
}

/// The most characters of a name taken from a body (a field or attribute name) that a
/// message repeats.
pub const MAX_NAME_CHARS: usize = 64;

/// A name taken from a body (an unknown field, a custom attribute), fit for a message: as
/// it is when short and printable ASCII, else described by its length. Values are never put
/// in messages; names are, so the sender can find what to fix, but never whole (a 900 KB key
/// would be echoed into the reply, the audit and the log).
pub fn field_name(name: &str) -> String {
    let printable = name.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if !name.is_empty() && name.len() <= MAX_NAME_CHARS && printable {
        name.to_owned()
    } else {
        format!("<a name of {} bytes>", name.len())
    }
}

/// What [`Worker::validate`] found (the problem; the field is `invalid.field`), said without the value at fault: its messages quote
/// some values (the employee id, the time zone), and a webhook's answer, its audit and the
/// log must not.
pub fn problem_without_value(invalid: &InvalidWorker, worker: &Worker) -> String {
    match invalid.field {
        "employee_id" if !worker.employee_id.trim().is_empty() => format!(
            "has {} characters; the directory's employeeId holds at most {EMPLOYEE_ID_MAX_CHARS}",
            worker.employee_id.chars().count()
        ),
        "time_zone" => "is not an IANA time zone name (e.g. Europe/London)".to_owned(),
        _ => invalid.problem.clone(),
    }
}

/// A webhook body as JSON, refusing a key given twice in one object: with the usual
/// reading the last would win, so `"status":"active","status":"terminated"` would be a
/// termination that a reader keeping the first (a proxy, a log viewer) sees as active.
/// The message says where (line and column) and names the key, never a value.
pub fn read_json(body: &[u8]) -> Result<serde_json::Value, BadPayload> {
    use serde::Deserialize as _;
    let mut reader = serde_json::Deserializer::from_slice(body);
    // serde_json's own recursion limit (128 levels) bounds the nesting.
    let value = Strict::deserialize(&mut reader)
        .and_then(|Strict(value)| reader.end().map(|()| value))
        .map_err(|e| match e.classify() {
            serde_json::error::Category::Data => BadPayload(format!("the body {e}")),
            _ => BadPayload(format!("the body is not valid JSON: {e}")),
        })?;
    Ok(value)
}

/// A JSON value read with [`StrictVisitor`].
struct Strict(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

/// Builds a `serde_json::Value` as serde_json does, but errs on a repeated key.
struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(serde_json::Value::Null, Into::into))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        serde::Deserialize::deserialize(d).map(|Strict(value)| value)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "gives the key {} twice in one object (ambiguous: which one holds?)",
                    field_name(&key)
                )));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(serde_json::Value::Object(object))
    }
}

/// Compares a presented secret (a static token) with the expected one in constant time.
pub fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    // Hashing first makes the comparison independent of the lengths too.
    Sha256::digest(presented)
        .ct_eq(&Sha256::digest(expected))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_secret_needs_every_byte() {
        assert!(same_secret(b"token-1", b"token-1"));
        assert!(!same_secret(b"token-1", b"token-2"));
        assert!(!same_secret(b"token-1", b"token-10"));
        assert!(!same_secret(b"", b"token-1"));
    }

    #[test]
    fn media_type_ignores_parameters_and_case() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("Application/SCIM+json; charset=utf-8"),
        );
        let delivery = Delivery {
            headers: &headers,
            body: b"{}",
            received_at: Timestamp::UNIX_EPOCH,
        };
        assert_eq!(
            delivery.media_type().as_deref(),
            Some("application/scim+json")
        );
    }
}
