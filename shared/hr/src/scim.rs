//! SCIM bulk: worker records POSTed whole, as SCIM BulkRequests in the shape Microsoft
//! Entra's API-driven inbound provisioning takes them at its `bulkUpload` endpoint. An HR
//! system, an integration platform or a script that already feeds Entra can feed hrsync the
//! same requests: what Entra takes, hrsync takes, except where a rule below says otherwise.
//!
//! Sources, named in parentheses below:
//! - (tutorial) learn.microsoft.com/entra/identity/app-provisioning/inbound-provisioning-api-curl-tutorial:
//!   the BulkRequest in `tests/samples/entra-scim-bulk.json`, verbatim.
//! - (bulkUpload) learn.microsoft.com/graph/api/synchronization-synchronizationjob-post-bulkupload
//!   and its resource, learn.microsoft.com/graph/api/resources/synchronization-bulkupload.
//! - (FAQ) learn.microsoft.com/entra/identity/app-provisioning/inbound-provisioning-api-faqs
//! - (custom attributes) learn.microsoft.com/entra/identity/app-provisioning/inbound-provisioning-api-custom-attributes
//! - (CSV2SCIM) learn.microsoft.com/entra/identity/app-provisioning/inbound-provisioning-api-powershell
//!   and the sample payload of its script, github.com/AzureAD/entra-id-inbound-provisioning,
//!   `PowerShell/CSV2SCIM/Samples/Sample-CSV-2-SCIM-payload.json`.
//! - (Entra SCIM schema) learn.microsoft.com/entra/identity/app-provisioning/entra-id-scim-api-schema-documentation
//! - (RFC 7644 §3.7) SCIM bulk operations; (RFC 7643) SCIM's schemas.
//!
//! # Setting it up
//!
//! ```toml
//! [source.hr]
//! kind = "scim"
//! webhook_secret = { env = "HR_SCIM_TOKEN" }
//! # employee_id_field = "employeeNumber"   # default: externalId
//! ```
//!
//! The sender POSTs to `https://<host>/webhooks/<source name>` with
//! `Content-Type: application/scim+json` and `Authorization: Bearer <webhook_secret>`: Entra's
//! endpoint and token swapped for these. There is no API to fetch from and nothing is written
//! back (`writeback` does not apply): Entra's API is inbound only too (FAQ, "How is writeback
//! supported?").
//!
//! # Verification
//!
//! `Authorization: Bearer <token>` (the scheme in any case), the token compared in constant
//! time with `webhook_secret`. A bearer token authenticates the sender; it does not cover the
//! body: a body altered in transit still passes (TLS is what protects it). There is no
//! timestamp, so a captured request can be replayed while the token is valid: each record
//! carries its full state, so a replay restates what was already said.
//!
//! # The request
//!
//! Refused whole (400) unless:
//! - `Content-Type` is `application/scim+json` (bulkUpload: required; a missing one is its
//!   most common 400);
//! - `schemas` contains `urn:ietf:params:scim:api:messages:2.0:BulkRequest` (bulkUpload:
//!   required);
//! - `Operations` is a list of at most [`MAX_OPERATIONS`] (bulkUpload: "a maximum of 50 user
//!   operations").
//!
//! `failOnErrors` is read and ignored: Entra's samples send `null`, and Entra processes each
//! record on its own, asynchronously (FAQ), so a bad record never stops the others; each
//! operation here is a whole record, so none depends on another's outcome. (RFC 7644 §3.7
//! lets a client ask a SCIM server to stop after that many errors.)
//!
//! Within a valid request **each operation is taken or refused on its own**:
//! - `method` must be `POST` (bulkUpload resource: "must be set to POST"; FAQ: no PUT or
//!   PATCH);
//! - `path` must be `/Users`, in any case (CSV2SCIM's sample payload sends `/users`);
//! - `bulkId` is required (RFC 7644 §3.7: REQUIRED when the method is POST). RFC 7644 §3.7
//!   makes it "unique within a bulk request and created by the client", so the client can
//!   tell the answers apart; the tutorial's own request repeats one and Entra takes it. A
//!   repeated bulkId is taken: every operation is its own record, keyed by its `externalId`,
//!   and each answer repeats its bulkId (a refusal's detail also names the operation's index);
//! - `data` is the SCIM User. Its `schemas` list is not checked: CSV2SCIM's sample payload
//!   leaves the enterprise URN out.
//!
//! One that cannot be taken (a wrong method or path, no bulkId, no `externalId`, an employee
//! id missing or too long, a bad date or `active`, or a record failing the checks every
//! source's records pass, [`Worker::validate`]) is listed in `Parsed::refused` with its
//! bulkId, method and a problem naming the attribute and how to send it, e.g.
//! `Operations[2]: externalId: missing: send the worker's id in the HR system ...`; the
//! others become events with `operation` = their bulkId.
//!
//! # The answer
//!
//! `202 Accepted`, as Entra's bulkUpload answers: the records are processed asynchronously
//! there and here. The body (`application/scim+json`) is a BulkResponse (RFC 7644 §3.7.3;
//! Entra sends `{}`, so a sender written for it reads only the status): per operation,
//! `status` `"202"` and `location` `/Users/<externalId>` when taken, `"400"` with a SCIM error
//! (`scimType` `invalidValue`, the problem as `detail`) when refused. A request refused whole
//! is answered 400.
//!
//! # Identity
//!
//! - The worker key's id is `externalId`, required: the attribute Entra matches on by default
//!   (FAQ: "by default `externalId` API attribute is used to match with `employeeId`"; the
//!   bulkUpload resource requires it) and the one `manager.value` names (bulkUpload: "Specify
//!   the externalId of the user's manager in this field").
//! - The directory's `employeeId` comes from `employee_id_field`: `externalId` (the default,
//!   Entra's default pairing) or the enterprise `employeeNumber` (which Entra's SCIM schema
//!   maps to employeeId), for senders whose `externalId` is a longer person id. Missing, or
//!   longer than the 16 characters Graph's employeeId holds, refuses the operation naming the
//!   attribute.
//!
//! # Employment
//!
//! SCIM's core and enterprise schemas have no HR dates and the tutorial's request carries
//! none: a worker without a hire date is employed from now on ([`Worker::validate`]).
//! - `active` is the user's administrative status (RFC 7643 §4.1.1): `true`/`false`, or
//!   `"True"`/`"False"` in any case as Microsoft's CSV tooling writes booleans (CSV2SCIM);
//!   absent: employed. `false` is a termination now (status terminated, any date the record
//!   gives not waited for): Entra disables the account when it processes it (FAQ, "How do
//!   we process terminations"; bulkUpload example 3).
//! - HR dates come from custom extensions (custom attributes: `HireDate` in
//!   `urn:ietf:params:scim:schemas:extension:contoso:1.0:User`, "your own SCIM schema
//!   namespace"; bulkUpload example 2 uses `urn:contoso:employee`): every top-level attribute
//!   named by a URN (`urn:...`, RFC 7643 §3.3) but the enterprise extension, attribute names
//!   in any case:
//!   - hire date: `HireDate` (custom attributes, CSV2SCIM), else `employeeHireDate` (Entra
//!     SCIM schema);
//!   - termination date: the earliest of `TerminationDate`, `LastDayOfWork` (CSV2SCIM) and
//!     `employeeLeaveDateTime` (Entra SCIM schema): access ends after the last day worked,
//!     at `lifecycle.leave_at` on it;
//!   - termination type: `TerminationType`, else `TerminationReason` (CSV2SCIM);
//!   - dates as `YYYY-MM-DD` or RFC 3339 date-times (custom attributes send
//!     `2021-05-01T00:00:00-05:00`), the date as written; an empty string is no date
//!     (CSV2SCIM sends empty columns as `""`).
//!
//! # Mapping
//!
//! | Worker | SCIM |
//! |---|---|
//! | `key` | `externalId` |
//! | `employee_id` | `employee_id_field`: `externalId` (default) or the enterprise `employeeNumber` |
//! | `given_name`, `family_name`, `middle_name` | `name.givenName`, `name.familyName`, `name.middleName` |
//! | `preferred_name` | `nickName` |
//! | `work_email` | `emails[type=work].value` (the primary one first) |
//! | `personal_email` | `emails[type=home]`, else `emails[type=other]` |
//! | `status` | `active`: false -> terminated, else active |
//! | `job_title` | `title` |
//! | `worker_type` | `WorkerType` from a custom extension, else `userType` |
//! | `time_zone` | `timezone` (IANA) |
//! | `location`, `country` | `addresses[type=work]`: `locality`, `country` |
//! | `cost_center`, `company`, `division`, `department` | enterprise `costCenter`, `organization`, `division`, `department` |
//! | `manager_id` | enterprise `manager.value`: the manager's `externalId` |
//! | `hire_date`, `termination_date`, `termination_type` | custom extensions, as above |
//! | `custom.<name>` | any other string attribute of a custom extension |
//!
//! Each operation is the worker's whole record: the bulkUpload API's example 3 (an update
//! with only `externalId`, `active` and a department) is refused for its missing names.
//! `as_of` is when the delivery arrived. The dedupe id of an operation is the body's SHA-256,
//! its bulkId, `externalId` and index (so a repeated bulkId still gives distinct ids).

