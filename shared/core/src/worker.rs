//! The normalized HR snapshot of one worker, whatever system it came from.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use serde::{Deserialize, Serialize};

/// `source:employee_id`: stable across rehires, unique across sources.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkerKey {
    source: String,
    employee_id: String,
}

impl WorkerKey {
    pub fn new(source: impl Into<String>, employee_id: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            employee_id: employee_id.into(),
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn employee_id(&self) -> &str {
        &self.employee_id
    }
}

impl fmt::Display for WorkerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source, self.employee_id)
    }
}

impl TryFrom<String> for WorkerKey {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value
            .parse()
            .map_err(|()| format!("worker key {value:?} is not of the form source:employee_id"))
    }
}

impl std::str::FromStr for WorkerKey {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.split_once(':') {
            Some((source, id)) if !source.is_empty() && !id.is_empty() => Ok(Self::new(source, id)),
            _ => Err(()),
        }
    }
}

impl From<WorkerKey> for String {
    fn from(key: WorkerKey) -> Self {
        key.to_string()
    }
}

/// Employment status as HR reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    /// Not working and not expected back (several HR systems say "Inactive" for a leaver).
    Inactive,
    Terminated,
    /// On leave (parental, sabbatical...): still employed.
    Leave,
}

impl Status {
    /// Accepts Active / Inactive / Terminated / Leave in any case.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "active" => Some(Self::Active),
            "inactive" => Some(Self::Inactive),
            "terminated" => Some(Self::Terminated),
            "leave" => Some(Self::Leave),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Terminated => "terminated",
            Self::Leave => "leave",
        }
    }

    /// HR says the employment has ended (the date may still lie ahead).
    pub fn is_ended(self) -> bool {
        matches!(self, Self::Inactive | Self::Terminated)
    }
}

/// One worker as HR describes them at `as_of`. Field names are the template variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Worker {
    pub key: WorkerKey,
    pub employee_id: String,
    pub given_name: String,
    pub family_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personal_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_email: Option<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hire_date: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_date: Option<Date>,
    /// Local time of the cut-off on the last day; overrides `lifecycle.leave_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub division: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_center: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// IANA time zone name, e.g. `Europe/London`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Employee id of the manager, in the same source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_id: Option<String>,
    /// When HR said this; a snapshot older than the stored one is ignored.
    pub as_of: Timestamp,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, String>,
}

/// A worker record that cannot be acted on, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidWorker {
    pub field: &'static str,
    pub problem: String,
}

impl InvalidWorker {
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

impl Worker {
    /// A minimal active worker; sources and tests fill in the rest.
    pub fn new(
        key: WorkerKey,
        given_name: impl Into<String>,
        family_name: impl Into<String>,
        as_of: Timestamp,
    ) -> Self {
        Self {
            employee_id: key.employee_id().to_owned(),
            key,
            given_name: given_name.into(),
            family_name: family_name.into(),
            middle_name: None,
            preferred_name: None,
            personal_email: None,
            work_email: None,
            status: Status::Active,
            hire_date: None,
            termination_date: None,
            termination_time: None,
            termination_type: None,
            worker_type: None,
            job_title: None,
            department: None,
            division: None,
            cost_center: None,
            company: None,
            location: None,
            country: None,
            time_zone: None,
            manager_id: None,
            as_of,
            custom: BTreeMap::new(),
        }
    }

    /// Checks what the decision needs; the error names the first bad field.
    pub fn validate(&self) -> Result<(), InvalidWorker> {
        if self.employee_id.trim().is_empty() {
            return Err(InvalidWorker::new("employee_id", "is empty"));
        }
        if self.employee_id != self.key.employee_id() {
            return Err(InvalidWorker::new(
                "employee_id",
                format!(
                    "{:?} does not match the worker key {}",
                    self.employee_id, self.key
                ),
            ));
        }
        if self.given_name.trim().is_empty() {
            return Err(InvalidWorker::new("given_name", "is empty"));
        }
        if self.family_name.trim().is_empty() {
            return Err(InvalidWorker::new("family_name", "is empty"));
        }
        if self.hire_date.is_none() && !self.status.is_ended() {
            return Err(InvalidWorker::new(
                "hire_date",
                format!(
                    "is missing for a worker with status {}",
                    self.status.as_str()
                ),
            ));
        }
        if let Some(zone) = &self.time_zone
            && jiff::tz::TimeZone::get(zone).is_err()
        {
            return Err(InvalidWorker::new(
                "time_zone",
                format!("{zone:?} is not an IANA time zone name (e.g. Europe/London)"),
            ));
        }
        if let Some(manager) = &self.manager_id
            && manager == &self.employee_id
        {
            return Err(InvalidWorker::new(
                "manager_id",
                "a worker cannot be their own manager",
            ));
        }
        Ok(())
    }

    /// The termination that belongs to the current employment: a termination dated before
    /// the (re)hire date is history from an earlier employment and is ignored.
    pub fn current_termination_date(&self) -> Option<Date> {
        let termination = self.termination_date?;
        match self.hire_date {
            Some(hire) if termination < hire => None,
            _ => Some(termination),
        }
    }

    /// The manager's key in the same source.
    pub fn manager_key(&self) -> Option<WorkerKey> {
        self.manager_id
            .as_deref()
            .filter(|id| !id.trim().is_empty())
            .map(|id| WorkerKey::new(self.key.source(), id))
    }
}
