//! BambooHR: `[source.<name>] kind = "bamboohr"`.
//!
//! BambooHR's webhooks are thin (an employee id and the names of the changed fields), so
//! every event is followed by a read of the employee's full record through the API; the
//! generated work email is written back to the record's Work Email field.
//!
//! # Setting it up in BambooHR
//!
//! 1. **Webhook.** In BambooHR, *Account Settings > Webhooks > Add Webhook* (a global
//!    webhook), or `POST /api/v1/webhooks` (a permissioned webhook, which sees only what its
//!    creating user sees and stops when that user is deactivated):
//!    - URL: `https://<host>/webhooks/<source name>` (BambooHR only posts to `https://`).
//!    - Data structure: **Event-Based** (recommended), events `employee.created`,
//!      `employee.updated` and `employee.deleted`; for `employee.updated`, monitor at least
//!      First Name, Last Name, Preferred Name, Middle Name, Work Email, Home Email, Status,
//!      Employment Status, Hire Date, Job Title, Department, Division, Location, Country,
//!      Reporting to, and the `employee_id_field` when it is not the id (e.g. Employee #).
//!      The legacy **Field-Based** structure (`employee_with_fields.*`) is
//!      taken as well; its posted field values are not used (the record is read from the
//!      API), so no post fields are needed.
//!    - Format: JSON (recommended) or form-encoded: both are read.
//!    - BambooHR shows the webhook's **private key** once (or returns it as `privateKey`
//!      from the API): that is the source's `webhook_secret`.
//! 2. **API key.** Create an API key (*your name > API Keys*) for a user that can **read**
//!    the fields above plus Termination Date and the Employment Status table (for the
//!    termination type) and the `employee_id_field`, and that can **edit Work Email** if write-back is on. That key is
//!    the source's `api_key`.
//! 3. **Config.**
//!
//! ```toml
//! [source.bamboo]
//! kind = "bamboohr"
//! base_url = "https://acme.bamboohr.com/api/v1"   # or https://api.bamboohr.com/api/gateway.php/acme/v1
//! api_key = { env = "BAMBOOHR_API_KEY" }
//! webhook_secret = { env = "BAMBOOHR_WEBHOOK_KEY" }
//! # employee_id_field = "employeeNumber"   # the directory's employeeId; default: the id
//! # writeback = false   # to leave Work Email alone
//! ```
//!
//! # Ids
//!
//! BambooHR names an employee by its employee id, a whole number (`"67890"` in its samples):
//! what webhooks carry, what the API is read and written back by, and what `supervisorEId`
//! names a manager by. It is the worker's key. The directory's employee id is the record's
//! `employee_id_field`: by default that same `id` (it fits the directory's 16 characters),
//! or any BambooHR field name or alias, e.g. `employeeNumber` ("Employee number (assigned by
//! your company)"). That field is added to the read's `fields`; a record whose value is
//! empty or longer than 16 characters is a permanent error for that worker naming the field
//! and the record, and a field the account does not have (BambooHR's 406) is a permanent
//! error naming `employee_id_field`.
//!
//! # Facts this connector relies on
//!
//! Marked **[O]** BambooHR's own documentation: documentation.bamboohr.com, BambooHR's
//! OpenAPI (`specs/public.yaml` in github.com/BambooHR/bhr-api-python, the official SDK) and
//! its help centre's "API Error Code Definitions"
//! (<https://bamboohr.screenstepslive.com/m/53907/l/587843-api-error-code-definitions>);
//! **[S]** seen in BambooHR's SDKs or several independent integrations; **[U]** not
//! confirmed.
//!
//! - Webhook signature [O + S]: headers `X-BambooHR-Timestamp` and `X-BambooHR-Signature`;
//!   the signature is "SHA-256 HMAC using the payload, the timestamp and your private key"
//!   [O]; exactly: lowercase hex of HMAC-SHA256(private key, raw body ‖ timestamp header
//!   text) [S]. The scheme is BambooHR's and cannot change: there is no separator between
//!   body and timestamp, and the timestamp's format is not documented [O]. What hrsync
//!   controls: the timestamp must be Unix seconds or an ISO 8601 date-time of a strict shape
//!   ([`signed_time`], which also explains why that keeps bytes from moving between body and
//!   timestamp unnoticed), and at most [`MAX_AGE`] (3 hours) old or [`MAX_AHEAD`] (5 minutes)
//!   ahead: BambooHR retries a 5xx up to 5 times over about 2.5 hours [O], so its last retry
//!   passes and a captured delivery replayed later does not. Within the window a redelivery
//!   has the same body, so [`Event::dedupe`] drops it. What the scheme does not give: a
//!   replay within the window verifies again (deduplication is what stops it), and if
//!   BambooHR re-signs a retry with a new timestamp, the window counts from that.
//! - Event-based body [O] (<https://documentation.bamboohr.com/docs/event-based-webhooks>):
//!   `{type, timestamp, data: {companyId, employeeId, changedFields[]}}`, ids as strings,
//!   with `type` one of `employee.created`, `employee.updated`, `employee.deleted`; the form
//!   encoding is `type=...&data[employeeId]=...&data[changedFields][0]=...`. Other types
//!   (`company.updated`, `company.deleted`, `company-integrations.updated`) are taken and
//!   ignored.
//! - Field-based body [O] (<https://documentation.bamboohr.com/docs/field-based-webhooks>):
//!   `{employees: [{id, action: Created|Updated|Deleted, timestamp, changedFields[],
//!   fields{}}]}`; its form encoding is assumed to be the same bracket notation [U].
//! - Read [O] (OpenAPI `get-employee`): `GET {base_url}/employees/{id}?fields=a,b,...&
//!   onlyCurrent=false` with HTTP Basic auth, the API key as user and any password (`x`),
//!   `Accept: application/json` (XML otherwise). `fields` is always sent: the spec gives both
//!   a default (`firstName,lastName`) and "only when explicitly requested"; at most 400
//!   fields; names or aliases. The answer is `id` plus the fields asked (ones the API user
//!   may not see are left out). `onlyCurrent=false` includes future-dated values of
//!   history-table fields (a job change or termination entered ahead of time). 404: no such
//!   employee; 406: "references to nonexistent fields".
//! - Field names [O] (<https://documentation.bamboohr.com/docs/list-of-field-names>):
//!   `firstName`, `lastName`, `middleName`, `preferredName`, `workEmail`, `homeEmail`,
//!   `status` (Active / Inactive), `employmentHistoryStatus` (the current Employment
//!   Status, a tenant-configured list such as Full-Time, Contractor), `hireDate`,
//!   `terminationDate`, `jobTitle`, `department`, `division`, `location`, `country`,
//!   `employeeNumber`, and `supervisorEId`, "the ID of the employee's current supervisor"
//!   (the BambooHR employee id; `supervisorId` is the supervisor's *employee number*, another
//!   id space, so it is not used). Empty dates come back as `0000-00-00` [S].
//! - Termination type [O: the `employmentStatus` table and its `terminationTypeId` column;
//!   U: that the column reads as the option's text]: read with
//!   `GET {base_url}/employees/{id}/tables/employmentStatus` only when the record has a
//!   termination date, from the row dated on the termination date (else the latest row with
//!   a type). A user that may not read the table leaves the type empty.
//! - Change feed [O] (OpenAPI `get-changed-employee-ids`): `GET
//!   {base_url}/employees/changed?since=<ISO 8601, URL-encoded>` answers `{latest,
//!   employees: {<id>: {id, action, lastChanged}}}`; any change to any field counts; 400 when
//!   `since` is missing or not ISO 8601. The first cursor is the poll's time in the form of
//!   BambooHR's example (`2013-10-20T19:20:30+01:00`: whole seconds), then `latest`.
//! - Write-back [O] (OpenAPI `update-employee`): `POST {base_url}/employees/{id}` with
//!   `{"workEmail": "..."}`, 200 with no body; 403 when the API user may not edit the field;
//!   409 "duplicate email". BambooHR has no standard username field, so only the mail is
//!   written.
//! - Errors [O]: the reason is in the `X-BambooHR-Error-Messsage` header (sic), not the
//!   body; 503 comes with `Retry-After`.
//! - No time-zone field: `time_zone` stays empty and the configured default applies.
//!
//! # Status mapping
//!
//! | BambooHR `status` | `terminationDate` | hrsync status |
//! |---|---|---|
//! | Active | any (a future one is a scheduled leave) | active |
//! | Inactive | set | terminated |
//! | Inactive | empty | inactive |
//! | missing or anything else | | the fetch fails (permanent), naming `status` |