use std::collections::BTreeMap;

use hrsync_core::worker::EMPLOYEE_ID_MAX_CHARS;
use hrsync_core::{Identifiers, Status, Worker, WorkerKey};
use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::{Map, Value, json};

use crate::connector::{
    Action, Answer, BadPayload, BoxFuture, Connector, Delivery, Event, Fetched, HrError, Parsed,
    Refused, Unauthorized,
};
use crate::sources::{Setup, SetupError};

pub const MEDIA_TYPE: &str = "application/scim+json";
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The most operations one BulkRequest may carry (Entra's limit).
pub const MAX_OPERATIONS: usize = 50;
/// The `event_type` of every event.
pub const EVENT_TYPE: &str = "scim.bulk POST /Users";
/// How Entra answers a BulkRequest it took: 202 Accepted (bulkUpload).
pub const ACCEPTED: u16 = 202;

/// Custom extension attributes read as worker fields (any case), in order of preference.
const HIRE_DATE: [&str; 2] = ["HireDate", "employeeHireDate"];
const TERMINATION_DATE: [&str; 3] = ["TerminationDate", "LastDayOfWork", "employeeLeaveDateTime"];
const TERMINATION_TYPE: [&str; 2] = ["TerminationType", "TerminationReason"];
const WORKER_TYPE: [&str; 1] = ["WorkerType"];
/// Read as worker fields, so not repeated in `custom`.
const READ_AS_FIELDS: [&[&str]; 4] = [
    &HIRE_DATE,
    &TERMINATION_DATE,
    &TERMINATION_TYPE,
    &WORKER_TYPE,
];

/// Where the directory's `employeeId` comes from (`employee_id_field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EmployeeIdField {
    ExternalId,
    EmployeeNumber,
}

