//! The plan diff: the directory operations that turn what is applied into what is desired.
//! Applying a plan and planning again yields nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::identity::{AppliedIdentity, DesiredIdentity, Presence};
use crate::worker::WorkerKey;

/// One directory operation, in the order it must run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Create {
        upn: String,
        mail: String,
        mail_nickname: String,
        enabled: bool,
        attributes: BTreeMap<String, String>,
    },
    /// Disable the account and revoke its sign-in sessions.
    Disable,
    Update {
        set: BTreeMap<String, String>,
        clear: BTreeSet<String>,
    },
    SetManager {
        manager: WorkerKey,
    },
    RemoveManager,
    AddGroup {
        group: String,
    },
    RemoveGroup {
        group: String,
    },
    AssignLicense {
        sku: String,
    },
    RemoveLicense {
        sku: String,
    },
    Enable,
    Delete,
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create",
            Self::Disable => "disable",
            Self::Update { .. } => "update",
            Self::SetManager { .. } => "set_manager",
            Self::RemoveManager => "remove_manager",
            Self::AddGroup { .. } => "add_group",
            Self::RemoveGroup { .. } => "remove_group",
            Self::AssignLicense { .. } => "assign_license",
            Self::RemoveLicense { .. } => "remove_license",
            Self::Enable => "enable",
            Self::Delete => "delete",
        }
    }
}

/// The operations that converge `applied` to `desired`. A leaver is disabled before anything
/// else; a joiner's attributes (usageLocation) are set before licenses and it is enabled last.
pub fn plan(desired: Option<&DesiredIdentity>, applied: Option<&AppliedIdentity>) -> Vec<Op> {
    let Some(desired) = desired else {
        return Vec::new();
    };
    let mut ops = Vec::new();
    let empty = AppliedIdentity {
        object_id: None,
        upn: String::new(),
        mail: None,
        enabled: false,
        attributes: BTreeMap::new(),
        groups: BTreeSet::new(),
        licenses: BTreeSet::new(),
        manager: None,
    };
    let current = match (desired.presence, applied) {
        (Presence::Deleted, Some(_)) => return vec![Op::Delete],
        (Presence::Deleted, None) | (Presence::IfExists, None) => return Vec::new(),
        (Presence::Present, None) => {
            let Some(ids) = &desired.identifiers else {
                return Vec::new();
            };
            ops.push(Op::Create {
                upn: ids.upn.clone(),
                mail: ids.mail.clone(),
                mail_nickname: ids.mail_nickname().to_owned(),
                enabled: desired.enabled,
                attributes: desired
                    .attributes
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
                    .collect(),
            });
            &AppliedIdentity {
                enabled: desired.enabled,
                attributes: desired
                    .attributes
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
                    .collect(),
                ..empty
            }
        }
        (_, Some(applied)) => applied,
    };
    if current.enabled && !desired.enabled {
        ops.push(Op::Disable);
    }
    let mut set = BTreeMap::new();
    let mut clear = BTreeSet::new();
    for (name, value) in &desired.attributes {
        match (value, current.attributes.get(name)) {
            (Some(value), Some(old)) if value == old => {}
            (Some(value), _) => {
                set.insert(name.clone(), value.clone());
            }
            (None, Some(_)) => {
                clear.insert(name.clone());
            }
            (None, None) => {}
        }
    }
    if !set.is_empty() || !clear.is_empty() {
        ops.push(Op::Update { set, clear });
    }
    match (&desired.manager, &current.manager) {
        (Some(want), have) if have.as_ref() != Some(want) => ops.push(Op::SetManager {
            manager: want.clone(),
        }),
        (None, Some(_)) => ops.push(Op::RemoveManager),
        _ => {}
    }
    ops.extend(
        desired
            .groups
            .difference(&current.groups)
            .map(|g| Op::AddGroup { group: g.clone() }),
    );
    ops.extend(
        current
            .groups
            .difference(&desired.groups)
            .map(|g| Op::RemoveGroup { group: g.clone() }),
    );
    ops.extend(
        desired
            .licenses
            .difference(&current.licenses)
            .map(|s| Op::AssignLicense { sku: s.clone() }),
    );
    ops.extend(
        current
            .licenses
            .difference(&desired.licenses)
            .map(|s| Op::RemoveLicense { sku: s.clone() }),
    );
    if !current.enabled && desired.enabled {
        ops.push(Op::Enable);
    }
    ops
}

/// What the directory holds after `ops` succeed: the model the sandbox and tests use.
pub fn apply(applied: Option<AppliedIdentity>, ops: &[Op]) -> Option<AppliedIdentity> {
    let mut current = applied;
    for op in ops {
        match op {
            Op::Create {
                upn,
                mail,
                enabled,
                attributes,
                ..
            } => {
                current = Some(AppliedIdentity {
                    object_id: None,
                    upn: upn.clone(),
                    mail: Some(mail.clone()),
                    enabled: *enabled,
                    attributes: attributes.clone(),
                    groups: BTreeSet::new(),
                    licenses: BTreeSet::new(),
                    manager: None,
                });
            }
            Op::Delete => current = None,
            op => {
                let Some(account) = current.as_mut() else {
                    continue;
                };
                match op {
                    Op::Disable => account.enabled = false,
                    Op::Enable => account.enabled = true,
                    Op::Update { set, clear } => {
                        account
                            .attributes
                            .extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
                        account.attributes.retain(|k, _| !clear.contains(k));
                    }
                    Op::SetManager { manager } => account.manager = Some(manager.clone()),
                    Op::RemoveManager => account.manager = None,
                    Op::AddGroup { group } => {
                        account.groups.insert(group.clone());
                    }
                    Op::RemoveGroup { group } => {
                        account.groups.remove(group);
                    }
                    Op::AssignLicense { sku } => {
                        account.licenses.insert(sku.clone());
                    }
                    Op::RemoveLicense { sku } => {
                        account.licenses.remove(sku);
                    }
                    Op::Create { .. } | Op::Delete => {}
                }
            }
        }
    }
    current
}
