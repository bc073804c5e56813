//! Keka: `kind = "keka"`.
//!
//! ## Set up in Keka
//!
//! - **Webhook** (Settings > Communications > Event Triggers): on each employee event
//!   trigger (e.g. *Employee added*, *Employee exit approved*, and the profile, job and exit
//!   triggers your tenant offers) add a *Webhook* action with URL
//!   `https://<host>/webhooks/<source name>` and one custom header: name = the source's
//!   `webhook_header` (default **`X-Keka-Token`** when unset), value = the source's
//!   `webhook_secret`. Keka signs nothing: that header is the only proof a delivery is
//!   Keka's, so use a long random value and HTTPS.
//! - **API access** (Global admin settings > Integrations & Automations > API access): the
//!   *client id* and *client secret* go in `client_id` / `client_secret`, an *API key* with
//!   read access to employee (HRIS / Core HR) data in `api_key`.
//! - `base_url = "https://<company>.keka.com/api/v1"`; `token_url` only when not
//!   `https://login.keka.com/connect/token` (e.g. Keka's sandbox login host).
//!
//! ## Ids
//!
//! Keka names an employee by a GUID (36 characters): the webhook's `employeeIndentifier`, the
//! API's `id`, a manager's `reportsTo.id`. That GUID is the worker's key (what is fetched, and
//! what managers resolve by); it cannot be the directory's `employeeId`, which holds 16
//! characters. The directory's employee id is the record's `employeeNumber` (the company's
//! own number; `employee_id_field`, which config load restricts to it for Keka). A record
//! without one, or with one longer than 16 characters (Keka's own webhook sample shows 19
//! digits), is a permanent error for that worker naming the field and the record.
//!
//! ## Wire facts, and where they come from
//!
//! [O] Keka's docs at developers.keka.com; [S] Keka's OpenAPI as republished in
//! github.com/konfig-sdks/keka-hr-java-sdk (`api/openapi.yaml`, the spec the developer portal
//! is built from), and Airbyte's `source-keka` (whose schema was taken from live records);
//! [U] not confirmed.
//!
//! - [O] <https://developers.keka.com/docs/getting-started-with-webhooks>: the Event Trigger's
//!   webhook action POSTs form-encoded `employeeIndentifier` (sic; "Unique identifier of the
//!   employee", a GUID), `eventType` (e.g. "Employee added", "Employee exit approved",
//!   "Leave requested") and `subDomain`, with any headers the admin added; no signature. Some
//!   events document a JSON body: a JSON object with the same keys is read too. The
//!   correctly spelled `employeeIdentifier` is accepted as well [U].
//! - Event type → action (the words, compared case- and space-insensitively): anything about
//!   leave, expenses, salary, payroll, attendance, timesheets, assets, documents, tickets,
//!   loans, reviews or goals is ignored; an employee event (added, updated, joined, job or
//!   profile change, exit initiated / approved / cancelled, relieved...) is fetched: the
//!   record carries the exit date. Other types are ignored. No deletion event is documented
//!   (<https://docs.keka.com/faq/about-keka/adding-and-removing-employees/>: profiles cannot
//!   be deleted, employees are exited).
//! - [S] Token: `POST https://login.keka.com/connect/token`, form-encoded `grant_type=kekaapi`,
//!   `scope=kekaapi`, `client_id`, `client_secret`, `api_key` (so named in the OpenAPI and in
//!   Airbyte's connector; some guides write `apikey`); answer `access_token`, `expires_in`
//!   (86400), `token_type`; an unknown grant answers 400 `unsupported_grant_type`. The token
//!   is cached and renewed before it expires.
//! - [S] Fetch: `GET {base_url}/hris/employees/{id}` (`base_url` =
//!   `https://{company}.keka.com/api/v1`; `kekademo.com` for the sandbox) with
//!   `Authorization: Bearer`, no query parameters. The answer is `{succeeded, message,
//!   errors, data}` with the `EmployeeProfile` in `data`: `id`, `employeeNumber`,
//!   `firstName`, `middleName`, `lastName`, `displayName`, `email` (official),
//!   `personalEmail`, `joiningDate`, `exitDate`, `exitType`, `exitReason`,
//!   `employmentStatus`, `workerType`, `jobTitle {identifier, title}`, `reportsTo {id, email,
//!   firstName, lastName}`, `groups [{id, title, groupType}]`, `currentAddress
//!   {countryCode}`, `countryCode`. 404 answers the same envelope with `data: null` → gone.
//!   The profile has no time-zone field: the configured default applies. Department and
//!   location are groups only (the profile has no `department` or `location` field).
//! - [S, not re-verified] The enums' meanings, from public connectors that read live
//!   tenants (the OpenAPI lists numbers only): `exitType` 1 resignation, 2 company action;
//!   `employmentStatus` 0 Working, 1 Relieved (the list filter documents "Working, Relieved");
//!   `workerType` 1 Permanent, 2 Contingent; `groupType` 1 business unit → division, 2
//!   department, 3 location, 4 cost centre.
//! - [O] <https://developers.keka.com/reference/rate-limit>: 50 requests a minute, then 429
//!   `rateLimitExceeded`; the API client retries it with backoff, then the queue does.
//! - Write-back: Keka's API documents `PUT /hris/employees/{id}/personaldetails` (names,
//!   personal email, phone...) and `/jobdetails` (location, title, manager...), but no call
//!   that sets an employee's official (work) email or a username. So this connector does not
//!   write back: [`Connector::writes_back`] is false whatever the config says, and
//!   [`Connector::write_back`] is a permanent error saying why.
//!
//! ## Status mapping
//!
//! `employmentStatus` 0 / `Working` → active (even with a future `exitDate`: the exit is
//! planned); 1 / `Relieved` → terminated. Without a status: an `exitDate` on or before
//! today → terminated, else active.