impl EmployeeIdField {
    fn of(setup: &Setup<'_>) -> Result<Self, SetupError> {
        match setup.config.employee_id_field() {
            None | Some("externalId") => Ok(Self::ExternalId),
            Some("employeeNumber") => Ok(Self::EmployeeNumber),
            Some(_) => Err(setup.error(
                Some("employee_id_field"),
                format!("a SCIM source takes the employee id from externalId (the default) or employeeNumber (in {ENTERPRISE})"),
            )),
        }
    }

    /// The attribute, as a problem names it.
    fn attribute(self) -> &'static str {
        match self {
            Self::ExternalId => "externalId",
            Self::EmployeeNumber => "employeeNumber",
        }
    }
}

/// A SCIM bulk source.
#[derive(Debug)]
pub struct Scim {
    source: String,
    token: crate::sources::WebhookSecret,
    employee_id: EmployeeIdField,
}

impl Scim {
    pub fn new(setup: Setup<'_>) -> Result<Self, SetupError> {
        Ok(Self {
            source: setup.name.to_owned(),
            token: setup.webhook_secret()?,
            employee_id: EmployeeIdField::of(&setup)?,
        })
    }
}

impl Connector for Scim {
    fn source(&self) -> &str {
        &self.source
    }

    fn verify(&self, delivery: &Delivery<'_>) -> Result<(), Unauthorized> {
        let Some(value) = delivery.headers.get(http::header::AUTHORIZATION) else {
            return Err(Unauthorized("missing the Authorization header".into()));
        };
        let value = value.as_bytes();
        let token = match value.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => value[7..].trim_ascii(),
            _ => {
                return Err(Unauthorized(
                    "the Authorization header is not a Bearer token".into(),
                ));
            }
        };
        if crate::connector::same_secret(token, self.token.bytes()?) {
            Ok(())
        } else {
            Err(Unauthorized(
                "the bearer token does not match this source's webhook secret".into(),
            ))
        }
    }

    /// 202 Accepted with a BulkResponse: `"202"` for each operation taken (its work follows
    /// asynchronously), `"400"` with the problem for each refused.
    fn answer(&self, parsed: &Parsed) -> Option<Answer> {
        let mut operations: Vec<Value> = parsed
            .events
            .iter()
            .map(|event| {
                json!({
                    "method": "POST",
                    "bulkId": event.operation.clone().unwrap_or_default(),
                    "location": format!("/Users/{}", event.employee_id),
                    "status": ACCEPTED.to_string(),
                })
            })
            .collect();
        operations.extend(parsed.refused.iter().map(|refused| {
            json!({
                "method": refused.method.as_deref().unwrap_or("POST"),
                "bulkId": refused.operation.clone().unwrap_or_default(),
                "status": "400",
                "response": {
                    "schemas": [ERROR],
                    "scimType": "invalidValue",
                    "detail": refused.problem,
                    "status": "400",
                },
            })
        }));
        Some(Answer {
            status: ACCEPTED,
            content_type: MEDIA_TYPE,
            body: json!({
                "schemas": [BULK_RESPONSE],
                "Operations": operations,
            }),
        })
    }

    fn parse(&self, delivery: &Delivery<'_>) -> Result<Parsed, BadPayload> {
        match delivery.media_type().as_deref() {
            Some(MEDIA_TYPE) => {}
            Some(other) => {
                return Err(BadPayload(format!(
                    "Content-Type is {}; a SCIM BulkRequest is sent as {MEDIA_TYPE}",
                    crate::connector::field_name(other)
                )));
            }
            None => {
                return Err(BadPayload(format!(
                    "Content-Type is missing; a SCIM BulkRequest is sent as {MEDIA_TYPE}"
                )));
            }
        }
        let body = crate::connector::read_json(delivery.body)?;
        let Value::Object(request) = body else {
            return Err(BadPayload("the body is not a JSON object".into()));
        };
        let is_bulk = request
            .get("schemas")
            .and_then(Value::as_array)
            .is_some_and(|schemas| schemas.iter().any(|s| s.as_str() == Some(BULK_REQUEST)));
        if !is_bulk {
            return Err(BadPayload(format!("schemas must contain {BULK_REQUEST}")));
        }
        let Some(operations) = request.get("Operations").and_then(Value::as_array) else {
            return Err(BadPayload("Operations is missing or not a list".into()));
        };
        if operations.len() > MAX_OPERATIONS {
            return Err(BadPayload(format!(
                "Operations has {} operations; a BulkRequest carries at most {MAX_OPERATIONS}: split it",
                operations.len()
            )));
        }
        let digest = delivery.digest();
        let mut parsed = Parsed::default();
        for (index, operation) in operations.iter().enumerate() {
            match self.operation(index, operation, delivery.received_at) {
                Ok((bulk_id, worker)) => {
                    let record = worker.key.employee_id().to_owned();
                    parsed.events.push(Event {
                        dedupe: format!("{digest}#{bulk_id}:{record}:{index}"),
                        employee_id: record,
                        event_type: EVENT_TYPE.into(),
                        action: Action::Record(Box::new(worker)),
                        operation: Some(bulk_id),
                    });
                }
                Err(refused) => parsed.refused.push(refused),
            }
        }
        Ok(parsed)
    }

    fn fetch<'a>(&'a self, _: &'a str, _: Timestamp) -> BoxFuture<'a, Result<Fetched, HrError>> {
        let error = HrError::permanent(format!(
            "source {}: SCIM records arrive whole; there is no API to fetch from",
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
        _: &'a Identifiers,
    ) -> BoxFuture<'a, Result<(), HrError>> {
        let error = HrError::permanent(format!(
            "source {}: a SCIM source has no API to write back to",
            self.source
        ));
        Box::pin(std::future::ready(Err(error)))
    }
}

