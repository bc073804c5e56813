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
//! # employee_id_field = "id"   (the default: the person id; or "custom_attributes.<id or global_id>")
//! ```
//!
//! On Personio's side:
//!
//! - **API credentials** (Settings > Integrations > API credentials): a client id and secret
//!   with the scopes `personio:persons:read` (persons and employments) and, for the work
//!   email to be written back, `personio:persons:write`; `personio:webhooks:write` only to
//!   create the webhook through the API. Give the credential read access to the attributes
//!   hrsync maps (names, email, preferred name, the custom attribute named by
//!   `employee_id_field` if any, and the employment's status, dates, position, org units,
//!   supervisor) and to org units: Personio returns bare ids for attributes a credential may
//!   not read [S developer.personio.de/discuss/6914b9020a95c90a2bdeabbf].
//! - **A webhook**, created with `POST https://api.personio.de/v2/webhooks`:
//!   `url` = `https://<host>/webhooks/<source name>`, `status` = `ENABLED` (it defaults to
//!   `DISABLED`), `auth_type` = `TOKEN` (the default) with `token` = the value of
//!   `webhook_secret`, and `enabled_events` = `person.created`, `person.updated`,
//!   `person.deleted`, `employment.created`, `employment.updated`, `employment.deleted`,
//!   `employment.started`, `employment.terminated` [O
//!   developer.personio.de/reference/post_v2-webhooks]. Absence, attendance and document
//!   events may be enabled too: they are acknowledged and ignored.
//!
//! # Verification
//!
//! With `auth_type` `TOKEN` Personio sends the configured token **verbatim** in the
//! `Authorization` header, no prefix of its own [O post_v2-webhooks: "The callback will
//! include this exact value in the Authorization header"]. The whole header value is
//! compared, in constant time, with `webhook_secret`; nothing is stripped or added. To have
//! Personio send `Bearer <x>`, set its token to `Bearer <x>` and `webhook_secret` to the same
//! `Bearer <x>`. A static token does not cover the body: anyone holding the token can send
//! any body, which is why every event is only a cue to fetch the record from the API.
//! Rotate the token with `PATCH /v2/webhooks/{id}`.
//!
//! Personio retries a delivery that is not acknowledged within 3 s, or answered 5xx (but
//! 501), for up to 3 days [O developer.personio.de/reference/webhooks]: the dedupe id is the
//! body's SHA-256 and the person id, so a retry is taken once.
//!
//! # Events
//!
//! The envelope is `{company_id, event_name, occurred_at, payload, meta?}`; webhooks are
//! "dataless notifications" that carry ids only [O webhooks]. The payload's keys are not
//! documented [U]: the person id is read from `payload.person_id`, `payload.person.id` or
//! (person events only) `payload.id`; ids may be strings or numbers.
//!
//! | event | action |
//! |---|---|
//! | `person.created`, `person.updated` | fetch |
//! | `person.deleted` | deleted (fetched: a person that is gone makes the worker leave) |
//! | `employment.created`, `.updated`, `.started`, `.terminated` | fetch the person |
//! | `employment.deleted` | deleted: Personio sends it when an employment is removed *or* its person is deleted [O developer.personio.de/docs/event-driven-data-from-personio]; the fetch tells which (a person still there is taken as they are) |
//! | anything else (absences, attendances, documents...) | ignored |
//!
//! # Fetch
//!
//! - `POST {token_url}` with the form `client_id`, `client_secret`,
//!   `grant_type=client_credentials` gives a bearer token [O
//!   developer.personio.de/reference/post_v2-auth-token], cached until shortly before
//!   `expires_in`.
//! - `GET /v2/persons/{id}`: the person, not wrapped; 404: gone [O
//!   developer.personio.de/reference/get_v2-persons-id].
//! - `GET /v2/persons/{id}/employments?limit=50`: the employments, most recent first; `limit`
//!   is 1 to 50 [O developer.personio.de/reference/get_v2-persons-person-id-employments];
//!   cursor pages, `_meta.links.next.href` being the next one [O
//!   github.com/personio/api-docs/blob/master/common-components-v2.json, MetaObject; `next`
//!   S]. Pages are followed until an employment is current (status `ACTIVE`, `ONBOARDING` or
//!   `LEAVE`); when none is, the most recent one is taken. A next link outside `base_url` is
//!   refused (the bearer token is never sent elsewhere).
//! - `GET /v2/org-units/{id}?type=department` (and `type=team`) for each org unit the
//!   employment names as `{id, type}`: `id` is an int64 and `type` is **required** [O
//!   developer.personio.de/reference/getorgunit]; the unit's `name` is taken. Names are
//!   cached per (type, id) for [`ORG_UNIT_TTL`]. A unit that cannot be read fails the fetch
//!   (an empty department would take away what department rules grant).
//!
//! Field names [U where not noted]:
//!
//! | Worker | Personio |
//! |---|---|
//! | `employee_id` | `employee_id_field`: `id` (the person id, the default; Personio's ids are short digit strings, e.g. `5005` [O get_v2-persons-person-id-employments, x-path-examples]), or `custom_attributes.<key>`: the value of the person's custom attribute whose `id` or `global_id` is `<key>` [O common-components-v2.json, CustomAttribute], e.g. one holding the employee number. Missing or over 16 characters: a permanent error for that person |
//! | `given_name`, `family_name`, `preferred_name` | person `first_name`, `last_name`, `preferred_name` [O get_v2-persons-id] |
//! | `work_email` | person `email` [O get_v2-persons-id] |
//! | `status` | employment `status`: `ACTIVE` and `ONBOARDING` -> active (an onboarding hire starts on `hire_date`), `LEAVE` -> leave, `INACTIVE` -> terminated with a termination date, else inactive [O status words: get_v2-persons, filter `status`]. Without any employment, person `status` (`ACTIVE` / `INACTIVE`) |
//! | `hire_date` | employment `start_date` (or `employment_start_date`) |
//! | `termination_date`, `termination_type` | employment `termination.termination_date` (or `.date`, or a top-level `termination_date`), `termination.type` |
//! | `worker_type` | employment `type` |
//! | `job_title` | employment `position.title` (or a `position` string) |
//! | `department` | the name of the employment's org unit of type `department`, looked up |
//! | `custom.team` (templates: `{{ custom.team }}`) | the name of the employment's org unit of type `team`, looked up |
//! | `location` | employment `office.name`, when given: Personio documents the office as a nested id only [O developer.personio.de/changelog/job-reference-now-available-on-employment] and has no v2 call for its name [S developer.personio.de/discuss/67d02dda07caa4000f0a4d10], so it is usually empty |
//! | `company` | employment `legal_entity.name`, when given (a nested id only, as the office) |
//! | `cost_center` | the first of employment `cost_centers` with a `name` |
//! | `manager_id` | employment `supervisor.id`: a person id [S the employment's `_meta.links.supervisor` is a `/v2/persons/{id}` link], so the manager is a worker of this source |
//!
//! Personio has no personal email, time zone or country on these records: they stay empty.
//! Dates are `YYYY-MM-DD` or RFC 3339 date-times (the date as written is taken).
//!
//! # Write-back
//!
//! `PATCH /v2/persons/{person id}` with `{"email": "<mail>"}` (scope
//! `personio:persons:write`; 204; the email must be unique among persons) [O
//! developer.personio.de/reference/patch_v2-persons-person-id]. It goes to the person id
//! (the worker key), whatever `employee_id_field` is. Personio has no username field, so
//! only the email is written.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hrsync_core::worker::EMPLOYEE_ID_MAX_CHARS;
use hrsync_core::{Identifiers, Status, Worker, WorkerKey};
use jiff::Timestamp;
use jiff::civil::Date;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::{ApiClient, Auth, Body, RetryPolicy, encode, id_segment};
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

