//! HiBob (Bob): `kind = "hibob"`.
//!
//! ## Set up in Bob
//!
//! - **Webhook** (Settings > Integrations > Webhooks, version **v2**): URL
//!   `https://<host>/webhooks/<source name>`; events `employee.created`, `employee.updated`,
//!   `employee.deleted`, `table.entry.created`, `table.entry.updated` and the lifecycle
//!   events `employee.joined`, `employee.left`, `employee.inactivated`,
//!   `employee.activated`, `employee.temporaryLeave`. Copy the webhook's secret into the
//!   source's `webhook_secret`. Time-off, task and document events may be subscribed too:
//!   they are taken and ignored.
//! - **Service user** (Settings > Integrations > Service users): its id goes in
//!   `service_user_id`, its token in `token`. Give its permission group read access to the
//!   employees hrsync manages (including inactive ones) and to the categories *Basic info*,
//!   *Work*, *Employment*, *Lifecycle* (internal status, termination), *Home* (private
//!   email), *Address* (country) and *Payroll* (employment type); for write-back, *edit* on
//!   the *Email* field. A field the service user may not see is left out of the answer
//!   without an error (documented), so a missing permission shows as a missing value.
//! - `base_url = "https://api.hibob.com/v1"` (sandbox: `https://api.sandbox.hibob.com/v1`).
//!
//! ## Wire facts, and where they come from
//!
//! - [O] apidocs.hibob.com "Working with webhooks": deliveries are signed with HMAC-SHA512 of
//!   the request payload under the webhook's secret, sent in the `Bob-Signature` header as
//!   base64. [S] several independent implementations: standard base64 of the raw digest, no
//!   prefix, no timestamp. There is no replay protection, so a redelivery (Bob retries for up
//!   to three days) verifies again; it is dropped by its dedupe id (`sha256(body)#employeeId`).
//! - [O] On creating a webhook Bob POSTs `Ping test` as a string, then (if that failed)
//!   `{"text":"Ping test"}`, and needs a 2xx. The docs say requests are signed but do not
//!   say the ping is; a body that is *exactly* the ping is accepted signed or not (it
//!   carries no data and causes no work) and answered as a handshake.
//! - [O] v2 envelope `{companyId, type, triggeredBy, triggeredAt, version:"v2", data}`;
//!   `data.employeeId` names the employee (its backend id, `root.id`); table events add
//!   `tableId` and `effectiveDate` or `id`. Lifecycle events fire at midnight, site time, on
//!   the effective date. Event → action: `employee.deleted` → deleted; every other
//!   `employee.*` and `table.entry.*` → fetch; anything else (time off, todo, docs) is
//!   taken and ignored.
//! - [O] Fetch: `POST /people/{id}` ("Read company employee fields by employee ID") with
//!   HTTP Basic `service_user_id:token` and `{"fields": [...], "humanReadable": "APPEND"}`.
//!   The answer carries each field under its slash key (`"/work/title": {"value": ...}`)
//!   and also in nested category objects (`"work": {"title": ...}`); both are read.
//!   `APPEND` (not `REPLACE`) keeps machine values (ISO dates; the manager's employee id)
//!   and adds a `humanReadable` node with list items' names (department, title, site),
//!   which are taken from there. Fields without permission are silently omitted. 404 →
//!   the employee is gone.
//! - [O] `showInactive` is a parameter of `POST /people/search` only. When the single read
//!   answers 404, the employee is looked up once more with `POST /people/search`,
//!   `filters: [{fieldPath: "root.id", operator: "equals", values: [id]}]` and
//!   `showInactive: true`, so a terminated employee's record is still read; no match →
//!   gone.
//! - [S] `work.reportsTo` is the manager as an object `{id, firstName, surname, email,
//!   displayName}` (`id` = the manager's `root.id`); `work.manager` is that id alone. Either
//!   gives `manager_id`.
//! - [S] field ids seen in public integrations: `root.secondName` (middle name),
//!   `home.privateEmail`, `payroll.employment.type`, `address.country`,
//!   `work.employeeIdInCompany`. [U] `work.division`, `internal.terminationReason`.
//! - Time zone: Bob sites have one, but no documented people field exposes it, so
//!   `time_zone` is left unset.
//! - [S] Write-back: `PUT /people/{id}/email` with `{"email": "..."}` changes the work
//!   (login) email; Bob may send the employee a verification invitation. A 304 (nothing to
//!   change) counts as done. Bob has no username field.
//!
//! ## Who is who
//!
//! The worker key is Bob's backend id (`root.id`: 19 digits, e.g. `3332883884017713238`,
//! [O] apidocs.hibob.com reference post_people-identifier): what webhooks name
//! (`data.employeeId`), what the API is read and written back by, and what `work.reportsTo`
//! refers to ([O] fields-metadata: an employee-reference is "the string ID of an employee").
//! The employee id the directory carries (`employeeId`, at most 16 characters) is the value
//! of the source's `employee_id_field`, by default `work.employeeIdInCompany` (Bob's
//! *Employee ID* in the Work category); the config refuses `root.id`. A record whose field is
//! empty (not filled in, or in a category the service user may not see: Bob omits it
//! silently, [O] people-read-api-contract) or too long is a permanent fetch error naming the
//! field, before anything reaches the directory.
//!
//! ## Status mapping
//!
//! `internal.lifecycleStatus` first: `employed`, `hired` (start date ahead) → active;
//! `terminated` → terminated; `garden leave`, `leave`, `parental leave` and any other
//! `... leave` → leave. Anything else falls back to `internal.status`: `Active` → active,
//! `Inactive` → inactive.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use hrsync_core::worker::EMPLOYEE_ID_MAX_CHARS;
use hrsync_core::{Identifiers, Status, Worker, WorkerKey};
use jiff::Timestamp;
use jiff::civil::Date;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha512;

