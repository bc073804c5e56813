//! The directory read once for a run that converges many workers (an import, a first load): every
//! user and every soft-deleted user in a few paged requests (999 a page), answering the same
//! questions as a per-worker preflight (which account carries this employee id, which names are
//! taken) without a request per worker.
//!
//! It is a picture of one instant. What hrsync creates afterwards is guarded by the store's name
//! reservations, and an account someone else creates meanwhile by Graph's own uniqueness (the
//! create is refused and the worker takes the next name), as with a preflight.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::graph::users::{deleted_user_holds, the_one};
use crate::graph::{DirectoryUser, GraphClient, GraphError, Preflight};

#[derive(Debug, Default)]
pub struct DirectorySnapshot {
    users: Vec<DirectoryUser>,
    /// Lowercase employee id -> indexes into `users`.
    by_employee_id: HashMap<String, Vec<usize>>,
    /// Every address a live user holds (UPN, mail, SMTP proxies), lowercase.
    live_names: HashSet<String>,
    /// Soft-deleted users, as the deleted-items collection lists them.
    deleted: Vec<Value>,
    /// Every address a soft-deleted user may hold, lowercase: its mail and SMTP proxies, and its
    /// UPN both as listed (prefixed with the object id) and without the prefix.
    deleted_names: HashSet<String>,
}

impl DirectorySnapshot {
    /// Reads every user and every soft-deleted user ([`GraphClient::read_directory`]).
    pub async fn read(graph: &GraphClient) -> Result<Self, GraphError> {
        let (users, deleted) = graph.read_directory().await?;
        Ok(Self::new(users, deleted))
    }

    pub fn new(users: Vec<DirectoryUser>, deleted: Vec<Value>) -> Self {
        let mut by_employee_id: HashMap<String, Vec<usize>> = HashMap::new();
        let mut live_names = HashSet::new();
        for (index, user) in users.iter().enumerate() {
            if let Some(id) = &user.employee_id {
                by_employee_id
                    .entry(id.to_lowercase())
                    .or_default()
                    .push(index);
            }
            live_names.insert(user.user_principal_name.to_lowercase());
            live_names.extend(user.mail.as_deref().map(str::to_lowercase));
            live_names.extend(smtp_addresses(
                user.proxy_addresses.iter().map(String::as_str),
            ));
        }
        let mut deleted_names = HashSet::new();
        for user in &deleted {
            let field = |key: &str| user.get(key).and_then(Value::as_str);
            if let Some(upn) = field("userPrincipalName") {
                let upn = upn.to_lowercase();
                // `{object id without hyphens}{upn}`: the name without Entra's prefix.
                let unprefixed = upn.get(32..).filter(|_| {
                    upn.get(..32)
                        .is_some_and(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
                });
                deleted_names.extend(unprefixed.map(str::to_owned));
                deleted_names.insert(upn);
            }
            deleted_names.extend(field("mail").map(str::to_lowercase));
            let proxies = user.get("proxyAddresses").and_then(Value::as_array);
            deleted_names.extend(smtp_addresses(
                proxies.into_iter().flatten().filter_map(Value::as_str),
            ));
        }
        Self {
            users,
            by_employee_id,
            live_names,
            deleted,
            deleted_names,
        }
    }

    /// Users read (live ones).
    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// What a [`GraphClient::preflight`] would answer for this worker and these names.
    pub fn preflight(&self, employee_id: &str, names: &[&str]) -> Result<Preflight, GraphError> {
        let carrying = self
            .by_employee_id
            .get(&employee_id.to_lowercase())
            .into_iter()
            .flatten()
            .map(|&index| self.users[index].clone())
            .collect();
        let taken = names
            .iter()
            .filter(|name| {
                let lower = name.to_lowercase();
                self.live_names.contains(&lower)
                    || (self.deleted_names.contains(&lower)
                        && self.deleted.iter().any(|u| deleted_user_holds(u, name)))
            })
            .map(|name| (*name).to_owned())
            .collect();
        Ok(Preflight {
            existing: the_one(carrying)?,
            taken,
        })
    }
}

/// The addresses of `smtp:` / `SMTP:` proxy entries, lowercase.
fn smtp_addresses<'a>(proxies: impl Iterator<Item = &'a str>) -> impl Iterator<Item = String> {
    proxies.filter_map(|p| {
        let lower = p.to_lowercase();
        lower.strip_prefix("smtp:").map(str::to_owned)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user(id: &str, upn: &str, employee_id: Option<&str>, proxies: &[&str]) -> DirectoryUser {
        DirectoryUser::from_json(&json!({
            "id": id, "userPrincipalName": upn, "employeeId": employee_id,
            "proxyAddresses": proxies, "accountEnabled": true,
        }))
        .expect("user")
    }

    #[test]
    fn answers_as_a_preflight_would() {
        let snapshot = DirectorySnapshot::new(
            vec![
                user(
                    "1",
                    "ada@acme.example",
                    Some("E1"),
                    &["SMTP:ada@acme.example", "smtp:a.l@acme.example"],
                ),
                user("2", "bob@acme.example", None, &[]),
                user("3", "twin1@acme.example", Some("E9"), &[]),
                user("4", "twin2@acme.example", Some("e9"), &[]),
            ],
            vec![json!({"id": "0f6a6f2e-1111-2222-3333-444455556666",
                "userPrincipalName": "0f6a6f2e111122223333444455556666gone@acme.example"})],
        );
        let found = snapshot
            .preflight(
                "e1",
                &["A.L@acme.example", "free@acme.example", "gone@acme.example"],
            )
            .expect("preflight");
        assert_eq!(found.existing.map(|u| u.id), Some("1".to_owned()));
        assert_eq!(found.taken, vec!["A.L@acme.example", "gone@acme.example"]);
        let nobody = snapshot
            .preflight("E2", &["bob@acme.example"])
            .expect("preflight");
        assert_eq!(nobody.existing, None);
        assert_eq!(nobody.taken, vec!["bob@acme.example"]);
        assert!(matches!(
            snapshot.preflight("E9", &[]),
            Err(GraphError::AmbiguousEmployeeId { matches: 2 })
        ));
    }
}
