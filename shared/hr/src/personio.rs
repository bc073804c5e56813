//! Personio: v2 webhooks with a static token, the v2 API with OAuth2 client credentials.
//!
//! # Setting it up
//!
//! ```toml
//! [source.personio]
//! kind = "personio"
//! base_url = "https://api.personio.de"
//! webhook_secret = { env = "PERSONIO_WEBHOOK_TOKEN" }
//! client_id = { env = "PERSONIO_CLIENT_ID" }
//! client_secret = { env = "PERSONIO_CLIENT_SECRET" }
//! # token_url = "https://api.personio.de/v2/auth/token"   (the default: {base_url}/v2/auth/token)
//! ```
//!
//! On Personio's side:
//!
//! - **API credentials** (Settings > Integrations > API credentials): a client id and secret
//!   with the scopes `personio:persons:read` (persons and employments) and, for the work
//!   email to be written back, `personio:persons:write`; `personio:webhooks:write` only to
//!   create the webhook through the API. Give the credential read access to the attributes
//!   hrsync maps (names, email, preferred name, and the employment's status, dates, position,
//!   org units, office, legal entity, supervisor): Personio returns bare ids for attributes a
//!   credential may not read.
//! - **A webhook**, created with `POST https://api.personio.de/v2/webhooks`:
//!   `url` = `https://<host>/webhooks/<source name>`, `status` = `ENABLED` (it defaults to
//!   `DISABLED`), `auth_type` = `TOKEN` (the default) with `token` = the value of
//!   `webhook_secret`, and `enabled_events` = `person.created`, `person.updated`,
//!   `person.deleted`, `employment.created`, `employment.updated`, `employment.deleted`,
//!   `employment.started`, `employment.terminated`. Absence, attendance and document events
//!   may be enabled too: they are acknowledged and ignored.
//!
//! # Verification
//!
//! Personio sends the configured token **verbatim** in the `Authorization` header: no HMAC,
//! no timestamp, no `Bearer ` prefix of its own [documented]. The whole header value is
//! compared, in constant time, with `webhook_secret`; nothing is stripped or added. To have
//! Personio send `Bearer <x>`, set its token to `Bearer <x>` and `webhook_secret` to the same
//! `Bearer <x>`. A static token does not cover the body: anyone holding the token can send
//! any body, which is why every event is only a cue to fetch the record from the API.
//! Rotate the token with `PATCH /v2/webhooks/{id}`.
//!
//! Personio retries a delivery that is not acknowledged within 3 s, or answered 5xx (but
//! 501), for up to 3 days with the same bytes [documented]: the dedupe id is the body's
//! SHA-256 and the person id, so a retry is taken once.
//!
//! # Events
//!
//! The envelope is `{company_id, event_name, occurred_at, payload, meta?}` [documented];
//! webhooks are "dataless notifications" that carry ids only [documented]. The payload's
//! keys are not documented where this was written [assumption]: the person id is read from
//! `payload.person_id`, `payload.person.id` or (person events only) `payload.id`; ids may
//! be strings or numbers. The person id is the employee id.
//!
//! | event | action |
//! |---|---|
//! | `person.created`, `person.updated` | fetch |
//! | `person.deleted` | deleted (fetched: a person that is gone makes the worker leave) |
//! | `employment.created`, `.updated`, `.started`, `.terminated` | fetch the person |
//! | `employment.deleted` | deleted: Personio sends it when an employment is removed *or* its person is deleted; the fetch tells which (a person still there is taken as they are) |
//! | anything else (absences, attendances, documents...) | ignored |
//!
//! # Fetch
//!
//! - `POST {token_url}` with the form `client_id`, `client_secret`,
//!   `grant_type=client_credentials` gives a bearer token [documented: OAuth2 client
//!   credentials at `/v2/auth/token`], cached until shortly before `expires_in`.
//! - `GET /v2/persons/{id}`: the person (404: gone) [secondary: Personio's forum and client
//!   code; the list endpoint `GET /v2/persons?id=` is the documented alternative].
//! - `GET /v2/persons/{id}/employments?limit=50`: the employments, most recent first
//!   [documented], cursor-paginated: `_meta.links.next.href` is the next page [secondary].
//!   Pages are followed until an employment is current (status `ACTIVE`, `ONBOARDING` or
//!   `LEAVE`); when none is, the most recent one is taken. A next link outside `base_url` is
//!   refused (the bearer token is never sent elsewhere).
//! - `GET /v2/org-units/{id}`, only for a department org unit the employment names by id
//!   alone [assumption: path]; a failed lookup leaves the department empty.
//!
//! Field names [assumption where not noted; they follow Personio's v2 data model]:
//!
//! | Worker | Personio |
//! |---|---|
//! | `given_name`, `family_name`, `preferred_name` | person `first_name`, `last_name`, `preferred_name` |
//! | `work_email` | person `email` |
//! | `status` | employment `status`: `ACTIVE` and `ONBOARDING` -> active (an onboarding hire starts on `hire_date`), `LEAVE` -> leave, `INACTIVE` -> terminated with a termination date, else inactive. Without any employment, person `status` (`ACTIVE` / `INACTIVE`) |
//! | `hire_date` | employment `start_date` (or `employment_start_date`) |
//! | `termination_date`, `termination_type` | employment `termination.termination_date` (or `.date`, or a top-level `termination_date`), `termination.type` |
//! | `worker_type` | employment `type` |
//! | `job_title` | employment `position.title` (or a `position` string) |
//! | `department` | the employment's `org_units` entry of type `DEPARTMENT`: its `name`, else looked up |
//! | `location` | employment `office.name` |
//! | `company` | employment `legal_entity.name` |
//! | `cost_center` | the first of employment `cost_centers` with a `name` |
//! | `manager_id` | employment `supervisor.id`: a person id, so the manager is a worker of this source |
//!
//! Personio has no personal email, time zone or country on these records: they stay empty.
//! Dates are `YYYY-MM-DD` or RFC 3339 date-times (the date as written is taken).
//!
//! # Write-back
//!
//! `PATCH /v2/persons/{id}` with `{"email": "<mail>"}` (scope `personio:persons:write`)
//! [documented endpoint; the body's field name is an assumption from the person's `email`
//! attribute]. Personio has no username field, so only the email is written.

