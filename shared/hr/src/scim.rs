//! SCIM bulk: worker records POSTed whole, as SCIM BulkRequests in the shape Microsoft
//! Entra's API-driven inbound provisioning takes them. An HR system, an integration platform
//! or a script that already feeds Entra's `/bulkUpload` endpoint can feed hrsync with the
//! same payload.
//!
//! # Setting it up
//!
//! ```toml
//! [source.hr]
//! kind = "scim"
//! webhook_secret = { env = "HR_SCIM_TOKEN" }
//! ```
//!
//! The sender POSTs to `https://<host>/webhooks/<source name>` with
//! `Content-Type: application/scim+json` and `Authorization: Bearer <webhook_secret>`.
//! There is no API to fetch from and nothing is written back (`writeback` does not apply).
//!
//! # Verification
//!
//! `Authorization: Bearer <token>` (the scheme in any case), the token compared in constant
//! time with `webhook_secret`. A bearer token authenticates the sender; it does not cover the
//! body: a body altered in transit still passes (TLS is what protects it). There is no
//! timestamp, so a captured request can be replayed while the token is valid: each record
//! carries its full state, so a replay restates what was already said.
//!
//! # Body
//!
//! As documented for Entra's `bulkUpload` (learn.microsoft.com, "API-driven inbound
//! provisioning"):
//!
//! - `Content-Type` must be `application/scim+json` (Entra answers anything else with 400).
//! - `schemas` must contain `urn:ietf:params:scim:api:messages:2.0:BulkRequest`.
//! - `Operations`: at most [`MAX_OPERATIONS`] (50). Each has `method` `POST`, a `bulkId`,
//!   `path` `/Users`, and `data`: a SCIM core User with the enterprise extension
//!   (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`). `failOnErrors` is read
//!   and ignored: operations are taken or refused one by one.
//!
//! A body that is not such a request (not JSON, wrong content type, no BulkRequest schema, no
//! `Operations` list, more than 50) is refused whole. Within a valid request, **each
//! operation is taken or refused on its own**: one that cannot be taken (a wrong method or
//! path, no employee id, a bad date, or a record that fails the checks every source's
//! records pass, [`Worker::validate`]) is listed in `Parsed::refused` with its `bulkId`,
//! method and a problem naming the field and how to send it, e.g.
//! `Operations[0] (employee 701984): hire_date: is missing for a worker with status
//! active: send hireDate in a custom extension such as
//! urn:ietf:params:scim:schemas:extension:hrsync:1.0:User (YYYY-MM-DD)`; the others become
//! events with `operation` = their `bulkId`.
//!
//! # Mapping
//!
//! | Worker | SCIM |
//! |---|---|
//! | `employee_id` | `externalId` (Entra's default matching attribute), else the enterprise `employeeNumber` |
//! | `given_name`, `family_name`, `middle_name` | `name.givenName`, `name.familyName`, `name.middleName` |
//! | `preferred_name` | `nickName` |
//! | `work_email` | `emails[type=work].value` (the primary one first) |
//! | `personal_email` | `emails[type=home]`, else `emails[type=other]` |
//! | `status` | `active: false` -> inactive, else active |
//! | `job_title` | `title` |
//! | `worker_type` | `workerType` from a custom extension, else `userType` |
//! | `time_zone` | `timezone` (IANA) |
//! | `location`, `country` | `addresses[type=work]`: `locality`, `country` |
//! | `cost_center`, `company`, `division`, `department` | enterprise `costCenter`, `organization`, `division`, `department` |
//! | `manager_id` | enterprise `manager.value`: the manager's employee id (their `externalId`) |
//! | `hire_date`, `termination_date`, `termination_type` | `hireDate`, `terminationDate`, `terminationType` from a custom extension |
//! | `custom.<key>` | any other string attribute of a custom extension |
//!
//! SCIM's core and enterprise schemas have no HR dates; Entra takes them in a custom
//! extension schema (documented: attributes such as
//! `urn:ietf:params:scim:schemas:extension:contoso:1.0:User:HireDate`). hrsync reads them from
//! any object whose key starts with `urn:ietf:params:scim:schemas:extension:` (other than the
//! enterprise one), attribute names in any case (`HireDate`, `hireDate`), dates as
//! `YYYY-MM-DD` or RFC 3339 date-times (the date as written is taken). `as_of` is when the
//! delivery arrived. The dedupe id of an operation is the body's SHA-256, its `bulkId`,
//! employee id and index (Entra's own sample repeats a `bulkId`).