use hmac::{Hmac, Mac};
use hrsync_core::worker::EMPLOYEE_ID_MAX_CHARS;
use hrsync_core::{Identifiers, InvalidWorker, Status, Worker, WorkerKey};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::api::{ApiClient, Auth, Body, RetryPolicy, encode, id_segment};
use crate::connector::{
    Action, BadPayload, BoxFuture, Changes, Connector, Delivery, Event, Fetched, HrError, Parsed,
    Unauthorized,
};
use crate::sources::{Setup, SetupError};

pub const TIMESTAMP_HEADER: &str = "X-BambooHR-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-BambooHR-Signature";

/// The employee fields read on every fetch.
pub const FIELDS: &[&str] = &[
    "firstName",
    "lastName",
    "middleName",
    "preferredName",
    "workEmail",
    "homeEmail",
    "status",
    "employmentHistoryStatus",
    "hireDate",
    "terminationDate",
    "jobTitle",
    "department",
    "division",
    "location",
    "country",
    "supervisorEId",
];

/// The table whose rows carry the termination type.
pub const EMPLOYMENT_STATUS_TABLE: &str = "employmentStatus";

type HmacSha256 = Hmac<Sha256>;

/// How old a delivery's timestamp may be. BambooHR retries a 5xx after 5, 10, 20, 40 and
/// 80 minutes (2 h 35 min in all [O]); 3 hours admits its last retry with room for delays,
/// and refuses a captured delivery replayed later (its redeliveries within the window are
/// dropped by [`Event::dedupe`]).
pub const MAX_AGE: SignedDuration = SignedDuration::from_hours(3);

/// How far ahead of the receiver's clock a timestamp may be (clocks out of step).
pub const MAX_AHEAD: SignedDuration = SignedDuration::from_mins(5);