use crate::api::{ApiClient, Auth, Body, RetryPolicy, id_segment};
use crate::connector::{
    Action, BadPayload, BoxFuture, Connector, Delivery, Fetched, HrError, Parsed, Unauthorized,
};
use crate::sources::{Setup, SetupError};

/// The header that carries the delivery's signature.
pub const SIGNATURE_HEADER: &str = "Bob-Signature";

/// The body of Bob's connection test.
pub const PING: &str = "Ping test";

/// The field that is the worker's employee id when `employee_id_field` is not set: Bob's
/// "Employee ID" in the Work category, the short number HR gives (`root.id`, the backend id,
/// has 19 digits and cannot be the directory's `employeeId`).
pub const DEFAULT_ID_FIELD: &str = "work.employeeIdInCompany";

/// The employee fields every fetch asks for (dot notation, as the API takes them).
pub const FIELDS: &[&str] = &[
    "root.id",
    "root.firstName",
    "root.surname",
    "root.secondName",
    "root.displayName",
    "root.email",
    "home.privateEmail",
    "work.startDate",
    "work.title",
    "work.department",
    "work.division",
    "work.site",
    "work.siteId",
    "work.reportsTo",
    "work.manager",
    "work.employeeIdInCompany",
    "internal.status",
    "internal.lifecycleStatus",
    "internal.terminationDate",
    "internal.terminationReason",
    "payroll.employment.type",
    "address.country",
];

/// `base64(HMAC-SHA512(secret, body))`: the `Bob-Signature` of `body`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = hmac_of(secret);
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

fn hmac_of(secret: &[u8]) -> Hmac<Sha512> {
    // HMAC takes a key of any length: this cannot fail.
    <Hmac<Sha512> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!())
}

/// Whether the body is Bob's connection test: `Ping test` as raw text or a JSON string, or
/// `{"text":"Ping test"}`, and nothing else.
pub fn is_ping(body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    let text = text.trim();
    if text == PING {
        return true;
    }
    match crate::connector::read_json(text.as_bytes()) {
        Ok(Value::String(inner)) => inner == PING,
        Ok(Value::Object(object)) => {
            object.len() == 1 && object.get("text").and_then(Value::as_str) == Some(PING)
        }
        _ => false,
    }
}