/// How long an org unit's name is reused. Org units change rarely and many workers share
/// one, so a burst of events or a poll asks Personio once per unit; the bound makes a
/// renamed department reach the directory within minutes in a long-running `serve`, and
/// keeps a deleted unit from being served from memory.
pub const ORG_UNIT_TTL: Duration = Duration::from_secs(5 * 60);

/// The `employee_id_field` prefix naming a person's custom attribute.
pub const CUSTOM_ATTRIBUTE_PREFIX: &str = "custom_attributes.";

/// The org unit types hrsync maps: the `type` query value and the worker field it fills.
const DEPARTMENT: &str = "department";
const TEAM: &str = "team";

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

/// Where the worker's directory employee id comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EmployeeIdField {
    /// The person id (`id`).
    PersonId,
    /// The custom attribute with this `id` or `global_id`.
    CustomAttribute(String),
}

impl EmployeeIdField {
    fn name(&self) -> String {
        match self {
            Self::PersonId => "id".into(),
            Self::CustomAttribute(key) => format!("{CUSTOM_ATTRIBUTE_PREFIX}{key}"),
        }
    }
}

/// Org unit names by (type, id), each with when it was read.
#[derive(Debug, Default)]
struct OrgUnitCache {
    entries: Mutex<HashMap<OrgUnitKey, (String, Instant)>>,
}