impl Scim {
    /// One operation as (bulkId, validated worker), or why it is refused.
    fn operation(
        &self,
        index: usize,
        operation: &Value,
        as_of: Timestamp,
    ) -> Result<(String, Worker), Refused> {
        let refuse = |bulk_id: Option<&str>, method: Option<&str>, problem: String| Refused {
            operation: bulk_id.map(str::to_owned),
            method: method.map(str::to_owned),
            problem: format!("Operations[{index}]{problem}"),
        };
        let Value::Object(operation) = operation else {
            return Err(refuse(None, None, ": is not an object".into()));
        };
        let bulk_id = operation.get("bulkId").and_then(text);
        let method = operation.get("method").and_then(Value::as_str);
        let bulk = bulk_id.as_deref();
        let Some(bulk_id) = bulk_id.clone() else {
            return Err(refuse(
                None,
                method,
                ": bulkId: missing: give every operation a bulkId".into(),
            ));
        };
        if method != Some("POST") {
            return Err(refuse(
                bulk,
                method,
                ": method: only POST is taken (the record's full current state)".into(),
            ));
        }
        let path = operation.get("path").and_then(Value::as_str);
        if !path.is_some_and(|path| path.eq_ignore_ascii_case("/Users")) {
            return Err(refuse(bulk, method, ": path: only /Users is taken".into()));
        }
        let Some(Value::Object(data)) = operation.get("data") else {
            return Err(refuse(
                bulk,
                method,
                ": data: missing: send the SCIM User as an object".into(),
            ));
        };
        let worker = self
            .worker(data, as_of)
            .map_err(|problem| refuse(bulk, method, format!(": {problem}")))?;
        Ok((bulk_id, worker))
    }

