//! What the directory should hold for a worker (desired) and what it holds (applied).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::worker::WorkerKey;

/// Whether the account should exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Create the account if it is missing.
    Present,
    /// Converge the account if it exists, never create one (leavers, workers outside the window).
    IfExists,
    /// Delete the account if it exists (only when `delete_after_days` is configured).
    Deleted,
}

/// The generated, unique identifiers of an account; stable once chosen (kept on rehire).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identifiers {
    pub upn: String,
    pub mail: String,
}

impl Identifiers {
    /// The mail nickname Entra requires: the UPN's local part.
    pub fn mail_nickname(&self) -> &str {
        self.upn.split('@').next().unwrap_or(&self.upn)
    }
}

/// The account the directory should hold for a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredIdentity {
    pub presence: Presence,
    /// Absent only for accounts that are never created by this decision (e.g. a leaver
    /// first seen after leaving).
    pub identifiers: Option<Identifiers>,
    pub enabled: bool,
    /// Graph property -> value; `None` means the value must be cleared.
    pub attributes: BTreeMap<String, Option<String>>,
    pub groups: BTreeSet<String>,
    pub licenses: BTreeSet<String>,
    pub manager: Option<WorkerKey>,
}

/// A licence the directory could not assign for now (no free units of the SKU): the rest of the
/// worker's account is converged, and this is tried again from `retry_at` (a timer), or sooner by
/// the worker's next directory run once units are free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLicense {
    pub sku: String,
    /// Graph's reason, e.g. "Subscription with SKU ... does not have any available licenses."
    pub reason: String,
    pub since: jiff::Timestamp,
    /// Times it was found without a free unit.
    pub attempts: u32,
    pub retry_at: jiff::Timestamp,
}

/// The account as the directory holds it, as far as hrsync manages it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedIdentity {
    /// The directory's object id, once known.
    pub object_id: Option<String>,
    pub upn: String,
    pub mail: Option<String>,
    pub enabled: bool,
    pub attributes: BTreeMap<String, String>,
    pub groups: BTreeSet<String>,
    pub licenses: BTreeSet<String>,
    pub manager: Option<WorkerKey>,
}