use hrsync_core::worker::EMPLOYEE_ID_MAX_CHARS;
use hrsync_core::{Identifiers, Status, Worker, WorkerKey};
use jiff::Timestamp;
use jiff::civil::Date;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::api::{ApiClient, Auth, RetryPolicy, id_segment};
use crate::connector::{
    Action, BadPayload, BoxFuture, Connector, Delivery, Fetched, HrError, Parsed, Unauthorized,
    same_secret,
};
use crate::sources::{Setup, SetupError};

/// The header that carries `webhook_secret` when `webhook_header` is not set.
pub const DEFAULT_WEBHOOK_HEADER: &str = "X-Keka-Token";

/// Keka's token endpoint when `token_url` is not set.
pub const DEFAULT_TOKEN_URL: &str = "https://login.keka.com/connect/token";

/// The record field that is the directory's employee id when `employee_id_field` is not set:
/// the company-assigned employee number (the record's `id` is a 36-character GUID).
pub const DEFAULT_EMPLOYEE_ID_FIELD: &str = "employeeNumber";

/// One `kind = "keka"` source.
#[derive(Debug)]
pub struct Keka {
    source: String,
    header: http::HeaderName,
    secret: crate::sources::WebhookSecret,
    api: ApiClient,
    /// The record field that is the directory's employee id (`employee_id_field`).
    employee_id_field: String,
}

impl Keka {
    pub fn new(setup: Setup<'_>) -> Result<Self, SetupError> {
        let secret = setup.webhook_secret()?;
        let header_name = setup
            .config
            .webhook_header
            .as_deref()
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .unwrap_or(DEFAULT_WEBHOOK_HEADER);
        let header = http::HeaderName::from_bytes(header_name.as_bytes())
            .map_err(|_| setup.error(Some("webhook_header"), "is not a valid HTTP header name"))?;
        let form = vec![
            ("grant_type".to_owned(), "kekaapi".into()),
            ("scope".to_owned(), "kekaapi".into()),
            ("client_id".to_owned(), setup.secret("client_id")?),
            ("client_secret".to_owned(), setup.secret("client_secret")?),
            ("api_key".to_owned(), setup.secret("api_key")?),
        ];
        let token_url = setup
            .config
            .token_url
            .as_deref()
            .unwrap_or(DEFAULT_TOKEN_URL);
        let api = ApiClient::new(
            "Keka",
            setup.http.clone(),
            setup.base_url()?,
            Auth::oauth2(token_url, form),
        );
        if setup.config.writeback == Some(true) {
            tracing::warn!(
                source = setup.name,
                "Keka's API has no documented call to set the work email: writeback is ignored"
            );
        }
        let employee_id_field = setup
            .config
            .employee_id_field()
            .unwrap_or(DEFAULT_EMPLOYEE_ID_FIELD)
            .to_owned();
        Ok(Self {
            source: setup.name.to_owned(),
            header,
            secret,
            api,
            employee_id_field,
        })
    }