/// One `kind = "hibob"` source.
#[derive(Debug)]
pub struct HiBob {
    source: String,
    secret: crate::sources::WebhookSecret,
    api: ApiClient,
    writes_back: bool,
    /// The field whose value is the worker's employee id (`employee_id_field`).
    id_field: String,
    /// [`FIELDS`] and `id_field`: what every read asks for.
    fields: Vec<String>,
}

impl HiBob {
    pub fn new(setup: Setup<'_>) -> Result<Self, SetupError> {
        let secret = setup.webhook_secret()?;
        let user = setup.secret("service_user_id")?;
        let password = setup.secret("token")?;
        let base_url = setup.base_url()?;
        let api = ApiClient::new(
            "HiBob",
            setup.http.clone(),
            base_url,
            Auth::Basic { user, password },
        );
        let id_field = setup
            .config
            .employee_id_field()
            .unwrap_or(DEFAULT_ID_FIELD)
            .to_owned();
        let mut fields: Vec<String> = FIELDS.iter().map(|f| (*f).to_owned()).collect();
        if !fields.contains(&id_field) {
            fields.push(id_field.clone());
        }
        Ok(Self {
            source: setup.name.to_owned(),
            secret,
            api,
            writes_back: setup.writes_back(),
            id_field,
            fields,
        })
    }

    /// The API client's retries (tests shorten them).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.api = self.api.with_retry(retry);
        self
    }

    fn check_signature(&self, delivery: &Delivery<'_>) -> Result<(), Unauthorized> {
        let header = delivery
            .header(SIGNATURE_HEADER)
            .ok_or_else(|| Unauthorized(format!("missing header {SIGNATURE_HEADER}")))?;
        let signature = STANDARD
            .decode(header.trim())
            .map_err(|_| Unauthorized(format!("header {SIGNATURE_HEADER} is not base64")))?;
        let mut mac = hmac_of(self.secret.bytes()?);
        mac.update(delivery.body);
        mac.verify_slice(&signature).map_err(|_| {
            Unauthorized(format!(
                "header {SIGNATURE_HEADER} does not match the body (check webhook_secret)"
            ))
        })
    }

    async fn read(&self, employee_id: &str, now: Timestamp) -> Result<Fetched, HrError> {
        let segment = id_segment(&self.source, "HiBob", employee_id)?;
        let what = format!("source {}: fetch HiBob employee {employee_id}", self.source);
        let body = Body::Json(json!({"fields": self.fields, "humanReadable": "APPEND"}));
        let path = format!("/people/{segment}");
        let response = self
            .api
            .send(Method::POST, &path, Some(&body), &what)
            .await?;
        let record = match response.status {
            status if status.is_success() => response.json::<Value>(&what)?,
            StatusCode::NOT_FOUND => match self.search_inactive(employee_id, &what).await? {
                Some(record) => record,
                None => {
                    tracing::debug!(source = %self.source, employee_id, "HiBob: no such employee");
                    return Ok(Fetched::Gone);
                }
            },
            _ => return Err(response.unexpected(&what)),
        };
        let worker = normalize(&self.source, employee_id, &self.id_field, &record, now)
            .map_err(|problem| HrError::permanent(format!("{what}: {problem}")))?;
        worker.validate_record().map_err(|e| {
            HrError::permanent(format!("{what}: the record cannot be acted on: {e}"))
        })?;
        Ok(Fetched::Worker(Box::new(worker)))
    }

    /// The employee's record among inactive employees too (`showInactive` exists on the
    /// search only); `None` when there is no such employee.
    async fn search_inactive(
        &self,
        employee_id: &str,
        what: &str,
    ) -> Result<Option<Value>, HrError> {
        let body = Body::Json(json!({
            "fields": self.fields,
            "filters": [{"fieldPath": "root.id", "operator": "equals", "values": [employee_id]}],
            "showInactive": true,
            "humanReadable": "APPEND",
        }));
        let response = self
            .api
            .send(Method::POST, "/people/search", Some(&body), what)
            .await?;
        if !response.is_success() {
            return Err(response.unexpected(what));
        }
        #[derive(serde::Deserialize)]
        struct Found {
            #[serde(default)]
            employees: Vec<Value>,
        }
        let found: Found = response.json(what)?;
        Ok(found.employees.into_iter().find(|record| {
            field(record, "root.id").and_then(id_text).as_deref() == Some(employee_id)
        }))
    }

    async fn write_email(&self, worker: &Worker, identifiers: &Identifiers) -> Result<(), HrError> {
        let employee_id = worker.key.employee_id();
        let segment = id_segment(&self.source, "HiBob", employee_id)?;
        let what = format!(
            "source {}: write the work email of HiBob employee {employee_id}",
            self.source
        );
        if !self.writes_back {
            return Err(HrError::permanent(format!(
                "{what}: write-back is turned off for this source"
            )));
        }
        let body = Body::Json(json!({"email": identifiers.mail}));
        let path = format!("/people/{segment}/email");
        let response = self
            .api
            .send(Method::PUT, &path, Some(&body), &what)
            .await?;
        match response.status {
            status if status.is_success() || status == StatusCode::NOT_MODIFIED => {
                tracing::debug!(source = %self.source, employee_id, "HiBob: work email written");
                Ok(())
            }
            StatusCode::NOT_FOUND => Err(HrError::permanent(format!(
                "{what}: HiBob has no such employee (HTTP 404)"
            ))),
            _ => Err(response.unexpected(&what)),
        }
    }
}