/// The time an `X-BambooHR-Timestamp` names; `None` unless it has one of these shapes:
///
/// - Unix time in whole seconds: decimal digits, the first not `0`;
/// - an ISO 8601 date-time `YYYY-MM-DDTHH:MM:SS` followed by `Z`, `+HH:MM` or `+HHMM` (or
///   `-`), the shape of the body's own `timestamp` (`2026-01-31T18:42:00+0000`).
///
/// BambooHR does not document the header's format, so both are read. The shapes are strict
/// because the signature covers `body ‖ timestamp` with no separator: bytes could move
/// between the two without changing the HMAC input. A timestamp of these shapes that is
/// also inside the [`MAX_AGE`] / [`MAX_AHEAD`] window fixes the split: a Unix time in the
/// window has exactly ten digits and no leading zero (a shorter or longer split is decades
/// away, and `0` + the time is refused), and an ISO date-time has its only `T` at index 10
/// with digits and colons after it up to the offset, so no other suffix of
/// `body ‖ timestamp` has the shape.
pub fn signed_time(text: &str) -> Option<Timestamp> {
    let bytes = text.as_bytes();
    if bytes.first().is_some_and(|b| (b'1'..=b'9').contains(b))
        && bytes.len() <= 12
        && bytes.iter().all(u8::is_ascii_digit)
    {
        return Timestamp::from_second(text.parse().ok()?).ok();
    }
    let shaped = |at: usize, pattern: &[u8]| {
        bytes.get(at..at + pattern.len()).is_some_and(|part| {
            part.iter().zip(pattern).all(|(b, p)| match p {
                b'9' => b.is_ascii_digit(),
                p => b == p,
            })
        })
    };
    let offset = match bytes.get(19..) {
        Some(b"Z") => true,
        Some([b'+' | b'-', ..]) => {
            shaped(20, b"99:99") && bytes.len() == 25 || shaped(20, b"9999") && bytes.len() == 24
        }
        _ => false,
    };
    if !(offset && shaped(0, b"9999-99-99T99:99:99")) {
        return None;
    }
    let (text, format) = match bytes.len() {
        20 => (format!("{}+0000", &text[..19]), "%Y-%m-%dT%H:%M:%S%z"),
        24 => (text.to_owned(), "%Y-%m-%dT%H:%M:%S%z"),
        _ => (text.to_owned(), "%Y-%m-%dT%H:%M:%S%:z"),
    };
    jiff::fmt::strtime::parse(format, &text)
        .ok()?
        .to_timestamp()
        .ok()
}

