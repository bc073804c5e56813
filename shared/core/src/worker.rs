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

/// The most characters an employee id may have: Graph's `employeeId` holds at most 16
/// (learn.microsoft.com/graph/api/resources/user, employeeId; a longer one is refused 400).
pub const EMPLOYEE_ID_MAX_CHARS: usize = 16;

/// One worker as HR describes them at `as_of`. Field names are the template variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Worker {
    /// Who the worker is to hrsync: the source and the vendor's own record id (what its
    /// webhooks name, its API is read and written back by, and managers are given as).
    pub key: WorkerKey,
    /// The employee id the directory carries (`employeeId`): the key's id for exports and
    /// signed JSON, the source's `employee_id_field` for vendors.
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
    /// The manager's record id in the same source (their worker key's id, as the vendor names
    /// managers), not their directory employee id.
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

    /// Checks what the decision needs; the error names the first bad field. A worker with no
    /// hire date is employed from now on (SCIM records carry none); HR sources that always
    /// have one check [`Worker::validate_record`].
    pub fn validate(&self) -> Result<(), InvalidWorker> {
        if self.employee_id.trim().is_empty() {
            return Err(InvalidWorker::new("employee_id", "is empty"));
        }
        let length = self.employee_id.chars().count();
        if length > EMPLOYEE_ID_MAX_CHARS {
            return Err(InvalidWorker::new(
                "employee_id",
                format!(
                    "{:?} has {length} characters; the directory's employeeId holds at most {EMPLOYEE_ID_MAX_CHARS}",
                    self.employee_id
                ),
            ));
        }
        if self.key.employee_id().trim().is_empty() {
            return Err(InvalidWorker::new("key", "the worker key's id is empty"));
        }
        if self.given_name.trim().is_empty() {
            return Err(InvalidWorker::new("given_name", "is empty"));
        }
        if self.family_name.trim().is_empty() {
            return Err(InvalidWorker::new("family_name", "is empty"));
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
            && manager == self.key.employee_id()
        {
            return Err(InvalidWorker::new(
                "manager_id",
                "a worker cannot be their own manager",
            ));
        }
        Ok(())
    }

    /// [`Worker::validate`], and a hire date for a worker still employed: what every HR
    /// source that records hire dates (exports, vendors' APIs) must give. A missing one there
    /// is a gap in the data (or a field the credential may not read), not "started now".
    pub fn validate_record(&self) -> Result<(), InvalidWorker> {
        self.validate()?;
        if self.hire_date.is_none() && !self.status.is_ended() {
            return Err(InvalidWorker::new(
                "hire_date",
                format!(
                    "is missing for a worker with status {}",
                    self.status.as_str()
                ),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn worker() -> Worker {
        let mut worker = Worker::new(
            WorkerKey::new("bob", "3332883854254932743"),
            "Ada",
            "Lovelace",
            Timestamp::UNIX_EPOCH,
        );
        worker.employee_id = "1042".into();
        worker.hire_date = Some(jiff::civil::date(2026, 1, 5));
        worker
    }

    #[test]
    fn the_directory_employee_id_may_differ_from_the_record_id_but_must_fit() {
        assert_eq!(worker().validate(), Ok(()));
        let mut long = worker();
        long.employee_id = long.key.employee_id().to_owned();
        let error = long.validate().unwrap_err();
        assert_eq!(error.field, "employee_id");
        assert_eq!(
            error.problem,
            "\"3332883854254932743\" has 19 characters; the directory's employeeId holds at most 16"
        );
        let mut sixteen = worker();
        sixteen.employee_id = "é".repeat(16);
        assert_eq!(sixteen.validate(), Ok(()), "characters, not bytes");
    }

    #[test]
    fn a_manager_is_named_by_record_id() {
        let mut own = worker();
        own.manager_id = Some(own.key.employee_id().to_owned());
        assert_eq!(own.validate().unwrap_err().field, "manager_id");
        let mut other = worker();
        other.manager_id = Some("1042".into());
        assert_eq!(
            other.validate(),
            Ok(()),
            "1042 is a directory id, not a record id"
        );
    }

    #[test]
    fn only_a_record_from_hr_needs_a_hire_date() {
        let mut now = worker();
        now.hire_date = None;
        assert_eq!(now.validate(), Ok(()), "employed from now on");
        assert_eq!(now.validate_record().unwrap_err().field, "hire_date");
        now.status = Status::Terminated;
        assert_eq!(now.validate_record(), Ok(()));
    }
}