impl Connector for HiBob {
    /// `POST /people/search` for an id no employee has: a read that lists nobody.
    fn check(&self, now: Timestamp) -> Option<BoxFuture<'_, Result<String, HrError>>> {
        let _ = now;
        let body = Body::Json(json!({
            "fields": ["root.id"],
            "filters": [{"fieldPath": "root.id", "operator": "equals", "values": ["hrsync-doctor"]}],
        }));
        let what = format!("source {}: search HiBob employees", self.source);
        Some(Box::pin(async move {
            self.api
                .probe(Method::POST, "/people/search", Some(body), what)
                .await
        }))
    }

    fn source(&self) -> &str {
        &self.source
    }

    fn verify(&self, delivery: &Delivery<'_>) -> Result<(), Unauthorized> {
        match self.check_signature(delivery) {
            Ok(()) => Ok(()),
            // The connection test may come unsigned; it carries nothing and starts no work.
            Err(_) if is_ping(delivery.body) => Ok(()),
            Err(refused) => Err(refused),
        }
    }

    fn parse(&self, delivery: &Delivery<'_>) -> Result<Parsed, BadPayload> {
        if is_ping(delivery.body) {
            return Ok(Parsed {
                handshake: true,
                ..Parsed::default()
            });
        }
        let value = crate::connector::read_json(delivery.body)?;
        let Value::Object(envelope) = value else {
            return Err(BadPayload(
                "the body is not a JSON object (a Bob webhook v2 envelope)".into(),
            ));
        };
        let event_type = envelope
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| BadPayload("type is missing or not text".into()))?;
        let Some(action) = action_of(event_type) else {
            tracing::debug!(source = %self.source, event_type, "HiBob: event ignored");
            return Ok(Parsed::default());
        };
        let data = envelope
            .get("data")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                BadPayload("data is missing or not an object in an employee event".into())
            })?;
        let employee_id = data.get("employeeId").and_then(id_text).ok_or_else(|| {
            BadPayload("data.employeeId is missing or empty in an employee event".into())
        })?;
        let employee_id = crate::connector::checked_id("data.employeeId", employee_id)?;
        Ok(Parsed::one(
            delivery,
            employee_id,
            event_type.to_owned(),
            action,
        ))
    }

    fn fetch<'a>(
        &'a self,
        employee_id: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Fetched, HrError>> {
        Box::pin(self.read(employee_id, now))
    }

    fn writes_back(&self) -> bool {
        self.writes_back
    }

    fn write_back<'a>(
        &'a self,
        worker: &'a Worker,
        identifiers: &'a Identifiers,
    ) -> BoxFuture<'a, Result<(), HrError>> {
        Box::pin(self.write_email(worker, identifiers))
    }
}