use std::collections::BTreeMap;

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
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const EXTENSION_PREFIX: &str = "urn:ietf:params:scim:schemas:extension:";
/// The custom extension the problems suggest (any extension URN works).
pub const SUGGESTED_EXTENSION: &str = "urn:ietf:params:scim:schemas:extension:hrsync:1.0:User";
/// The most operations one BulkRequest may carry (Entra's limit).
pub const MAX_OPERATIONS: usize = 50;
/// The `event_type` of every event.
pub const EVENT_TYPE: &str = "scim.bulk POST /Users";

/// A SCIM bulk source.
#[derive(Debug)]
pub struct Scim {
    source: String,
    token: Vec<u8>,
}

impl Scim {
    pub fn new(setup: Setup<'_>) -> Result<Self, SetupError> {
        Ok(Self {
            source: setup.name.to_owned(),
            token: setup.secret("webhook_secret")?.into_bytes(),
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
        if crate::connector::same_secret(token, &self.token) {
            Ok(())
        } else {
            Err(Unauthorized(
                "the bearer token does not match this source's webhook secret".into(),
            ))
        }
    }

    /// A BulkResponse: 202 for each operation taken (its work follows asynchronously), 400
    /// with the problem for each refused.
    fn answer(&self, parsed: &Parsed) -> Option<Answer> {
        let mut operations: Vec<Value> = parsed
            .events
            .iter()
            .map(|event| {
                json!({
                    "method": "POST",
                    "bulkId": event.operation.clone().unwrap_or_default(),
                    "location": format!("/Users/{}", event.employee_id),
                    "status": "202",
                })
            })
            .collect();
        operations.extend(parsed.refused.iter().map(|refused| {
            json!({
                "method": refused.method.as_deref().unwrap_or("POST"),
                "bulkId": refused.operation.clone().unwrap_or_default(),
                "status": "400",
                "response": {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                    "scimType": "invalidValue",
                    "detail": refused.problem,
                    "status": "400",
                },
            })
        }));
        Some(Answer {
            status: 200,
            content_type: MEDIA_TYPE,
            body: json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"],
                "Operations": operations,
            }),
        })
    }

    fn parse(&self, delivery: &Delivery<'_>) -> Result<Parsed, BadPayload> {
        match delivery.media_type().as_deref() {
            Some(MEDIA_TYPE) => {}
            Some(other) => {
                return Err(BadPayload(format!(
                    "Content-Type is {other}; a SCIM BulkRequest is sent as {MEDIA_TYPE}"
                )));
            }
            None => {
                return Err(BadPayload(format!(
                    "Content-Type is missing; a SCIM BulkRequest is sent as {MEDIA_TYPE}"
                )));
            }
        }
        let body: Value = serde_json::from_slice(delivery.body)
            .map_err(|e| BadPayload(format!("the body is not valid JSON: {e}")))?;
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
                Ok((bulk_id, worker)) => parsed.events.push(Event {
                    employee_id: worker.employee_id.clone(),
                    event_type: EVENT_TYPE.into(),
                    dedupe: format!("{digest}#{bulk_id}:{}:{index}", worker.employee_id),
                    action: Action::Record(Box::new(worker)),
                    operation: Some(bulk_id),
                }),
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
        if operation.get("path").and_then(Value::as_str) != Some("/Users") {
            return Err(refuse(bulk, method, ": path: only /Users is taken".into()));
        }
        let Some(Value::Object(data)) = operation.get("data") else {
            return Err(refuse(
                bulk,
                method,
                ": data: missing: send the SCIM User as an object".into(),
            ));
        };
        let worker = self.worker(data, as_of).map_err(|(id, problem)| {
            let problem = match id {
                Some(id) => format!(" (employee {id}): {problem}"),
                None => format!(": {problem}"),
            };
            refuse(bulk, method, problem)
        })?;
        Ok((bulk_id, worker))
    }