/// The `X-BambooHR-Signature` value of `body` sent with `X-BambooHR-Timestamp: timestamp`.
pub fn sign(secret: &[u8], body: &[u8], timestamp: &str) -> String {
    let mut mac = keyed(secret);
    mac.update(body);
    mac.update(timestamp.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn keyed(secret: &[u8]) -> HmacSha256 {
    let Ok(mac) = <HmacSha256 as Mac>::new_from_slice(secret) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac
}

/// The record field that is the directory's employee id when `employee_id_field` is not set:
/// BambooHR's own employee id (a whole number, which fits).
pub const DEFAULT_EMPLOYEE_ID_FIELD: &str = "id";

/// A configured BambooHR source.
#[derive(Debug)]
pub struct BambooHr {
    source: String,
    secret: crate::sources::WebhookSecret,
    api: ApiClient,
    writes_back: bool,
    /// The field (name or alias) that is the directory's employee id; `None`: the record's
    /// `id`, which is the key too.
    employee_id_field: Option<String>,
}

impl BambooHr {
    pub fn new(setup: Setup<'_>) -> Result<Self, SetupError> {
        let secret = setup.webhook_secret()?;
        let api_key = setup.secret("api_key")?;
        let base_url = setup.base_url()?;
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(setup.error(
                Some("base_url"),
                "is not an http(s) URL; BambooHR's is https://<company>.bamboohr.com/api/v1",
            ));
        }
        let api = ApiClient::new(
            "BambooHR",
            setup.http.clone(),
            base_url,
            Auth::Basic {
                user: api_key,
                password: "x".into(),
            },
        );
        let employee_id_field = setup
            .config
            .employee_id_field()
            .map(str::trim)
            .filter(|field| *field != DEFAULT_EMPLOYEE_ID_FIELD)
            .map(str::to_owned);
        Ok(Self {
            source: setup.name.to_owned(),
            secret,
            api,
            writes_back: setup.writes_back(),
            employee_id_field,
        })
    }

    /// The same connector with another retry policy (tests use short waits).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.api = self.api.with_retry(retry);
        self
    }

    /// The `fields` query value: [`FIELDS`] and the configured employee id field, each
    /// percent-encoded (an alias may hold any character).
    fn fields_query(&self) -> String {
        let mut fields: Vec<&str> = FIELDS.to_vec();
        if let Some(field) = self.employee_id_field.as_deref()
            && !fields.contains(&field)
        {
            fields.push(field);
        }
        fields
            .iter()
            .map(|f| encode(f))
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn fetch_worker(&self, employee_id: &str, now: Timestamp) -> Result<Fetched, HrError> {
        let segment = id_segment(&self.source, "BambooHR", employee_id)?;
        let what = format!(
            "source {}: fetch BambooHR employee {employee_id}",
            self.source
        );
        let path = format!(
            "/employees/{segment}?fields={}&onlyCurrent=false",
            self.fields_query()
        );
        let response = self.api.send(Method::GET, &path, None, &what).await?;
        if response.status == StatusCode::NOT_FOUND {
            return Ok(Fetched::Gone);
        }
        if response.status == StatusCode::NOT_ACCEPTABLE {
            return Err(self.unknown_field(&what));
        }
        if !response.is_success() {
            return Err(response.unexpected(&what));
        }
        let record: Map<String, Value> = response.json(&what)?;
        let mut worker = normalize(&self.source, employee_id, &record, now)
            .map_err(|e| HrError::permanent(format!("{what}: {e}")))?;
        if let Some(field) = self.employee_id_field.as_deref() {
            worker.employee_id = self.directory_employee_id(employee_id, field, &record)?;
        }
        if let Some(ended) = worker.termination_date {
            worker.termination_type = self.termination_type(employee_id, ended).await?;
        }
        worker.validate_record().map_err(|invalid| {
            HrError::permanent(format!(
                "{what}: the record cannot be acted on: {}",
                describe(&invalid)
            ))
        })?;
        Ok(Fetched::Worker(Box::new(worker)))
    }

    /// BambooHR's 406, "references to nonexistent fields": [`FIELDS`] are standard, so the
    /// configured employee id field is the likely one.
    fn unknown_field(&self, what: &str) -> HrError {
        let error = match self.employee_id_field.as_deref() {
            Some(field) if !FIELDS.contains(&field) => format!(
                "{what}: BambooHR has no field {field} (HTTP 406, a reference to a nonexistent \
                 field): set employee_id_field to a field name or alias of this BambooHR account"
            ),
            _ => format!(
                "{what}: BambooHR refused a requested field as nonexistent (HTTP 406); the \
                 fields asked for are {}",
                self.fields_query()
            ),
        };
        HrError::permanent(error).with_status(406)
    }

    /// The directory's employee id from the configured field, checked here so a worker whose
    /// id cannot fit is a clear error now rather than a Graph 400 later.
    fn directory_employee_id(
        &self,
        employee_id: &str,
        field: &str,
        record: &Map<String, Value>,
    ) -> Result<String, HrError> {
        let value = match record.get(field) {
            Some(Value::String(text)) => Some(text.trim().to_owned()),
            Some(Value::Number(number)) => Some(number.to_string()),
            _ => None,
        }
        .filter(|value| !value.is_empty());
        let Some(value) = value else {
            return Err(HrError::permanent(format!(
                "source {}: BambooHR employee {employee_id} has no {field}, the directory's \
                 employee id (employee_id_field): fill it in BambooHR, or choose another field",
                self.source
            )));
        };
        let length = value.chars().count();
        if length > EMPLOYEE_ID_MAX_CHARS {
            return Err(HrError::permanent(format!(
                "source {}: the {field} of BambooHR employee {employee_id} has {length} \
                 characters; the directory's employeeId holds at most {EMPLOYEE_ID_MAX_CHARS} \
                 (employee_id_field): shorten it in BambooHR, or choose another field",
                self.source
            )));
        }
        Ok(value)
    }

    /// The termination type from the employment-status table; `None` when the table has
    /// none or the API user may not read it.
    async fn termination_type(
        &self,
        employee_id: &str,
        ended: Date,
    ) -> Result<Option<String>, HrError> {
        let what = format!("read the employment status table of BambooHR employee {employee_id}");
        let segment = id_segment(&self.source, "BambooHR", employee_id)?;
        let path = format!("/employees/{segment}/tables/{EMPLOYMENT_STATUS_TABLE}");
        let response = match self.api.send(Method::GET, &path, None, &what).await {
            Ok(response) if response.is_success() => response,
            Ok(response) => {
                tracing::info!(
                    source = %self.source,
                    status = response.status.as_u16(),
                    "BambooHR employment status table not readable: termination type left empty"
                );
                return Ok(None);
            }
            Err(error) if !error.retryable => {
                tracing::info!(
                    source = %self.source,
                    "BambooHR employment status table refused: termination type left empty"
                );
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        let rows: Value = response.json(&what)?;
        Ok(termination_type_of(&rows, ended))
    }

    async fn changes(&self, cursor: Option<&str>, now: Timestamp) -> Result<Changes, HrError> {
        let Some(since) = cursor else {
            return Ok(Changes {
                employee_ids: Vec::new(),
                cursor: whole_seconds(now),
            });
        };
        let what = "list the BambooHR employees changed since the last poll";
        let path = format!("/employees/changed?since={}", encode(since));
        let response = self.api.send(Method::GET, &path, None, what).await?;
        if !response.is_success() {
            return Err(response.unexpected(what));
        }
        let body: Value = response.json(what)?;
        let Value::Object(body) = body else {
            return Err(HrError::permanent(format!(
                "{what}: the response is not a JSON object"
            )));
        };
        let mut employee_ids = Vec::new();
        let mut push = |key: Option<&str>, entry: &Value| {
            let id = entry
                .get("id")
                .and_then(scalar_text)
                .or_else(|| key.map(str::to_owned));
            if let Some(id) = id
                && !employee_ids.contains(&id)
            {
                employee_ids.push(id);
            }
        };
        match body.get("employees") {
            Some(Value::Object(entries)) => {
                for (key, entry) in entries {
                    push(Some(key), entry);
                }
            }
            // PHP encodes an empty map as `[]`.
            Some(Value::Array(entries)) => {
                for entry in entries {
                    push(None, entry);
                }
            }
            None | Some(Value::Null) => {}
            Some(_) => {
                return Err(HrError::permanent(format!(
                    "{what}: `employees` is not an object of changed employees"
                )));
            }
        }
        let cursor = body
            .get("latest")
            .and_then(scalar_text)
            .unwrap_or_else(|| whole_seconds(now));
        Ok(Changes {
            employee_ids,
            cursor,
        })
    }

    async fn write(&self, worker: &Worker, identifiers: &Identifiers) -> Result<(), HrError> {
        let employee_id = worker.key.employee_id();
        let segment = id_segment(&self.source, "BambooHR", employee_id)?;
        let what = format!(
            "source {}: write the work email of BambooHR employee {employee_id}",
            self.source
        );
        if !self.writes_back {
            return Err(HrError::permanent(format!(
                "{what}: write-back is turned off for source {}",
                self.source
            )));
        }
        let body = Body::Json(serde_json::json!({ "workEmail": identifiers.mail }));
        let path = format!("/employees/{segment}");
        match self.api.send(Method::POST, &path, Some(&body), &what).await {
            Ok(response) if response.is_success() => Ok(()),
            Ok(response) if response.status == StatusCode::NOT_FOUND => Err(HrError::permanent(
                format!("{what}: BambooHR has no such employee (HTTP 404)"),
            )),
            // BambooHR: "duplicate emails are not allowed".
            Ok(response) if response.status == StatusCode::CONFLICT => {
                Err(HrError::permanent(format!(
                    "{what}: BambooHR refused it (HTTP 409): another BambooHR employee has this \
                     work email; BambooHR allows no duplicate emails"
                ))
                .with_status(409))
            }
            Ok(response) => Err(response.unexpected(&what)),
            // The API client answers 401 and 403 alike; BambooHR documents 403 on this call
            // as "the API user may not edit the field".
            Err(error) if error.status == Some(403) => Err(HrError::permanent(format!(
                "{what}: BambooHR refused it (HTTP 403): the API key's user may not edit Work Email; \
                     give that user edit access to the field, or set writeback = false on source {}",
                self.source
            ))),
            Err(error) => Err(error),
        }
    }
}

impl Connector for BambooHr {
    /// `GET /employees/changed?since=<now>`: the change feed, which lists nobody since now.
    fn check(&self, now: Timestamp) -> Option<BoxFuture<'_, Result<String, HrError>>> {
        let path = format!("/employees/changed?since={}", encode(&whole_seconds(now)));
        let what = format!("source {}: read the BambooHR change feed", self.source);
        Some(Box::pin(async move {
            self.api.probe(Method::GET, &path, None, what).await
        }))
    }

    fn source(&self) -> &str {
        &self.source
    }

    fn verify(&self, delivery: &Delivery<'_>) -> Result<(), Unauthorized> {
        let signature = delivery
            .headers
            .get(SIGNATURE_HEADER)
            .ok_or_else(|| Unauthorized(format!("missing the {SIGNATURE_HEADER} header")))?;
        let timestamp = delivery
            .headers
            .get(TIMESTAMP_HEADER)
            .ok_or_else(|| Unauthorized(format!("missing the {TIMESTAMP_HEADER} header")))?;
        let presented = signature
            .to_str()
            .ok()
            .and_then(|text| {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(text.trim(), &mut bytes)
                    .ok()
                    .map(|()| bytes)
            })
            .ok_or_else(|| {
                Unauthorized(format!(
                    "the {SIGNATURE_HEADER} header is not a hex HMAC-SHA256 (64 hex digits)"
                ))
            })?;
        let signed_at = timestamp
            .to_str()
            .ok()
            .map(str::trim)
            .and_then(signed_time)
            .ok_or_else(|| {
                Unauthorized(format!(
                    "the {TIMESTAMP_HEADER} header is neither a Unix time in whole seconds (digits, no leading zero) nor an ISO 8601 date-time (2026-01-31T18:42:00+0000)"
                ))
            })?;
        let mut mac = keyed(self.secret.bytes()?);
        mac.update(delivery.body);
        mac.update(timestamp.as_bytes());
        // `verify_slice` compares in constant time.
        mac.verify_slice(&presented).map_err(|_| {
            Unauthorized(format!(
                "the {SIGNATURE_HEADER} header does not match the body and {TIMESTAMP_HEADER} under this source's webhook secret"
            ))
        })?;
        let age = delivery.received_at.duration_since(signed_at);
        if age > MAX_AGE {
            return Err(Unauthorized(format!(
                "the delivery was signed at {signed_at}, more than 3 hours old ({} seconds); BambooHR's retries end within 2.5 hours, so it is a replay (or a clock out of step)",
                age.as_secs()
            )));
        }
        if -age > MAX_AHEAD {
            return Err(Unauthorized(format!(
                "the delivery was signed at {signed_at}, more than 5 minutes ahead of this receiver's clock ({} seconds): a clock out of step",
                (-age).as_secs()
            )));
        }
        Ok(())
    }

    fn parse(&self, delivery: &Delivery<'_>) -> Result<Parsed, BadPayload> {
        let media = delivery.media_type();
        let first = delivery
            .body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .copied();
        let form = match media.as_deref() {
            Some("application/x-www-form-urlencoded") => true,
            Some(_) => false,
            None => !matches!(first, Some(b'{' | b'[')),
        };
        let value = if form {
            form_to_json(delivery.body)?
        } else {
            crate::connector::read_json(delivery.body)?
        };
        events_of(&value, &delivery.digest())
    }

    fn fetch<'a>(
        &'a self,
        employee_id: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Fetched, HrError>> {
        Box::pin(self.fetch_worker(employee_id, now))
    }

    fn changed_since<'a>(
        &'a self,
        cursor: Option<&'a str>,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Changes, HrError>> {
        Box::pin(self.changes(cursor, now))
    }

    fn writes_back(&self) -> bool {
        self.writes_back
    }

    fn write_back<'a>(
        &'a self,
        worker: &'a Worker,
        identifiers: &'a Identifiers,
    ) -> BoxFuture<'a, Result<(), HrError>> {
        Box::pin(self.write(worker, identifiers))
    }
}