/// What an event type asks for; `None`: not about an employee's record (time off, tasks,
/// documents), ignored.
fn action_of(event_type: &str) -> Option<Action> {
    match event_type {
        "employee.deleted" => Some(Action::Deleted),
        // created, updated, joined, left, inactivated, activated, temporaryLeave, and any
        // later employee event: a fetch reads the record as it is now.
        t if t.starts_with("employee.") => Some(Action::Fetch),
        t if t.starts_with("table.entry.") => Some(Action::Fetch),
        _ => None,
    }
}

/// An id given as text or a number.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.trim().to_owned()).filter(|t| !t.is_empty()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A field's machine value: from its slash key (`"/work/title": {"value": ...}`), else from
/// the nested category objects (`"work": {"title": ...}`; `root.*` at the top level).
/// `None` when absent or null.
fn field<'a>(record: &'a Value, id: &str) -> Option<&'a Value> {
    let slash = format!("/{}", id.replace('.', "/"));
    if let Some(value) = record
        .get(&slash)
        .and_then(|entry| entry.get("value"))
        .filter(|v| !v.is_null())
    {
        return Some(value);
    }
    let mut segments = id.split('.');
    let first = segments.next()?;
    let mut current = match first {
        "root" => record,
        category => record.get(category)?,
    };
    for segment in segments {
        current = current.get(segment)?;
    }
    (!current.is_null()).then_some(current)
}

/// Text of a scalar value; `None` for blank text, null, objects and arrays.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.trim().to_owned()).filter(|t| !t.is_empty()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A field's human-readable value (a list item's name rather than its id), where Bob gives
/// one, else its machine value.
fn human(record: &Value, id: &str) -> Option<String> {
    let slash = format!("/{}", id.replace('.', "/"));
    record
        .get(&slash)
        .and_then(|entry| entry.get("humanReadable"))
        .and_then(text)
        .or_else(|| {
            record
                .get("humanReadable")
                .and_then(|readable| field(readable, id))
                .and_then(text)
        })
        .or_else(|| field(record, id).and_then(text))
}

/// A date field (`YYYY-MM-DD`, or an ISO timestamp whose date is taken).
fn date(record: &Value, id: &str) -> Result<Option<Date>, String> {
    let Some(value) = field(record, id).and_then(text) else {
        return Ok(None);
    };
    let day = value.get(..10).unwrap_or(&value);
    day.parse::<Date>()
        .map(Some)
        .map_err(|_| format!("{id} is not a date (YYYY-MM-DD)"))
}

/// The manager's employee id: `work.reportsTo.id`, else `work.manager`.
fn manager(record: &Value) -> Option<String> {
    match field(record, "work.reportsTo") {
        Some(Value::Object(reports_to)) => reports_to.get("id").and_then(id_text),
        Some(other) => id_text(other),
        None => None,
    }
    .or_else(|| field(record, "work.manager").and_then(id_text))
}

/// The status words of the section above, lowercase.
fn status(record: &Value) -> Result<Status, String> {
    if let Some(lifecycle) = human(record, "internal.lifecycleStatus") {
        match lifecycle.to_ascii_lowercase().as_str() {
            "employed" | "hired" => return Ok(Status::Active),
            "terminated" => return Ok(Status::Terminated),
            word if word.contains("leave") => return Ok(Status::Leave),
            _ => {}
        }
    }
    match human(record, "internal.status").map(|s| s.to_ascii_lowercase()) {
        Some(status) if status == "active" => Ok(Status::Active),
        Some(status) if status == "inactive" => Ok(Status::Inactive),
        Some(_) => Err("internal.status is neither Active nor Inactive".into()),
        None => Err(
            "internal.status and internal.lifecycleStatus are missing (does the service user see the Lifecycle category?)"
                .into(),
        ),
    }
}

/// The given name when the display name is `<preferred> <surname>` with another first name.
fn preferred_name(display: Option<String>, given: &str, family: &str) -> Option<String> {
    let display = display?;
    let preferred = display.strip_suffix(family)?.trim();
    (!preferred.is_empty() && preferred != given).then(|| preferred.to_owned())
}