use hrsync_core::{Identifiers, Status, Worker, WorkerKey};
use jiff::Timestamp;
use jiff::civil::Date;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::{ApiClient, Auth, Body, RetryPolicy, encode};
use crate::connector::{
    Action, BadPayload, BoxFuture, Connector, Delivery, Fetched, HrError, Parsed, Unauthorized,
};
use crate::sources::{Setup, SetupError};

/// The header Personio puts the webhook token in.
pub const TOKEN_HEADER: &str = "Authorization";

/// Employments read per page (Personio's maximum page size is 50).
pub const PAGE_SIZE: u32 = 50;

/// Pages of employments followed at most, looking for the current one.
pub const MAX_PAGES: usize = 20;

/// What hrsync does with an event, by Personio's event name; `None`: ignored.
pub fn action_of(event_name: &str) -> Option<Action> {
    match event_name {
        "person.created" | "person.updated" => Some(Action::Fetch),
        "person.deleted" | "employment.deleted" => Some(Action::Deleted),
        "employment.created"
        | "employment.updated"
        | "employment.started"
        | "employment.terminated" => Some(Action::Fetch),
        _ => None,
    }
}

/// A Personio source: verifies and reads its webhooks, fetches persons and employments.
#[derive(Debug)]
pub struct Personio {
    source: String,
    token: Vec<u8>,
    api: ApiClient,
    writes_back: bool,
}

impl Personio {
    pub fn new(setup: Setup<'_>) -> Result<Self, SetupError> {
        let token = setup.secret("webhook_secret")?.into_bytes();
        let base_url = setup.base_url()?;
        let client_id = setup.secret("client_id")?;
        let client_secret = setup.secret("client_secret")?;
        let token_url = setup
            .config
            .token_url
            .clone()
            .unwrap_or_else(|| format!("{base_url}/v2/auth/token"));
        let auth = Auth::oauth2(
            token_url,
            vec![
                ("client_id".into(), client_id),
                ("client_secret".into(), client_secret),
                ("grant_type".into(), "client_credentials".into()),
            ],
        );
        Ok(Self {
            source: setup.name.to_owned(),
            token,
            api: ApiClient::new("Personio", setup.http.clone(), base_url, auth),
            writes_back: setup.writes_back(),
        })
    }