    /// The worker of one SCIM User; the error is (employee id if known, problem).
    fn worker(
        &self,
        user: &Map<String, Value>,
        as_of: Timestamp,
    ) -> Result<Worker, (Option<String>, String)> {
        let enterprise = user.get(ENTERPRISE).and_then(Value::as_object);
        let enterprise_text = |key: &str| enterprise.and_then(|e| e.get(key)).and_then(text);
        let Some(employee_id) = user
            .get("externalId")
            .and_then(text)
            .or_else(|| enterprise_text("employeeNumber"))
        else {
            return Err((
                None,
                format!(
                    "employee_id: missing: send externalId (or employeeNumber in {ENTERPRISE}), the worker's id in the HR system"
                ),
            ));
        };
        let fail = |problem: String| (Some(employee_id.clone()), problem);
        let name = user.get("name").and_then(Value::as_object);
        let name_text = |key: &str| name.and_then(|n| n.get(key)).and_then(text);
        let mut worker = Worker::new(
            WorkerKey::new(&self.source, &employee_id),
            name_text("givenName").unwrap_or_default(),
            name_text("familyName").unwrap_or_default(),
            as_of,
        );
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
        worker.status = match user.get("active") {
            Some(Value::Bool(false)) => Status::Inactive,
            _ => Status::Active,
        };
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

        let extensions = Extensions::of(user);
        worker.hire_date = extensions.date("hireDate").map_err(fail)?;
        worker.termination_date = extensions.date("terminationDate").map_err(fail)?;
        worker.termination_type = extensions.text("terminationType");
        worker.worker_type = extensions
            .text("workerType")
            .or_else(|| user.get("userType").and_then(text));
        worker.custom = extensions.custom();

        worker
            .validate()
            .map_err(|e| fail(format!("{e}: {}", how_to_send(e.field))))?;
        Ok(worker)
    }
}

/// How to send a field the core's checks refused, in SCIM terms.
fn how_to_send(field: &str) -> String {
    match field {
        "employee_id" => "send externalId, the worker's id in the HR system".into(),
        "given_name" => "send name.givenName".into(),
        "family_name" => "send name.familyName".into(),
        "hire_date" => format!(
            "send hireDate in a custom extension such as {SUGGESTED_EXTENSION} (YYYY-MM-DD)"
        ),
        "time_zone" => "send timezone as an IANA name (e.g. Europe/London)".into(),
        "manager_id" => {
            format!("send the manager's own externalId as manager.value in {ENTERPRISE}")
        }
        other => format!("check the attribute that maps to {other}"),
    }
}

/// The custom extension objects of a User (every `urn:ietf:params:scim:schemas:extension:`
/// key but the enterprise one), read with attribute names in any case.
struct Extensions<'a>(Vec<&'a Map<String, Value>>);

impl<'a> Extensions<'a> {
    const KNOWN: [&'static str; 4] = [
        "hiredate",
        "terminationdate",
        "terminationtype",
        "workertype",
    ];

    fn of(user: &'a Map<String, Value>) -> Self {
        Self(
            user.iter()
                .filter(|(key, _)| key.starts_with(EXTENSION_PREFIX) && key.as_str() != ENTERPRISE)
                .filter_map(|(_, value)| value.as_object())
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.iter().find_map(|extension| {
            extension
                .iter()
                .find(|(key, value)| key.eq_ignore_ascii_case(name) && !value.is_null())
                .map(|(_, value)| value)
        })
    }

    fn text(&self, name: &str) -> Option<String> {
        self.get(name).and_then(text)
    }

    fn date(&self, name: &str) -> Result<Option<Date>, String> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let Some(value) = text(value) else {
            return Ok(None);
        };
        date_of(&value)
            .map(Some)
            .ok_or_else(|| format!("{name}: not a date: send YYYY-MM-DD or an RFC 3339 date-time"))
    }

    /// Every other string attribute, for templates as `custom.<name>`.
    fn custom(&self) -> BTreeMap<String, String> {
        let mut custom = BTreeMap::new();
        for extension in &self.0 {
            for (key, value) in extension.iter() {
                if Self::KNOWN.contains(&key.to_ascii_lowercase().as_str()) {
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