    /// The API client's retries (tests shorten them).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.api = self.api.with_retry(retry);
        self
    }

    /// The custom header the webhook action must carry.
    pub fn webhook_header(&self) -> &str {
        self.header.as_str()
    }

    async fn read(&self, employee_id: &str, now: Timestamp) -> Result<Fetched, HrError> {
        let segment = id_segment(&self.source, "Keka", employee_id)?;
        let what = format!("source {}: fetch Keka employee {employee_id}", self.source);
        let path = format!("/hris/employees/{segment}");
        let response = self.api.send(Method::GET, &path, None, &what).await?;
        if response.status == StatusCode::NOT_FOUND {
            tracing::debug!(source = %self.source, employee_id, "Keka: no such employee");
            return Ok(Fetched::Gone);
        }
        if !response.is_success() {
            return Err(response.unexpected(&what));
        }
        let envelope: Value = response.json(&what)?;
        if envelope.get("succeeded") == Some(&Value::Bool(false)) && !has_data(&envelope) {
            let message = envelope
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            let message: String = message.chars().take(200).collect();
            return Err(HrError::permanent(format!(
                "{what}: Keka answered succeeded=false ({message})"
            )));
        }
        let record = match envelope.get("data") {
            Some(Value::Object(_)) => envelope.get("data"),
            Some(Value::Array(items)) => items.first(),
            _ => None,
        };
        let Some(record) = record.filter(|r| r.is_object()) else {
            tracing::debug!(source = %self.source, employee_id, "Keka: no employee in the answer");
            return Ok(Fetched::Gone);
        };
        let mut worker = normalize(&self.source, employee_id, record, now)
            .map_err(|problem| HrError::permanent(format!("{what}: {problem}")))?;
        worker.employee_id = self.directory_employee_id(employee_id, record)?;
        worker.validate_record().map_err(|e| {
            HrError::permanent(format!("{what}: the record cannot be acted on: {e}"))
        })?;
        Ok(Fetched::Worker(Box::new(worker)))
    }

    /// The directory's employee id: the configured field's value, checked here so a worker
    /// whose id cannot fit is a clear error now rather than a Graph 400 later.
    fn directory_employee_id(&self, record_id: &str, record: &Value) -> Result<String, HrError> {
        let field = &self.employee_id_field;
        let Some(value) = text(record.get(field.as_str())) else {
            return Err(HrError::permanent(format!(
                "source {}: Keka employee {record_id} has no {field}, the directory's employee id \
                 (employee_id_field): give the employee a number in Keka",
                self.source
            )));
        };
        let length = value.chars().count();
        if length > EMPLOYEE_ID_MAX_CHARS {
            return Err(HrError::permanent(format!(
                "source {}: the {field} of Keka employee {record_id} has {length} characters; the \
                 directory's employeeId holds at most {EMPLOYEE_ID_MAX_CHARS} \
                 (employee_id_field): shorten the employee number in Keka",
                self.source
            )));
        }
        Ok(value)
    }
}

impl Connector for Keka {
    /// `GET /hris/employees?pageSize=1`: one page of one employee (the answer is not kept).
    fn check(&self, now: Timestamp) -> Option<BoxFuture<'_, Result<String, HrError>>> {
        let _ = now;
        let what = format!("source {}: list Keka employees", self.source);
        Some(Box::pin(async move {
            self.api
                .probe(Method::GET, "/hris/employees?pageSize=1", None, what)
                .await
        }))
    }

    fn source(&self) -> &str {
        &self.source
    }

    fn verify(&self, delivery: &Delivery<'_>) -> Result<(), Unauthorized> {
        let presented = delivery
            .headers
            .get(&self.header)
            .ok_or_else(|| Unauthorized(format!("missing header {}", self.header)))?;
        if same_secret(presented.as_bytes(), self.secret.bytes()?) {
            Ok(())
        } else {
            Err(Unauthorized(format!(
                "header {} does not match webhook_secret",
                self.header
            )))
        }
    }

    fn parse(&self, delivery: &Delivery<'_>) -> Result<Parsed, BadPayload> {
        let fields = read_fields(delivery)?;
        let event_type = fields
            .event_type
            .ok_or_else(|| BadPayload("eventType is missing or empty".into()))?;
        let Some(action) = action_of(&event_type) else {
            tracing::debug!(source = %self.source, event_type = %event_type, "Keka: event ignored");
            return Ok(Parsed::default());
        };
        let employee_id = fields.employee_id.ok_or_else(|| {
            BadPayload("employeeIndentifier is missing or empty in an employee event".into())
        })?;
        let employee_id = crate::connector::checked_id("employeeIndentifier", employee_id)?;
        Ok(Parsed::one(delivery, employee_id, event_type, action))
    }

    fn fetch<'a>(
        &'a self,
        employee_id: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Fetched, HrError>> {
        Box::pin(self.read(employee_id, now))
    }

    fn writes_back(&self) -> bool {
        false
    }

    fn write_back<'a>(
        &'a self,
        worker: &'a Worker,
        _: &'a Identifiers,
    ) -> BoxFuture<'a, Result<(), HrError>> {
        let error = HrError::permanent(format!(
            "source {}: cannot write the work email of Keka employee {}: Keka's API has no documented way to set an employee's official email",
            self.source,
            worker.key.employee_id()
        ));
        Box::pin(std::future::ready(Err(error)))
    }
}