    /// The same connector with another retry policy (tests use a short one).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.api = self.api.with_retry(retry);
        self
    }

    async fn fetch_person(&self, id: &str, now: Timestamp) -> Result<Fetched, HrError> {
        let what = format!("fetch Personio person {id}");
        let response = self
            .api
            .send(
                Method::GET,
                &format!("/v2/persons/{}", encode(id)),
                None,
                &what,
            )
            .await?;
        if response.status == StatusCode::NOT_FOUND {
            return Ok(Fetched::Gone);
        }
        if !response.is_success() {
            return Err(response.unexpected(&what));
        }
        let person = unwrap_data(response.json::<Value>(&what)?);
        let employment = match self.current_employment(id).await? {
            Employments::Gone => return Ok(Fetched::Gone),
            Employments::Current(employment) => employment,
        };
        let department = match &employment {
            Some(employment) => self.department(employment).await?,
            None => None,
        };
        let worker = self.worker(id, &person, employment.as_ref(), department, now)?;
        worker.validate_record().map_err(|e| {
            HrError::permanent(format!(
                "Personio person {id} cannot be taken: {e} (check the record in Personio, and that the API credential may read that attribute)"
            ))
        })?;
        Ok(Fetched::Worker(Box::new(worker)))
    }

    /// The current employment (or the most recent one), following the cursor pages.
    async fn current_employment(&self, id: &str) -> Result<Employments, HrError> {
        let what = format!("list the employments of Personio person {id}");
        let mut path = format!("/v2/persons/{}/employments?limit={PAGE_SIZE}", encode(id));
        let mut latest: Option<Value> = None;
        for _ in 0..MAX_PAGES {
            let response = self.api.send(Method::GET, &path, None, &what).await?;
            if response.status == StatusCode::NOT_FOUND {
                return Ok(Employments::Gone);
            }
            if !response.is_success() {
                return Err(response.unexpected(&what));
            }
            let page: Value = response.json(&what)?;
            let Some(items) = page.get("_data").and_then(Value::as_array) else {
                return Err(HrError::permanent(format!(
                    "{what}: the response has no _data list"
                )));
            };
            for item in items {
                if is_current(item) {
                    return Ok(Employments::Current(Some(item.clone())));
                }
                if latest.is_none() {
                    latest = Some(item.clone());
                }
            }
            let next = page
                .pointer("/_meta/links/next/href")
                .and_then(Value::as_str)
                .filter(|href| !href.trim().is_empty());
            match next {
                None => return Ok(Employments::Current(latest)),
                Some(href) => {
                    path = self.relative(href).ok_or_else(|| {
                        HrError::permanent(format!(
                            "{what}: the next page link is not under base_url; it is not followed"
                        ))
                    })?;
                }
            }
        }
        tracing::debug!(
            source = %self.source,
            "no current Personio employment within {MAX_PAGES} pages; the most recent is taken"
        );
        Ok(Employments::Current(latest))
    }

    /// A next-page link as a path under the API root; `None` when it points elsewhere.
    fn relative(&self, href: &str) -> Option<String> {
        let href = href.trim();
        if let Some(rest) = href.strip_prefix(self.api.base_url())
            && rest.starts_with('/')
        {
            return Some(rest.to_owned());
        }
        (href.starts_with('/') && !href.starts_with("//")).then(|| href.to_owned())
    }

    /// The employment's department name: embedded, else looked up by its id.
    async fn department(&self, employment: &Value) -> Result<Option<String>, HrError> {
        let Some(unit) = employment
            .get("org_units")
            .and_then(Value::as_array)
            .and_then(|units| {
                units.iter().find(|unit| {
                    unit.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t.eq_ignore_ascii_case("DEPARTMENT"))
                })
            })
        else {
            return Ok(None);
        };
        if let Some(name) = unit.get("name").and_then(text) {
            return Ok(Some(name));
        }
        let Some(id) = unit.get("id").and_then(text) else {
            return Ok(None);
        };
        let what = format!("look up Personio org unit {id}");
        let response = self
            .api
            .send(
                Method::GET,
                &format!("/v2/org-units/{}", encode(&id)),
                None,
                &what,
            )
            .await?;
        if !response.is_success() {
            tracing::debug!(
                source = %self.source,
                status = response.status.as_u16(),
                "Personio org unit lookup failed; department left empty"
            );
            return Ok(None);
        }
        let unit = unwrap_data(response.json::<Value>(&what)?);
        Ok(unit.get("name").and_then(text))
    }

    fn worker(
        &self,
        id: &str,
        person: &Value,
        employment: Option<&Value>,
        department: Option<String>,
        now: Timestamp,
    ) -> Result<Worker, HrError> {
        let field = |name: &str| person.get(name).and_then(text);
        let mut worker = Worker::new(
            WorkerKey::new(&self.source, id),
            field("first_name").unwrap_or_default(),
            field("last_name").unwrap_or_default(),
            now,
        );
        worker.preferred_name = field("preferred_name");
        worker.work_email = field("email");
        let bad_date = |name: &str| {
            HrError::permanent(format!(
                "Personio person {id}: {name} is not a date (YYYY-MM-DD or an RFC 3339 date-time)"
            ))
        };
        match employment {
            None => {
                worker.status = match field("status").as_deref().map(str::to_ascii_uppercase) {
                    Some(s) if s == "INACTIVE" => Status::Inactive,
                    _ => Status::Active,
                };
            }
            Some(employment) => {
                let get = |pointer: &str| employment.pointer(pointer).and_then(text);
                let start = get("/start_date").or_else(|| get("/employment_start_date"));
                worker.hire_date =
                    date_of(start.as_deref()).map_err(|()| bad_date("start_date"))?;
                let termination = get("/termination/termination_date")
                    .or_else(|| get("/termination/date"))
                    .or_else(|| get("/termination_date"));
                worker.termination_date =
                    date_of(termination.as_deref()).map_err(|()| bad_date("termination date"))?;
                worker.termination_type = get("/termination/type");
                worker.status =
                    status_of(get("/status").as_deref(), worker.termination_date.is_some());
                worker.worker_type = get("/type").or_else(|| get("/employment_type"));
                worker.job_title = get("/position/title").or_else(|| get("/position"));
                worker.department = department;
                worker.location = get("/office/name");
                worker.company = get("/legal_entity/name");
                worker.cost_center = employment
                    .get("cost_centers")
                    .and_then(Value::as_array)
                    .and_then(|centers| {
                        centers
                            .iter()
                            .find_map(|center| center.get("name").and_then(text))
                    });
                worker.manager_id = get("/supervisor/id");
            }
        }
        Ok(worker)
    }

    async fn patch_email(&self, worker: &Worker, identifiers: &Identifiers) -> Result<(), HrError> {
        let id = &worker.employee_id;
        let what = format!("write the work email to Personio person {id}");
        let body = Body::Json(json!({ "email": identifiers.mail }));
        let response = self
            .api
            .send(
                Method::PATCH,
                &format!("/v2/persons/{}", encode(id)),
                Some(&body),
                &what,
            )
            .await?;
        if response.status == StatusCode::NOT_FOUND {
            return Err(HrError::permanent(format!(
                "{what}: Personio has no such person any more"
            )));
        }
        if !response.is_success() {
            return Err(response.unexpected(&what));
        }
        Ok(())
    }
}