    /// The worker of one SCIM User; the error names the attribute and the rule, never a
    /// value (not even the externalId: the bulkId tells the sender which operation it is).
    fn worker(&self, user: &Map<String, Value>, as_of: Timestamp) -> Result<Worker, String> {
        let Some(external_id) = user.get("externalId").and_then(text) else {
            return Err(
                "externalId: missing: send the worker's id in the HR system (what Entra matches on and manager.value names)".into(),
            );
        };
        if let Some(problem) = crate::connector::id_problem(&external_id) {
            return Err(format!("externalId: {problem}"));
        }
        let enterprise = user.get(ENTERPRISE).and_then(Value::as_object);
        let enterprise_text = |key: &str| enterprise.and_then(|e| e.get(key)).and_then(text);
        let employee_id = match self.employee_id {
            EmployeeIdField::ExternalId => external_id.clone(),
            EmployeeIdField::EmployeeNumber => enterprise_text("employeeNumber").ok_or_else(|| {
                format!(
                    "employeeNumber: missing in {ENTERPRISE}: this source takes the directory's employeeId from it (employee_id_field)"
                )
            })?,
        };
        let length = employee_id.chars().count();
        if length > EMPLOYEE_ID_MAX_CHARS {
            return Err(format!(
                "{}: has {length} characters; the directory's employeeId holds at most {EMPLOYEE_ID_MAX_CHARS}: send a shorter one, or set employee_id_field to the attribute that has it",
                self.employee_id.attribute()
            ));
        }

        let name = user.get("name").and_then(Value::as_object);
        let name_text = |key: &str| name.and_then(|n| n.get(key)).and_then(text);
        let mut worker = Worker::new(
            WorkerKey::new(&self.source, &external_id),
            name_text("givenName").unwrap_or_default(),
            name_text("familyName").unwrap_or_default(),
            as_of,
        );
        worker.employee_id = employee_id;
        worker.middle_name = name_text("middleName");
        worker.preferred_name = user.get("nickName").and_then(text);
        let emails = user
            .get("emails")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        worker.work_email = typed(emails, "work", "value");
        worker.personal_email =
            typed(emails, "home", "value").or_else(|| typed(emails, "other", "value"));
        worker.job_title = user.get("title").and_then(text);
        worker.time_zone = user.get("timezone").and_then(text);
        let addresses = user
            .get("addresses")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        worker.location = typed(addresses, "work", "locality");
        worker.country = typed(addresses, "work", "country");
        worker.cost_center = enterprise_text("costCenter");
        worker.company = enterprise_text("organization");
        worker.division = enterprise_text("division");
        worker.department = enterprise_text("department");
        worker.manager_id = enterprise
            .and_then(|e| e.get("manager"))
            .and_then(|m| m.get("value"))
            .and_then(text);
        // The manager's id becomes a worker key too.
        if let Some(problem) = worker
            .manager_id
            .as_deref()
            .and_then(crate::connector::id_problem)
        {
            return Err(format!("manager.value: {problem}"));
        }

        let extensions = Extensions::of(user);
        worker.hire_date = extensions.first_date(&HIRE_DATE)?;
        worker.termination_date = extensions.earliest_date(&TERMINATION_DATE)?;
        worker.termination_type = extensions.first_text(&TERMINATION_TYPE);
        worker.worker_type = extensions
            .first_text(&WORKER_TYPE)
            .or_else(|| user.get("userType").and_then(text));
        worker.custom = extensions.custom();
        let active = match user.get("active") {
            None | Some(Value::Null) => true,
            Some(value) => boolean(value)
                .ok_or_else(|| "active: not a boolean: send true or false".to_owned())?,
        };
        if !active {
            // Entra disables the account as soon as it processes `active: false`.
            worker.status = Status::Terminated;
            worker.termination_date = None;
        }

        worker.validate().map_err(|e| {
            format!(
                "{}: {}: {}",
                e.field,
                crate::connector::problem_without_value(&e, &worker),
                how_to_send(e.field)
            )
        })?;
        Ok(worker)
    }
}