/// An org unit's type (`department`, `team`) and id.
type OrgUnitKey = (&'static str, String);

impl OrgUnitCache {
    fn get(&self, kind: &'static str, id: &str, ttl: Duration) -> Option<String> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(&(kind, id.to_owned()))
            .filter(|(_, read)| read.elapsed() < ttl)
            .map(|(name, _)| name.clone())
    }

    fn put(&self, kind: &'static str, id: &str, name: &str, ttl: Duration) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, (_, read)| read.elapsed() < ttl);
        entries.insert((kind, id.to_owned()), (name.to_owned(), Instant::now()));
    }
}

/// A Personio source: verifies and reads its webhooks, fetches persons and employments.
#[derive(Debug)]
pub struct Personio {
    source: String,
    token: crate::sources::WebhookSecret,
    api: ApiClient,
    writes_back: bool,
    employee_id_field: EmployeeIdField,
    org_units: OrgUnitCache,
    org_unit_ttl: Duration,
}

impl Personio {
    pub fn new(setup: Setup<'_>) -> Result<Self, SetupError> {
        let token = setup.webhook_secret()?;
        let base_url = setup.base_url()?;
        let client_id = setup.secret("client_id")?;
        let client_secret = setup.secret("client_secret")?;
        let employee_id_field = match setup.config.employee_id_field() {
            None | Some("id") => EmployeeIdField::PersonId,
            Some(field) => match field.strip_prefix(CUSTOM_ATTRIBUTE_PREFIX) {
                Some(key) if !key.trim().is_empty() => {
                    EmployeeIdField::CustomAttribute(key.trim().to_owned())
                }
                _ => {
                    return Err(setup.error(
                        Some("employee_id_field"),
                        format!(
                            "{field:?} is not a Personio person field hrsync reads: use \"id\" (the person id, the default) or \"{CUSTOM_ATTRIBUTE_PREFIX}<id or global_id>\" (a custom attribute such as the employee number)"
                        ),
                    ));
                }
            },
        };
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
            employee_id_field,
            org_units: OrgUnitCache::default(),
            org_unit_ttl: ORG_UNIT_TTL,
        })
    }

    /// The same connector with another retry policy (tests use a short one).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.api = self.api.with_retry(retry);
        self
    }

    /// The same connector keeping org unit names for `ttl` instead of [`ORG_UNIT_TTL`].
    pub fn with_org_unit_ttl(mut self, ttl: Duration) -> Self {
        self.org_unit_ttl = ttl;
        self
    }

    async fn fetch_person(&self, id: &str, now: Timestamp) -> Result<Fetched, HrError> {
        let segment = id_segment(&self.source, "Personio", id)?;
        let what = format!("source {}: fetch Personio person {id}", self.source);
        let response = self
            .api
            .send(Method::GET, &format!("/v2/persons/{segment}"), None, &what)
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
        let units = match &employment {
            Some(employment) => self.org_units(id, employment).await?,
            None => OrgUnits::default(),
        };
        let mut worker = self.worker(id, &person, employment.as_ref(), units, now)?;
        worker.employee_id = self.employee_id(id, &person)?;
        worker.validate_record().map_err(|e| {
            HrError::permanent(format!(
                "source {}: Personio person {id} cannot be taken: {e} (check the record in Personio, and that the API credential may read that attribute)",
                self.source
            ))
        })?;
        Ok(Fetched::Worker(Box::new(worker)))
    }

    /// The directory employee id from `employee_id_field`: present and at most 16 characters,
    /// else a permanent error naming the source, the field and the person.
    fn employee_id(&self, id: &str, person: &Value) -> Result<String, HrError> {
        let field = self.employee_id_field.name();
        let value = match &self.employee_id_field {
            EmployeeIdField::PersonId => Some(id.to_owned()),
            EmployeeIdField::CustomAttribute(key) => {
                custom_attribute(person, key).map_err(|problem| {
                    HrError::permanent(format!(
                        "source {}: Personio person {id}: {field} (employee_id_field) {problem}",
                        self.source
                    ))
                })?
            }
        };
        let Some(value) = value else {
            return Err(HrError::permanent(format!(
                "source {}: Personio person {id} has no {field} (employee_id_field): fill it in Personio, give the API credential read access to that custom attribute, or choose another employee_id_field",
                self.source
            )));
        };
        let length = value.chars().count();
        if length > EMPLOYEE_ID_MAX_CHARS {
            return Err(HrError::permanent(format!(
                "source {}: Personio person {id}: {field} (employee_id_field) has {length} characters; the directory's employeeId holds at most {EMPLOYEE_ID_MAX_CHARS}: shorten it in Personio or choose another employee_id_field",
                self.source
            )));
        }
        Ok(value)
    }

    /// The current employment (or the most recent one), following the cursor pages.
    async fn current_employment(&self, id: &str) -> Result<Employments, HrError> {
        let segment = id_segment(&self.source, "Personio", id)?;
        let what = format!(
            "source {}: list the employments of Personio person {id}",
            self.source
        );
        let mut path = format!("/v2/persons/{segment}/employments?limit={PAGE_SIZE}");
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

    /// The names of the employment's department and team, each looked up by its type and id.
    async fn org_units(&self, person: &str, employment: &Value) -> Result<OrgUnits, HrError> {
        let mut units = OrgUnits::default();
        let Some(listed) = employment.get("org_units").and_then(Value::as_array) else {
            return Ok(units);
        };
        for (index, unit) in listed.iter().enumerate() {
            let kind = match unit
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
            {
                Some(kind) if kind == DEPARTMENT => DEPARTMENT,
                Some(kind) if kind == TEAM => TEAM,
                other => {
                    tracing::debug!(source = %self.source, kind = ?other, "Personio org unit type not mapped");
                    continue;
                }
            };
            let id = unit
                .get("id")
                .and_then(text)
                .filter(|id| id.parse::<i64>().is_ok())
                .ok_or_else(|| {
                    HrError::permanent(format!(
                        "source {}: Personio person {person}: the employment's org_units[{index}].id ({kind}) is not an org unit id (Personio documents an int64)",
                        self.source
                    ))
                })?;
            let name = self.org_unit_name(kind, &id).await?;
            match kind {
                DEPARTMENT => units.department = Some(name),
                _ => units.team = Some(name),
            }
        }
        Ok(units)
    }

    /// An org unit's name: cached, else `GET /v2/org-units/{id}?type=<type>`.
    async fn org_unit_name(&self, kind: &'static str, id: &str) -> Result<String, HrError> {
        if let Some(name) = self.org_units.get(kind, id, self.org_unit_ttl) {
            return Ok(name);
        }
        let what = format!("source {}: look up Personio {kind} {id}", self.source);
        let response = self
            .api
            .send(
                Method::GET,
                &format!("/v2/org-units/{}?type={kind}", encode(id)),
                None,
                &what,
            )
            .await?;
        if response.status == StatusCode::NOT_FOUND {
            return Err(HrError::permanent(format!(
                "{what}: Personio has no {kind} with that id (the employment names it): check the employment's org units in Personio"
            ))
            .with_status(404));
        }
        if !response.is_success() {
            return Err(response.unexpected(&what));
        }
        let unit = unwrap_data(response.json::<Value>(&what)?);
        let name = unit.get("name").and_then(text).ok_or_else(|| {
            HrError::permanent(format!(
                "{what}: the org unit has no name (check that the API credential may read org units)"
            ))
        })?;
        self.org_units.put(kind, id, &name, self.org_unit_ttl);
        Ok(name)
    }

    fn worker(
        &self,
        id: &str,
        person: &Value,
        employment: Option<&Value>,
        units: OrgUnits,
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
                "source {}: Personio person {id}: {name} is not a date (YYYY-MM-DD or an RFC 3339 date-time)",
                self.source
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
                worker.department = units.department;
                if let Some(team) = units.team {
                    worker.custom.insert(TEAM.into(), team);
                }
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
        // The person id (the worker key), not the directory employee id: they differ when
        // employee_id_field names a custom attribute.
        let id = worker.key.employee_id();
        let segment = id_segment(&self.source, "Personio", id)?;
        let what = format!(
            "source {}: write the work email to Personio person {id}",
            self.source
        );
        let body = Body::Json(json!({ "email": identifiers.mail }));
        let response = self
            .api
            .send(
                Method::PATCH,
                &format!("/v2/persons/{segment}"),
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

/// The names of an employment's org units hrsync maps.
#[derive(Debug, Default)]
struct OrgUnits {
    department: Option<String>,
    team: Option<String>,
}

/// The value of the person's custom attribute whose `id` or `global_id` is `key`: `Ok(None)`
/// when the person has no such attribute or it is empty; `Err` says why a value cannot be an
/// id (without quoting it).
fn custom_attribute(person: &Value, key: &str) -> Result<Option<String>, String> {
    let Some(attribute) = person
        .get("custom_attributes")
        .and_then(Value::as_array)
        .and_then(|attributes| {
            attributes.iter().find(|a| {
                a.get("id").and_then(text).as_deref() == Some(key)
                    || a.get("global_id").and_then(text).as_deref() == Some(key)
            })
        })
    else {
        return Ok(None);
    };
    match attribute.get("value") {
        None | Some(Value::Null) => Ok(None),
        Some(value @ (Value::String(_) | Value::Number(_))) => Ok(text(value)),
        Some(_) => Err("is a list or an object, not one value".into()),
    }
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
    /// `GET /v2/persons?limit=1`: one page of one person (the answer is not kept).
    fn check(&self, now: Timestamp) -> Option<BoxFuture<'_, Result<String, HrError>>> {
        let _ = now;
        let what = format!("source {}: list Personio persons", self.source);
        Some(Box::pin(async move {
            self.api
                .probe(Method::GET, "/v2/persons?limit=1", None, what)
                .await
        }))
    }

    fn source(&self) -> &str {
        &self.source
    }

    fn verify(&self, delivery: &Delivery<'_>) -> Result<(), Unauthorized> {
        let Some(value) = delivery.headers.get(TOKEN_HEADER) else {
            return Err(Unauthorized(format!("missing the {TOKEN_HEADER} header")));
        };
        if crate::connector::same_secret(value.as_bytes(), self.token.bytes()?) {
            Ok(())
        } else {
            Err(Unauthorized(format!(
                "the {TOKEN_HEADER} header does not match this source's webhook token (Personio sends the token verbatim)"
            )))
        }
    }

    fn parse(&self, delivery: &Delivery<'_>) -> Result<Parsed, BadPayload> {
        let body = crate::connector::read_json(delivery.body)?;
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
        let person_id = payload
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
        let person_id = crate::connector::checked_id("the payload's person id", person_id)?;
        Ok(Parsed::one(
            delivery,
            person_id,
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

    #[test]
    fn a_custom_attribute_is_found_by_id_or_global_id() {
        let person = json!({"custom_attributes": [
            {"id": "dynamic_87231", "global_id": "employee_number", "type": "STRING", "value": "E-1042"},
            {"id": "dynamic_87232", "global_id": "badges", "type": "STRING_LIST", "value": ["a", "b"]},
            {"id": "dynamic_87233", "global_id": "empty", "type": "STRING", "value": null},
        ]});
        assert_eq!(
            custom_attribute(&person, "dynamic_87231"),
            Ok(Some("E-1042".into()))
        );
        assert_eq!(
            custom_attribute(&person, "employee_number"),
            Ok(Some("E-1042".into()))
        );
        assert_eq!(custom_attribute(&person, "empty"), Ok(None));
        assert_eq!(custom_attribute(&person, "unknown"), Ok(None));
        assert!(custom_attribute(&person, "badges").is_err());
    }
}