/// The keys of one delivery, blank values as absent.
#[derive(Debug, Default)]
struct Fields {
    employee_id: Option<String>,
    event_type: Option<String>,
}

/// Reads the form (documented) or a JSON object with the same keys.
fn read_fields(delivery: &Delivery<'_>) -> Result<Fields, BadPayload> {
    let body = delivery.body;
    let looks_json = delivery.media_type().is_some_and(|m| m.ends_with("json"))
        || body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{');
    let mut fields = Fields::default();
    if looks_json {
        let value = crate::connector::read_json(body)?;
        let Value::Object(object) = value else {
            return Err(BadPayload("the JSON body is not an object".into()));
        };
        let get = |key: &str| match object.get(key) {
            Some(Value::String(text)) => clean(text),
            Some(Value::Number(number)) => Some(number.to_string()),
            _ => None,
        };
        fields.employee_id = get("employeeIndentifier").or_else(|| get("employeeIdentifier"));
        fields.event_type = get("eventType");
    } else {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|_| {
            BadPayload("the body is neither a form (key=value&...) nor JSON".into())
        })?;
        // A key hrsync reads, given twice, is ambiguous: which one holds?
        for key in ["employeeIndentifier", "employeeIdentifier", "eventType"] {
            if pairs.iter().filter(|(k, _)| k == key).count() > 1 {
                return Err(BadPayload(format!(
                    "the form gives the key {key} twice (ambiguous: which one holds?)"
                )));
            }
        }
        let get = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| clean(v))
        };
        fields.employee_id = get("employeeIndentifier").or_else(|| get("employeeIdentifier"));
        fields.event_type = get("eventType");
    }
    Ok(fields)
}