/// How to send a field the core's checks refused, in SCIM terms.
fn how_to_send(field: &str) -> String {
    let attribute = match field {
        "given_name" => "name.givenName".to_owned(),
        "family_name" => "name.familyName".to_owned(),
        "time_zone" => "timezone as an IANA name (e.g. Europe/London)".to_owned(),
        "manager_id" => format!("the manager's own externalId as manager.value in {ENTERPRISE}"),
        other => return format!("check the attribute that maps to {other}"),
    };
    format!("send {attribute} (each operation is the worker's whole record)")
}

/// The custom extension objects of a User (every top-level attribute named by a URN but the
/// enterprise extension), read with attribute names in any case.
struct Extensions<'a>(Vec<&'a Map<String, Value>>);

impl<'a> Extensions<'a> {
    fn of(user: &'a Map<String, Value>) -> Self {
        Self(
            user.iter()
                .filter(|(key, _)| {
                    key.get(..4)
                        .is_some_and(|urn| urn.eq_ignore_ascii_case("urn:"))
                        && !key.eq_ignore_ascii_case(ENTERPRISE)
                })
                .filter_map(|(_, value)| value.as_object())
                .collect(),
        )
    }

    /// The first attribute called `name` (any case) with a value: (its name as sent, value).
    fn get(&self, name: &str) -> Option<(&'a str, &'a Value)> {
        self.0.iter().find_map(|extension| {
            extension
                .iter()
                .find(|(key, value)| key.eq_ignore_ascii_case(name) && !value.is_null())
                .map(|(key, value)| (key.as_str(), value))
        })
    }