enum Employments {
    /// The person disappeared between the two calls.
    Gone,
    Current(Option<Value>),
}

/// Personio's employment status words as a [`Status`].
pub fn status_of(status: Option<&str>, has_termination_date: bool) -> Status {
    match status.map(str::to_ascii_uppercase).as_deref() {
        Some("LEAVE") => Status::Leave,
        Some("INACTIVE") if has_termination_date => Status::Terminated,
        Some("INACTIVE") => Status::Inactive,
        // ACTIVE, ONBOARDING (hired, starting on the start date), or a word hrsync does not
        // know: the dates decide.
        _ => Status::Active,
    }
}

fn is_current(employment: &Value) -> bool {
    employment
        .get("status")
        .and_then(Value::as_str)
        .is_some_and(|status| {
            ["ACTIVE", "ONBOARDING", "LEAVE"]
                .iter()
                .any(|s| status.eq_ignore_ascii_case(s))
        })
}

/// A single resource, whether or not it comes wrapped in `_data`.
fn unwrap_data(value: Value) -> Value {
    match value {
        Value::Object(mut object) if matches!(object.get("_data"), Some(Value::Object(_))) => {
            object.remove("_data").unwrap_or_default()
        }
        other => other,
    }
}

/// A string (trimmed, non-empty) or a number, as text.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `YYYY-MM-DD`, or an RFC 3339 date-time whose date (as written) is taken; `Err` for
/// anything else.
fn date_of(text: Option<&str>) -> Result<Option<Date>, ()> {
    let Some(text) = text else {
        return Ok(None);
    };
    let date = if text.len() == 10 {
        text.parse().ok()
    } else {
        text.parse::<Timestamp>()
            .ok()
            .and_then(|_| text.get(..10)?.parse().ok())
    };
    date.map(Some).ok_or(())
}