/// The worker's directory employee id: the value of `id_field`, present and short enough.
fn directory_id(record: &Value, id_field: &str) -> Result<String, String> {
    let Some(id) = field(record, id_field).and_then(text) else {
        return Err(format!(
            "{id_field} (the employee id, source employee_id_field) is empty: fill it in in Bob (for work.employeeIdInCompany: the employee's Work > Employee ID), or give the service user's permission group access to its category"
        ));
    };
    let length = id.chars().count();
    if length > EMPLOYEE_ID_MAX_CHARS {
        return Err(format!(
            "{id_field} {id:?} (the employee id, source employee_id_field) has {length} characters; the directory's employeeId holds at most {EMPLOYEE_ID_MAX_CHARS}: choose a shorter field"
        ));
    }
    Ok(id)
}

/// A Bob employee record as the normalized snapshot; the error names the field at fault.
/// `backend_id` (`root.id`) keys the worker; `id_field` gives their employee id.
fn normalize(
    source: &str,
    backend_id: &str,
    id_field: &str,
    record: &Value,
    now: Timestamp,
) -> Result<Worker, String> {
    let given = field(record, "root.firstName")
        .and_then(text)
        .unwrap_or_default();
    let family = field(record, "root.surname")
        .and_then(text)
        .unwrap_or_default();
    let mut worker = Worker::new(WorkerKey::new(source, backend_id), "", "", now);
    worker.employee_id = directory_id(record, id_field)?;
    worker.preferred_name = preferred_name(
        field(record, "root.displayName").and_then(text),
        &given,
        &family,
    );
    worker.given_name = given;
    worker.family_name = family;
    worker.middle_name = field(record, "root.secondName").and_then(text);
    worker.work_email = field(record, "root.email").and_then(text);
    worker.personal_email = field(record, "home.privateEmail").and_then(text);
    worker.status = status(record)?;
    worker.hire_date = date(record, "work.startDate")?;
    worker.termination_date = date(record, "internal.terminationDate")?;
    worker.termination_type = human(record, "internal.terminationReason");
    worker.worker_type = human(record, "payroll.employment.type");
    worker.job_title = human(record, "work.title");
    worker.department = human(record, "work.department");
    worker.division = human(record, "work.division");
    worker.location = human(record, "work.site").or_else(|| human(record, "work.siteId"));
    worker.country = human(record, "address.country");
    worker.manager_id = manager(record);
    if let Some(number) = field(record, "work.employeeIdInCompany").and_then(text) {
        worker.custom.insert("employee_number".into(), number);
    }
    Ok(worker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_from_slash_keys_or_categories() {
        let record = json!({
            "/root/firstName": {"value": "Ada"},
            "surname": "Lovelace",
            "work": {"title": "123", "reportsTo": {"id": "77", "displayName": "Boss"}},
            "humanReadable": {"work": {"title": "Engineer"}},
        });
        assert_eq!(field(&record, "root.firstName"), Some(&json!("Ada")));
        assert_eq!(field(&record, "root.surname"), Some(&json!("Lovelace")));
        assert_eq!(human(&record, "work.title").as_deref(), Some("Engineer"));
        assert_eq!(manager(&record).as_deref(), Some("77"));
        assert_eq!(field(&record, "work.site"), None);
    }

    #[test]
    fn the_ping_is_recognized_only_exactly() {
        assert!(is_ping(b"Ping test"));
        assert!(is_ping(b"\"Ping test\""));
        assert!(is_ping(br#"{"text":"Ping test"}"#));
        assert!(!is_ping(
            br#"{"text":"Ping test","type":"employee.created"}"#
        ));
        assert!(!is_ping(b"Ping test!"));
    }

    #[test]
    fn preferred_name_comes_from_the_display_name() {
        assert_eq!(
            preferred_name(Some("Bob Smith".into()), "Robert", "Smith").as_deref(),
            Some("Bob")
        );
        assert_eq!(
            preferred_name(Some("Robert Smith".into()), "Robert", "Smith"),
            None
        );
        assert_eq!(
            preferred_name(Some("Someone Else".into()), "Robert", "Smith"),
            None
        );
    }
}