fn clean(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// Words of event types that are not about an employee's record.
const IGNORED: &[&str] = &[
    "leave",
    "expense",
    "salary",
    "payroll",
    "payslip",
    "bonus",
    "loan",
    "attendance",
    "timesheet",
    "asset",
    "document",
    "ticket",
    "helpdesk",
    "review",
    "feedback",
    "goal",
    "holiday",
    "regulari",
    "overtime",
];

/// Words of event types that change an employee's record (exits included).
const EMPLOYEE: &[&str] = &[
    "employee",
    "exit",
    "resign",
    "relieve",
    "joining",
    "joined",
    "onboard",
    "probation",
    "transfer",
    "promot",
    "profile",
    "manager",
    "department",
    "designation",
    "jobtitle",
];

/// What an event type asks for; `None`: ignored. Compared without case, spaces or
/// punctuation, so "Employee exit approved" and "EmployeeExitApproved" are the same.
fn action_of(event_type: &str) -> Option<Action> {
    let compact: String = event_type
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if IGNORED.iter().any(|word| compact.contains(word)) {
        return None;
    }
    EMPLOYEE
        .iter()
        .any(|word| compact.contains(word))
        .then_some(Action::Fetch)
}

fn has_data(envelope: &Value) -> bool {
    envelope.get("data").is_some_and(|d| !d.is_null())
}

/// Text of a scalar value; `None` for blank text, null, objects and arrays.
fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => clean(text),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A date field (`YYYY-MM-DD` or an ISO timestamp such as `2024-12-01T00:00:00`).
fn date(record: &Value, key: &str) -> Result<Option<Date>, String> {
    let Some(value) = text(record.get(key)) else {
        return Ok(None);
    };
    let day = value.get(..10).unwrap_or(&value);
    let parsed = day
        .parse::<Date>()
        .map_err(|_| format!("{key} is not a date (YYYY-MM-DD)"))?;
    // Keka writes "no date" as 0001-01-01.
    Ok((parsed.year() > 1).then_some(parsed))
}

/// The title of the first group of a `groupType`.
fn group(record: &Value, group_type: i64) -> Option<String> {
    record
        .get("groups")?
        .as_array()?
        .iter()
        .find(|g| g.get("groupType").and_then(Value::as_i64) == Some(group_type))
        .and_then(|g| text(g.get("title")))
}

fn status(record: &Value, termination: Option<Date>, today: Date) -> Result<Status, String> {
    let words = match record.get("employmentStatus") {
        Some(Value::Number(n)) => n.as_i64().map(|n| n.to_string()),
        Some(Value::String(s)) => Some(s.trim().to_ascii_lowercase()),
        _ => None,
    };
    match words.as_deref() {
        Some("0" | "working" | "active") => Ok(Status::Active),
        Some("1" | "relieved" | "exited" | "terminated") => Ok(Status::Terminated),
        Some("inactive") => Ok(Status::Inactive),
        Some(_) => Err("employmentStatus is neither 0 (Working) nor 1 (Relieved)".into()),
        None => Ok(match termination {
            Some(exit) if exit <= today => Status::Terminated,
            _ => Status::Active,
        }),
    }
}

/// The given name when the display name is `<preferred> <last name>` with another first
/// name.
fn preferred_name(display: Option<String>, given: &str, family: &str) -> Option<String> {
    let display = display?;
    let preferred = display.strip_suffix(family)?.trim();
    (!preferred.is_empty() && preferred != given).then(|| preferred.to_owned())
}

/// A Keka employee record as the normalized snapshot; the error names the field at fault.
fn normalize(
    source: &str,
    employee_id: &str,
    record: &Value,
    now: Timestamp,
) -> Result<Worker, String> {
    let given = text(record.get("firstName")).unwrap_or_default();
    let family = text(record.get("lastName")).unwrap_or_default();
    let mut worker = Worker::new(WorkerKey::new(source, employee_id), "", "", now);
    worker.preferred_name = preferred_name(text(record.get("displayName")), &given, &family);
    worker.given_name = given;
    worker.family_name = family;
    worker.middle_name = text(record.get("middleName"));
    worker.work_email = text(record.get("email"));
    worker.personal_email = text(record.get("personalEmail"));
    worker.hire_date = date(record, "joiningDate")?;
    worker.termination_date = date(record, "exitDate")?;
    let today = jiff::tz::TimeZone::UTC.to_datetime(now).date();
    worker.status = status(record, worker.termination_date, today)?;
    worker.termination_type = match record.get("exitType").and_then(Value::as_i64) {
        Some(1) => Some("resignation".to_owned()),
        Some(2) => Some("company action".to_owned()),
        _ => None,
    }
    .filter(|_| worker.termination_date.is_some());
    if let Some(reason) = text(record.get("exitReason")) {
        worker.custom.insert("exit_reason".into(), reason);
    }
    worker.worker_type = match record.get("workerType").and_then(Value::as_i64) {
        Some(1) => Some("permanent".to_owned()),
        Some(2) => Some("contingent".to_owned()),
        _ => None,
    };
    worker.job_title = record.get("jobTitle").and_then(|t| match t {
        Value::Object(_) => text(t.get("title")),
        other => text(Some(other)),
    });
    worker.division = group(record, 1);
    worker.department = group(record, 2);
    worker.location = group(record, 3);
    worker.cost_center = group(record, 4);
    worker.country = record
        .get("currentAddress")
        .and_then(|a| text(a.get("countryCode")))
        .or_else(|| text(record.get("countryCode")));
    worker.manager_id = match record.get("reportsTo") {
        Some(Value::Object(manager)) => text(manager.get("id")),
        other => text(other),
    };
    if let Some(number) = text(record.get("employeeNumber")) {
        worker.custom.insert("employee_number".into(), number);
    }
    Ok(worker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_sorted_by_their_words() {
        assert_eq!(action_of("Employee added"), Some(Action::Fetch));
        assert_eq!(action_of("Employee exit approved"), Some(Action::Fetch));
        assert_eq!(action_of("EmployeeExitApproved"), Some(Action::Fetch));
        assert_eq!(action_of("Leave requested"), None);
        assert_eq!(action_of("EmployeeSalaryUpdated"), None);
        assert_eq!(action_of("Expense approved"), None);
        assert_eq!(action_of("Something else"), None);
    }
}