/// `now` to the second below, as `YYYY-MM-DDTHH:MM:SSZ`: the form of BambooHR's `since`
/// example (it answers 400 to a `since` it cannot read).
fn whole_seconds(now: Timestamp) -> String {
    Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// The events of a webhook body (event-based or field-based), as JSON.
fn events_of(value: &Value, digest: &str) -> Result<Parsed, BadPayload> {
    let Value::Object(body) = value else {
        return Err(BadPayload(format!(
            "the body is {}, expected an object",
            type_name(value)
        )));
    };
    if let Some(employees) = body.get("employees") {
        return field_based(employees, digest);
    }
    match body.get("type") {
        Some(Value::String(kind)) => event_based(kind.trim(), body.get("data"), digest),
        Some(other) => Err(BadPayload(format!(
            "type is {}, expected the event name",
            type_name(other)
        ))),
        None => Err(BadPayload(
            "the body has neither `type` (an event-based webhook) nor `employees` (a field-based webhook)"
                .into(),
        )),
    }
}

fn event_based(kind: &str, data: Option<&Value>, digest: &str) -> Result<Parsed, BadPayload> {
    let action = match kind {
        // `employee.update` is how BambooHR's own page spells the subscription once.
        "employee.created" | "employee.updated" | "employee.update" => Action::Fetch,
        "employee.deleted" => Action::Deleted,
        other => {
            tracing::debug!(event = other, "BambooHR event hrsync does not act on");
            return Ok(Parsed::default());
        }
    };
    let data = match data {
        Some(Value::Object(data)) => data,
        Some(other) => {
            return Err(BadPayload(format!(
                "data is {}, expected an object",
                type_name(other)
            )));
        }
        None => return Err(BadPayload("data is missing".into())),
    };
    let employee_id = employee_id(data.get("employeeId"), "data.employeeId")?;
    Ok(Parsed {
        events: vec![Event {
            dedupe: format!("{digest}#{employee_id}"),
            employee_id,
            event_type: kind.to_owned(),
            action,
            operation: None,
        }],
        ..Parsed::default()
    })
}

fn field_based(employees: &Value, digest: &str) -> Result<Parsed, BadPayload> {
    let Value::Array(entries) = employees else {
        return Err(BadPayload(format!(
            "employees is {}, expected an array",
            type_name(employees)
        )));
    };
    let mut events = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let Value::Object(entry) = entry else {
            return Err(BadPayload(format!(
                "employees[{index}] is {}, expected an object",
                type_name(entry)
            )));
        };
        let employee_id = employee_id(entry.get("id"), &format!("employees[{index}].id"))?;
        let action = match entry.get("action") {
            Some(Value::String(action)) => action.trim().to_ascii_lowercase(),
            Some(other) => {
                return Err(BadPayload(format!(
                    "employees[{index}].action is {}, expected Created, Updated or Deleted",
                    type_name(other)
                )));
            }
            None => {
                return Err(BadPayload(format!("employees[{index}].action is missing")));
            }
        };
        events.push(Event {
            // One body may name an employee twice (two actions): the index keeps both.
            dedupe: format!("{digest}#{employee_id}#{index}"),
            event_type: format!(
                "employee_with_fields.{}",
                crate::connector::field_name(&action)
            ),
            action: match action.as_str() {
                "deleted" => Action::Deleted,
                // Created, Updated, and any action added later: read the record.
                _ => Action::Fetch,
            },
            employee_id,
            operation: None,
        });
    }
    Ok(Parsed {
        events,
        ..Parsed::default()
    })
}