    fn first_text(&self, names: &[&str]) -> Option<String> {
        names
            .iter()
            .find_map(|name| self.get(name).and_then(|(_, value)| text(value)))
    }

    /// The date in attribute `name`; `None` when absent or empty.
    fn date(&self, name: &str) -> Result<Option<Date>, String> {
        let Some((key, value)) = self.get(name) else {
            return Ok(None);
        };
        let Some(value) = text(value) else {
            return Ok(None);
        };
        date_of(&value).map(Some).ok_or_else(|| {
            format!(
                "{}: not a date: send YYYY-MM-DD or an RFC 3339 date-time",
                crate::connector::field_name(key)
            )
        })
    }

    fn first_date(&self, names: &[&str]) -> Result<Option<Date>, String> {
        for name in names {
            if let Some(date) = self.date(name)? {
                return Ok(Some(date));
            }
        }
        Ok(None)
    }

    fn earliest_date(&self, names: &[&str]) -> Result<Option<Date>, String> {
        let mut earliest = None;
        for name in names {
            earliest = match (earliest, self.date(name)?) {
                (Some(a), Some(b)) => Some(std::cmp::min(a, b)),
                (a, b) => a.or(b),
            };
        }
        Ok(earliest)
    }

    /// Every other string attribute, for templates as `custom.<name>`.
    fn custom(&self) -> BTreeMap<String, String> {
        let read = |key: &str| {
            READ_AS_FIELDS
                .iter()
                .flat_map(|names| names.iter())
                .any(|name| name.eq_ignore_ascii_case(key))
        };
        let mut custom = BTreeMap::new();
        for extension in &self.0 {
            for (key, value) in extension.iter() {
                if read(key) {
                    continue;
                }
                if let Value::String(s) = value
                    && !s.trim().is_empty()
                {
                    custom
                        .entry(key.clone())
                        .or_insert_with(|| s.trim().to_owned());
                }
            }
        }
        custom
    }
}

/// `field` of the entry of `list` whose `type` is `kind` (the primary one first).
fn typed(list: &[Value], kind: &str, field: &str) -> Option<String> {
    let of_kind = |entry: &&Value| {
        entry
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case(kind))
    };
    let primary = |entry: &&Value| entry.get("primary").and_then(Value::as_bool) == Some(true);
    list.iter()
        .filter(of_kind)
        .filter(primary)
        .chain(list.iter().filter(of_kind))
        .find_map(|entry| entry.get(field).and_then(text))
}

/// A string (trimmed, non-empty) or a number, as text.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A JSON boolean, or `true`/`false` as text in any case.
fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// `YYYY-MM-DD`, or an RFC 3339 date-time whose date (as written) is taken.
fn date_of(text: &str) -> Option<Date> {
    if text.len() == 10 {
        return text.parse().ok();
    }
    text.parse::<Timestamp>().ok()?;
    text.get(..10)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_take_the_day_as_written() {
        assert_eq!(date_of("2026-01-05"), Some(jiff::civil::date(2026, 1, 5)));
        assert_eq!(
            date_of("2026-01-05T00:00:00-08:00"),
            Some(jiff::civil::date(2026, 1, 5))
        );
        assert_eq!(date_of("2026-01-05T00:00:00"), None);
        assert_eq!(date_of("05/01/2026"), None);
    }
}