impl Connector for Personio {
    fn source(&self) -> &str {
        &self.source
    }

    fn verify(&self, delivery: &Delivery<'_>) -> Result<(), Unauthorized> {
        let Some(value) = delivery.headers.get(TOKEN_HEADER) else {
            return Err(Unauthorized(format!("missing the {TOKEN_HEADER} header")));
        };
        if crate::connector::same_secret(value.as_bytes(), &self.token) {
            Ok(())
        } else {
            Err(Unauthorized(format!(
                "the {TOKEN_HEADER} header does not match this source's webhook token (Personio sends the token verbatim)"
            )))
        }
    }

    fn parse(&self, delivery: &Delivery<'_>) -> Result<Parsed, BadPayload> {
        let body: Value = serde_json::from_slice(delivery.body)
            .map_err(|e| BadPayload(format!("the body is not valid JSON: {e}")))?;
        let Value::Object(envelope) = body else {
            return Err(BadPayload("the body is not a JSON object".into()));
        };
        let event_name = match envelope.get("event_name") {
            Some(Value::String(name)) if !name.trim().is_empty() => name.trim(),
            Some(_) => return Err(BadPayload("event_name is not a non-empty string".into())),
            None => return Err(BadPayload("event_name is missing".into())),
        };
        let Some(action) = action_of(event_name) else {
            tracing::debug!(source = %self.source, event_name, "Personio event ignored");
            return Ok(Parsed::default());
        };
        let payload = match envelope.get("payload") {
            Some(Value::Object(payload)) => payload,
            Some(_) => return Err(BadPayload("payload is not an object".into())),
            None => return Err(BadPayload("payload is missing".into())),
        };
        let person_event = event_name.starts_with("person.");
        let employee_id = payload
            .get("person_id")
            .and_then(text)
            .or_else(|| {
                payload
                    .get("person")
                    .and_then(|p| p.get("id"))
                    .and_then(text)
            })
            .or_else(|| {
                person_event
                    .then(|| payload.get("id").and_then(text))
                    .flatten()
            })
            .ok_or_else(|| {
                BadPayload(format!(
                    "{event_name}: the payload names no person id (payload.person_id{})",
                    if person_event { " or payload.id" } else { "" }
                ))
            })?;
        Ok(Parsed::one(
            delivery,
            employee_id,
            event_name.to_owned(),
            action,
        ))
    }

    fn fetch<'a>(
        &'a self,
        employee_id: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Fetched, HrError>> {
        Box::pin(self.fetch_person(employee_id, now))
    }

    fn writes_back(&self) -> bool {
        self.writes_back
    }

    fn write_back<'a>(
        &'a self,
        worker: &'a Worker,
        identifiers: &'a Identifiers,
    ) -> BoxFuture<'a, Result<(), HrError>> {
        Box::pin(self.patch_email(worker, identifiers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_take_the_day_as_written() {
        assert_eq!(
            date_of(Some("2026-03-01")),
            Ok(Some(jiff::civil::date(2026, 3, 1)))
        );
        assert_eq!(
            date_of(Some("2026-03-01T00:00:00+01:00")),
            Ok(Some(jiff::civil::date(2026, 3, 1)))
        );
        assert_eq!(date_of(Some("01.03.2026")), Err(()));
        assert_eq!(date_of(None), Ok(None));
    }

    #[test]
    fn status_words_map() {
        assert_eq!(status_of(Some("ACTIVE"), false), Status::Active);
        assert_eq!(status_of(Some("ONBOARDING"), false), Status::Active);
        assert_eq!(status_of(Some("LEAVE"), false), Status::Leave);
        assert_eq!(status_of(Some("INACTIVE"), true), Status::Terminated);
        assert_eq!(status_of(Some("INACTIVE"), false), Status::Inactive);
    }
}