/// An employee id: a non-blank string or a whole number.
fn employee_id(value: Option<&Value>, field: &str) -> Result<String, BadPayload> {
    match value {
        None | Some(Value::Null) => Err(BadPayload(format!("{field} is missing"))),
        Some(value) => match scalar_text(value) {
            Some(id) => crate::connector::checked_id(field, id),
            None if value.is_string() => Err(BadPayload(format!("{field} is empty"))),
            None => Err(BadPayload(format!(
                "{field} is {}, expected an employee id",
                type_name(value)
            ))),
        },
    }
}

/// A string (trimmed, non-empty) or an integer, as text.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => {
            let text = text.trim();
            (!text.is_empty()).then(|| text.to_owned())
        }
        Value::Number(number) if number.is_u64() || number.is_i64() => Some(number.to_string()),
        _ => None,
    }
}

/// The deepest a form key may nest: BambooHR's deepest is 3 (`data[changedFields][0]`).
/// Deeper keys are refused, so a hostile body cannot make the nesting below unbounded.
pub const MAX_FORM_DEPTH: usize = 8;

/// A form body (`a=1&data[b]=2&data[c][0]=3`) as the JSON it encodes: bracketed keys nest,
/// and objects whose keys are all indexes become arrays.
fn form_to_json(body: &[u8]) -> Result<Value, BadPayload> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| BadPayload("the body is not a valid form (key=value&...)".into()))?;
    let mut root = Map::new();
    for (key, value) in pairs {
        let path = form_path(&key)?;
        insert_path(&mut root, &path, value).map_err(|twice| {
            twice.unwrap_or_else(|| {
                BadPayload(format!(
                    "the form gives the key {} twice (ambiguous: which one holds?)",
                    crate::connector::field_name(&key)
                ))
            })
        })?;
    }
    Ok(arrays(Value::Object(root)))
}

/// A form key's parts: `data[c][0]` is `data`, `c`, `0`; at most [`MAX_FORM_DEPTH`] of them.
fn form_path(key: &str) -> Result<Vec<String>, BadPayload> {
    let malformed = || BadPayload("a form key is not of the form name[part][part]".into());
    let (head, mut rest) = match key.find('[') {
        Some(at) => (&key[..at], &key[at..]),
        None => (key, ""),
    };
    if head.is_empty() {
        return Err(malformed());
    }
    let mut path = vec![head.to_owned()];
    while !rest.is_empty() {
        if path.len() == MAX_FORM_DEPTH {
            return Err(BadPayload(format!(
                "a form key nests more than {MAX_FORM_DEPTH} levels deep (name[a][b]...); BambooHR's forms nest 3"
            )));
        }
        let inner = rest.strip_prefix('[').ok_or_else(malformed)?;
        let end = inner.find(']').ok_or_else(malformed)?;
        path.push(inner[..end].to_owned());
        rest = &inner[end + 1..];
    }
    Ok(path)
}

/// Puts `value` at `path` in `root`, walking down a level at a time (no recursion). The
/// error is `None` when the key already has a value.
fn insert_path(
    root: &mut Map<String, Value>,
    path: &[String],
    value: String,
) -> Result<(), Option<BadPayload>> {
    let conflict = || {
        Some(BadPayload(
            "a form key is given both as a value and as a group".into(),
        ))
    };
    let Some((head, parts)) = path.split_first() else {
        return Ok(());
    };
    let mut object = root;
    let mut key = head.clone();
    for part in parts {
        let slot = object
            .entry(key)
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(inner) = slot else {
            return Err(conflict());
        };
        // `name[]` appends: give it the next free index.
        key = if part.is_empty() {
            inner.len().to_string()
        } else {
            part.clone()
        };
        object = inner;
    }
    match object.get(&key) {
        Some(Value::Object(_)) => Err(conflict()),
        Some(_) => Err(None),
        None => {
            object.insert(key, Value::String(value));
            Ok(())
        }
    }
}

/// Index-keyed objects as arrays. Recursive, but only over form values, whose depth
/// [`form_path`] bounds.
fn arrays(value: Value) -> Value {
    match value {
        Value::Object(object) => {
            let indexed = !object.is_empty()
                && object
                    .keys()
                    .all(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
            if indexed {
                let mut items: Vec<(u64, Value)> = object
                    .into_iter()
                    .map(|(k, v)| (k.parse().unwrap_or(u64::MAX), arrays(v)))
                    .collect();
                items.sort_by_key(|(index, _)| *index);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(object.into_iter().map(|(k, v)| (k, arrays(v))).collect())
            }
        }
        other => other,
    }
}

/// A problem with one BambooHR field of a fetched record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldProblem {
    field: &'static str,
    problem: String,
}

impl std::fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

fn problem(field: &'static str, problem: impl Into<String>) -> FieldProblem {
    FieldProblem {
        field,
        problem: problem.into(),
    }
}

/// A text field: absent, `null` and blank are `None`; numbers are taken as text.
fn text(record: &Map<String, Value>, field: &'static str) -> Result<Option<String>, FieldProblem> {
    match record.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => {
            let value = value.trim();
            Ok((!value.is_empty()).then(|| value.to_owned()))
        }
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(other) => Err(problem(
            field,
            format!("is {}, expected text", type_name(other)),
        )),
    }
}

/// A `YYYY-MM-DD` date; `0000-00-00` (BambooHR's empty date) is `None`.
fn date(record: &Map<String, Value>, field: &'static str) -> Result<Option<Date>, FieldProblem> {
    let Some(value) = text(record, field)? else {
        return Ok(None);
    };
    if value == "0000-00-00" {
        return Ok(None);
    }
    parse_date(&value)
        .map(Some)
        .ok_or_else(|| problem(field, "is not a date (YYYY-MM-DD)"))
}

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

/// The record of `GET /employees/{id}` as a worker (not yet validated).
fn normalize(
    source: &str,
    employee_id: &str,
    record: &Map<String, Value>,
    now: Timestamp,
) -> Result<Worker, FieldProblem> {
    let given = text(record, "firstName")?.unwrap_or_default();
    let family = text(record, "lastName")?.unwrap_or_default();
    let mut worker = Worker::new(WorkerKey::new(source, employee_id), given, family, now);
    worker.middle_name = text(record, "middleName")?;
    worker.preferred_name = text(record, "preferredName")?;
    worker.work_email = text(record, "workEmail")?;
    worker.personal_email = text(record, "homeEmail")?;
    worker.hire_date = date(record, "hireDate")?;
    worker.termination_date = date(record, "terminationDate")?;
    worker.status = match text(record, "status")? {
        None => {
            return Err(problem(
                "status",
                "is missing (can the API key's user read Status?)",
            ));
        }
        Some(status) => match status.to_ascii_lowercase().as_str() {
            "active" => Status::Active,
            "inactive" if worker.termination_date.is_some() => Status::Terminated,
            "inactive" => Status::Inactive,
            _ => return Err(problem("status", "is neither Active nor Inactive")),
        },
    };
    worker.worker_type = text(record, "employmentHistoryStatus")?;
    worker.job_title = text(record, "jobTitle")?;
    worker.department = text(record, "department")?;
    worker.division = text(record, "division")?;
    worker.location = text(record, "location")?;
    worker.country = text(record, "country")?;
    worker.manager_id = text(record, "supervisorEId")?.filter(|id| id != "0");
    Ok(worker)
}

/// The BambooHR field behind a [`Worker`] field, for error messages.
fn vendor_field(field: &str) -> Option<&'static str> {
    Some(match field {
        "given_name" => "firstName",
        "family_name" => "lastName",
        "hire_date" => "hireDate",
        "termination_date" => "terminationDate",
        "status" => "status",
        "manager_id" => "supervisorEId",
        _ => return None,
    })
}

fn describe(invalid: &InvalidWorker) -> String {
    match vendor_field(invalid.field) {
        Some(vendor) => format!("{} (BambooHR {vendor}): {}", invalid.field, invalid.problem),
        None => invalid.to_string(),
    }
}

/// The `terminationTypeId` of the employment-status row dated on the termination date, else
/// of the latest row that has one.
fn termination_type_of(rows: &Value, ended: Date) -> Option<String> {
    let Value::Array(rows) = rows else {
        return None;
    };
    let ended = ended.to_string();
    let mut typed: Vec<(String, String)> = rows
        .iter()
        .filter_map(|row| {
            let row = row.as_object()?;
            let kind = row.get("terminationTypeId").and_then(scalar_text)?;
            let date = row.get("date").and_then(scalar_text).unwrap_or_default();
            Some((date, kind))
        })
        .collect();
    // `YYYY-MM-DD` sorts as text.
    typed.sort();
    typed
        .iter()
        .rev()
        .find(|(date, _)| *date == ended)
        .or_else(|| typed.last())
        .map(|(_, kind)| kind.clone())
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_of_body_then_timestamp() {
        // Computed independently: printf '%s' '{}1' | openssl dgst -sha256 -hmac key
        assert_eq!(
            sign(b"key", b"{}", "1"),
            "82beac0dd2d20fb75c3e7ff37612607bd43588e00b65098366f0b9610d10f34b"
        );
        assert_ne!(sign(b"key", b"{}", "1"), sign(b"key", b"1{}", ""));
    }

    #[test]
    fn signed_times_in_either_form() {
        let at: Timestamp = "2026-01-31T18:42:00Z".parse().unwrap();
        for text in [
            "1769884920",
            "2026-01-31T18:42:00Z",
            "2026-01-31T18:42:00+0000",
            "2026-01-31T18:42:00+00:00",
            "2026-01-31T13:42:00-0500",
            "2026-01-31T19:42:00+01:00",
        ] {
            assert_eq!(signed_time(text), Some(at), "{text}");
        }
        for text in [
            "",
            "0",
            "01769884920",
            "2026-01-31 18:42:00Z",
            "2026-01-31T18:42:00",
            "2026-01-31T18:42:00.5Z",
            "2026-01-31T18:42:00+00",
            "2026-02-31T18:42:00Z",
        ] {
            assert_eq!(signed_time(text), None, "{text}");
        }
    }

    #[test]
    fn form_bodies_nest_like_json() {
        let body = b"type=employee.updated&data%5BcompanyId%5D=12345&data%5BemployeeId%5D=67890&data%5BchangedFields%5D%5B0%5D=firstName&data%5BchangedFields%5D%5B1%5D=lastName";
        let value = form_to_json(body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "type": "employee.updated",
                "data": {"companyId": "12345", "employeeId": "67890",
                         "changedFields": ["firstName", "lastName"]}
            })
        );
        assert!(form_to_json(b"a=1&a[b]=2").is_err());
        assert!(form_to_json(b"[x]=1").is_err());
    }

    #[test]
    fn termination_type_prefers_the_row_of_the_termination_date() {
        let rows = serde_json::json!([
            {"date": "2020-01-01", "employmentStatus": "Full-Time", "terminationTypeId": ""},
            {"date": "2026-03-31", "employmentStatus": "Terminated", "terminationTypeId": "Voluntary"},
            {"date": "2024-05-01", "employmentStatus": "Terminated", "terminationTypeId": "Involuntary"},
        ]);
        let ended = jiff::civil::date(2026, 3, 31);
        assert_eq!(
            termination_type_of(&rows, ended).as_deref(),
            Some("Voluntary")
        );
        let other = jiff::civil::date(2027, 1, 1);
        assert_eq!(
            termination_type_of(&rows, other).as_deref(),
            Some("Voluntary")
        );
        assert_eq!(termination_type_of(&serde_json::json!([]), ended), None);
    }
}
