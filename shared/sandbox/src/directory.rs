//! The directory in memory: users, groups and SKUs with the indexes every request reads through
//! (id, userPrincipalName, address claims, employeeId, mail, proxy addresses, memberships,
//! licence consumption), and the journal of changed rows the store writes after each request.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::schema::proxy_claim;

/// A user: its Graph properties (`id`, `userPrincipalName`, ..., `deletedDateTime` once
/// soft-deleted), its manager reference and its licences.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct User {
    /// Creation order; the paging key of user collections.
    #[serde(skip)]
    pub(crate) seq: u64,
    pub(crate) props: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) manager_id: Option<String>,
    /// Licences assigned to the user directly (`assignLicense`).
    #[serde(default)]
    pub(crate) licenses: Vec<DirectLicense>,
    /// Licences the user inherits from licensing groups it is a member of, with their state.
    #[serde(default)]
    pub(crate) group_licenses: Vec<GroupLicense>,
    /// Replication lag: invisible to reads and references until then. Not persisted (a restart
    /// is long enough for any replica).
    #[serde(skip)]
    pub(crate) visible_at: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DirectLicense {
    pub(crate) sku_id: String,
    #[serde(default)]
    pub(crate) disabled_plans: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GroupLicense {
    pub(crate) group_id: String,
    pub(crate) sku_id: String,
    /// `true`: state `Active`; `false`: state `Error`, error `CountViolation` (no free unit when
    /// the membership was evaluated).
    pub(crate) active: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) id: String,
    pub(crate) display_name: String,
    /// skuIds the group assigns to its members (group-based licensing).
    pub(crate) licenses: Vec<String>,
    /// Membership order -> user seq.
    members: BTreeMap<u64, u64>,
    /// User seq -> membership order.
    positions: HashMap<u64, u64>,
    next_position: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Sku {
    pub(crate) id: String,
    pub(crate) part_number: String,
    pub(crate) units: u32,
}

/// The properties equality filters are answered from an index for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Indexed {
    Id,
    UserPrincipalName,
    Mail,
    EmployeeId,
    /// One entry per proxy address, prefix included (`smtp:a@b`).
    ProxyAddress,
}

/// A row the store must write (or delete) before the request is answered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Change {
    User(u64),
    UserPurged(String),
    Group(String),
    Member {
        group: String,
        user: String,
        position: u64,
    },
    MemberRemoved {
        group: String,
        user: String,
    },
    Sku(String),
}

/// Which users a collection lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Live,
    Deleted,
}

#[derive(Debug, Default)]
pub(crate) struct Directory {
    /// Signs the access tokens the sandbox issues, so they stay valid across a restart.
    pub(crate) token_key: String,
    next_seq: u64,
    users: BTreeMap<u64, User>,
    by_id: HashMap<String, u64>,
    live: BTreeSet<u64>,
    deleted: BTreeSet<u64>,
    index: HashMap<Indexed, HashMap<String, BTreeSet<u64>>>,
    /// The directory-wide address namespace (UPN, mail, SMTP proxy addresses) of live users.
    claims: HashMap<String, u64>,
    /// Manager id (lowercase) -> the users it manages.
    reports: HashMap<String, BTreeSet<u64>>,
    groups: BTreeMap<String, Group>,
    member_of: HashMap<u64, BTreeSet<String>>,
    skus: BTreeMap<String, Sku>,
    /// Units of each SKU consumed by live users (direct or active group licences).
    consumed: HashMap<String, u32>,
    journal: Vec<Change>,
}

/// A user's entries in the indexes ([`Directory::entries`]).
struct Entries {
    values: Vec<(Indexed, String)>,
    deleted: bool,
    claims: Vec<String>,
    manager: Option<String>,
    held: BTreeSet<String>,
}

fn key(id: &str) -> String {
    id.to_ascii_lowercase()
}

impl User {
    pub(crate) fn new(props: Map<String, Value>) -> Self {
        Self {
            seq: 0,
            props,
            manager_id: None,
            licenses: Vec::new(),
            group_licenses: Vec::new(),
            visible_at: None,
        }
    }

    pub(crate) fn str_prop(&self, name: &str) -> Option<&str> {
        self.props.get(name).and_then(Value::as_str)
    }

    pub(crate) fn id(&self) -> &str {
        self.str_prop("id").unwrap_or_default()
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.props
            .get("deletedDateTime")
            .is_some_and(|v| !v.is_null())
    }

    pub(crate) fn is_lagging(&self, now: Instant) -> bool {
        self.visible_at.is_some_and(|at| now < at)
    }

    /// Live and replicated: what reads, `$filter` and references see.
    pub(crate) fn is_visible(&self, now: Instant) -> bool {
        !self.is_deleted() && !self.is_lagging(now)
    }

    /// The UPN the user has when live: a soft-deleted user's stored UPN carries Entra's
    /// object-id prefix, which this strips.
    pub(crate) fn original_upn(&self) -> Option<String> {
        let upn = self.str_prop("userPrincipalName")?;
        if !self.is_deleted() {
            return Some(upn.to_owned());
        }
        let prefix = self.id().replace('-', "");
        Some(match upn.get(..prefix.len()) {
            Some(head) if !prefix.is_empty() && head.eq_ignore_ascii_case(&prefix) => {
                upn[prefix.len()..].to_owned()
            }
            _ => upn.to_owned(),
        })
    }

    /// The addresses this user holds in the directory-wide namespace shared by
    /// `userPrincipalName`, `mail` and `proxyAddresses` (lowercase, `smtp:` stripped).
    pub(crate) fn claims(&self) -> Vec<String> {
        let mut claims = Vec::new();
        if let Some(upn) = self.original_upn() {
            claims.push(upn.to_lowercase());
        }
        if let Some(mail) = self.str_prop("mail") {
            claims.push(mail.to_lowercase());
        }
        if let Some(proxies) = self.props.get("proxyAddresses").and_then(Value::as_array) {
            claims.extend(proxies.iter().filter_map(Value::as_str).map(proxy_claim));
        }
        claims.sort();
        claims.dedup();
        claims
    }

    fn indexed_values(&self) -> Vec<(Indexed, String)> {
        let mut out = Vec::new();
        for (prop, name) in [
            (Indexed::Id, "id"),
            (Indexed::UserPrincipalName, "userPrincipalName"),
            (Indexed::Mail, "mail"),
            (Indexed::EmployeeId, "employeeId"),
        ] {
            if let Some(v) = self.str_prop(name) {
                out.push((prop, v.to_lowercase()));
            }
        }
        if let Some(proxies) = self.props.get("proxyAddresses").and_then(Value::as_array) {
            for p in proxies.iter().filter_map(Value::as_str) {
                out.push((Indexed::ProxyAddress, p.to_lowercase()));
            }
        }
        out
    }

    /// The SKUs the user holds (and, when live, consumes a unit of): direct licences and active
    /// group licences.
    pub(crate) fn held_skus(&self) -> BTreeSet<String> {
        self.licenses
            .iter()
            .map(|l| l.sku_id.clone())
            .chain(
                self.group_licenses
                    .iter()
                    .filter(|g| g.active)
                    .map(|g| g.sku_id.clone()),
            )
            .collect()
    }

    /// `assignedLicenses`: what the user holds, direct assignments with their disabled plans.
    pub(crate) fn assigned_licenses(&self) -> Value {
        let mut out: Vec<Value> = self
            .licenses
            .iter()
            .map(|l| json!({"disabledPlans": l.disabled_plans, "skuId": l.sku_id}))
            .collect();
        for sku in self.held_skus() {
            if !self.licenses.iter().any(|l| l.sku_id == sku) {
                out.push(json!({"disabledPlans": [], "skuId": sku}));
            }
        }
        Value::Array(out)
    }

    /// `licenseAssignmentStates`: one entry per direct licence and per group licence.
    pub(crate) fn license_assignment_states(&self) -> Value {
        let mut out: Vec<Value> = self
            .licenses
            .iter()
            .map(|l| {
                json!({"assignedByGroup": null, "disabledPlans": l.disabled_plans, "error": "None",
                       "lastUpdatedDateTime": null, "skuId": l.sku_id, "state": "Active"})
            })
            .collect();
        out.extend(self.group_licenses.iter().map(|g| {
            json!({"assignedByGroup": g.group_id, "disabledPlans": [],
                   "error": if g.active { "None" } else { "CountViolation" },
                   "lastUpdatedDateTime": null, "skuId": g.sku_id,
                   "state": if g.active { "Active" } else { "Error" }})
        }));
        Value::Array(out)
    }
}

impl Group {
    pub(crate) fn new(id: &str, display_name: &str, licenses: Vec<String>) -> Self {
        Self {
            id: id.to_owned(),
            display_name: display_name.to_owned(),
            licenses,
            members: BTreeMap::new(),
            positions: HashMap::new(),
            next_position: 0,
        }
    }

    pub(crate) fn has_member(&self, seq: u64) -> bool {
        self.positions.contains_key(&seq)
    }

    pub(crate) fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Members after membership position `after`, in the order they were added: (position, seq).
    pub(crate) fn members_after(
        &self,
        after: Option<u64>,
    ) -> impl Iterator<Item = (u64, u64)> + '_ {
        let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        self.members
            .range((start, std::ops::Bound::Unbounded))
            .map(|(p, s)| (*p, *s))
    }
}

impl Directory {
    pub(crate) fn new(token_key: String) -> Self {
        Self {
            token_key,
            ..Self::default()
        }
    }

    /// The changes since the last call, for the store.
    pub(crate) fn take_journal(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.journal)
    }

    // ------------------------------------------------------------------------------ loading

    /// Adds a user as loaded from the store (`seq` kept) or created (`seq` 0: the next one).
    pub(crate) fn insert_user(&mut self, mut user: User) -> u64 {
        if user.seq == 0 {
            self.next_seq += 1;
            user.seq = self.next_seq;
        } else {
            self.next_seq = self.next_seq.max(user.seq);
        }
        let seq = user.seq;
        self.by_id.insert(key(user.id()), seq);
        self.users.insert(seq, user);
        self.link(seq);
        self.journal.push(Change::User(seq));
        seq
    }

    /// Adds a membership as loaded from the store (no licence evaluation: states are stored).
    pub(crate) fn load_member(&mut self, group: &str, user_id: &str, position: u64) {
        let Some(seq) = self.by_id.get(&key(user_id)).copied() else {
            return;
        };
        if let Some(g) = self.groups.get_mut(&key(group)) {
            g.members.insert(position, seq);
            g.positions.insert(seq, position);
            g.next_position = g.next_position.max(position + 1);
            self.member_of.entry(seq).or_default().insert(key(group));
        }
    }

    /// Creates or updates a group (seeds and the store); members' group licences follow its
    /// licence list.
    pub(crate) fn upsert_group(&mut self, id: &str, display_name: &str, licenses: Vec<String>) {
        let k = key(id);
        let licenses: Vec<String> = licenses.iter().map(|l| key(l)).collect();
        let changed_licenses = match self.groups.get_mut(&k) {
            Some(g) => {
                let changed = g.licenses != licenses;
                display_name.clone_into(&mut g.display_name);
                g.licenses.clone_from(&licenses);
                changed
            }
            None => {
                self.groups
                    .insert(k.clone(), Group::new(id, display_name, licenses.clone()));
                false
            }
        };
        self.journal.push(Change::Group(k.clone()));
        if changed_licenses {
            let members: Vec<u64> = self.groups[&k].members.values().copied().collect();
            for seq in members {
                self.with_user(seq, |dir, user| dir.evaluate_group_licenses(user, &k));
            }
        }
    }

    pub(crate) fn upsert_sku(&mut self, id: &str, part_number: &str, units: u32) {
        let k = key(id);
        self.skus.insert(
            k.clone(),
            Sku {
                id: k.clone(),
                part_number: part_number.to_owned(),
                units,
            },
        );
        self.journal.push(Change::Sku(k));
    }

    // ------------------------------------------------------------------------------ indexes

    /// What a user puts in the indexes: its indexed values, its address claims and units held
    /// (none while soft-deleted), its manager.
    fn entries(&self, seq: u64) -> Option<Entries> {
        let user = self.users.get(&seq)?;
        let deleted = user.is_deleted();
        Some(Entries {
            values: user.indexed_values(),
            deleted,
            claims: if deleted { Vec::new() } else { user.claims() },
            manager: user.manager_id.as_deref().map(key),
            held: if deleted {
                BTreeSet::new()
            } else {
                user.held_skus()
            },
        })
    }

    /// Adds a user's entries to every index and its units to the consumption counters.
    fn link(&mut self, seq: u64) {
        let Some(Entries {
            values,
            deleted,
            claims,
            manager,
            held,
        }) = self.entries(seq)
        else {
            return;
        };
        for (prop, value) in values {
            self.index
                .entry(prop)
                .or_default()
                .entry(value)
                .or_default()
                .insert(seq);
        }
        if deleted {
            self.deleted.insert(seq);
        } else {
            self.live.insert(seq);
        }
        for claim in claims {
            self.claims.entry(claim).or_insert(seq);
        }
        if let Some(manager) = manager {
            self.reports.entry(manager).or_default().insert(seq);
        }
        for sku in held {
            *self.consumed.entry(sku).or_default() += 1;
        }
    }

    /// The inverse of [`Self::link`].
    fn unlink(&mut self, seq: u64) {
        let Some(Entries {
            values,
            claims,
            manager,
            held,
            ..
        }) = self.entries(seq)
        else {
            return;
        };
        for (prop, value) in values {
            if let Some(map) = self.index.get_mut(&prop)
                && let Some(set) = map.get_mut(&value)
            {
                set.remove(&seq);
                if set.is_empty() {
                    map.remove(&value);
                }
            }
        }
        self.live.remove(&seq);
        self.deleted.remove(&seq);
        for claim in claims {
            if self.claims.get(&claim) == Some(&seq) {
                self.claims.remove(&claim);
            }
        }
        if let Some(manager) = manager
            && let Some(set) = self.reports.get_mut(&manager)
        {
            set.remove(&seq);
            if set.is_empty() {
                self.reports.remove(&manager);
            }
        }
        for sku in held {
            if let Some(n) = self.consumed.get_mut(&sku) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Changes one user with its index entries kept true, and journals it. `f` sees the
    /// directory without this user's entries (its units are not counted as consumed).
    pub(crate) fn with_user<R>(
        &mut self,
        seq: u64,
        f: impl FnOnce(&Self, &mut User) -> R,
    ) -> Option<R> {
        self.unlink(seq);
        let mut user = self.users.remove(&seq)?;
        let result = f(self, &mut user);
        self.users.insert(seq, user);
        self.link(seq);
        self.journal.push(Change::User(seq));
        Some(result)
    }

    /// Removes a soft-deleted user for good, with its memberships and the manager references
    /// naming it.
    pub(crate) fn purge_user(&mut self, seq: u64) {
        self.unlink(seq);
        let Some(user) = self.users.remove(&seq) else {
            return;
        };
        let id = user.id().to_owned();
        self.by_id.remove(&key(&id));
        for group in self.member_of.remove(&seq).unwrap_or_default() {
            if let Some(g) = self.groups.get_mut(&group)
                && let Some(position) = g.positions.remove(&seq)
            {
                g.members.remove(&position);
            }
            self.journal.push(Change::MemberRemoved {
                group,
                user: key(&id),
            });
        }
        let reports: Vec<u64> = self
            .reports
            .get(&key(&id))
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for report in reports {
            self.with_user(report, |_, u| u.manager_id = None);
        }
        self.journal.push(Change::UserPurged(key(&id)));
    }

    // ------------------------------------------------------------------------------ reads

    pub(crate) fn user(&self, seq: u64) -> Option<&User> {
        self.users.get(&seq)
    }

    pub(crate) fn seq_of(&self, id: &str) -> Option<u64> {
        self.by_id.get(&key(id)).copied()
    }

    /// A live (not soft-deleted) user by id or userPrincipalName, regardless of lag.
    pub(crate) fn live_user(&self, id_or_upn: &str) -> Option<u64> {
        if let Some(seq) = self.seq_of(id_or_upn).filter(|s| self.live.contains(s)) {
            return Some(seq);
        }
        self.index
            .get(&Indexed::UserPrincipalName)?
            .get(&id_or_upn.to_lowercase())?
            .iter()
            .copied()
            .find(|s| self.live.contains(s))
    }

    /// A soft-deleted user by id.
    pub(crate) fn deleted_user(&self, id: &str) -> Option<u64> {
        self.seq_of(id).filter(|s| self.deleted.contains(s))
    }

    pub(crate) fn scope(&self, scope: Scope) -> &BTreeSet<u64> {
        match scope {
            Scope::Live => &self.live,
            Scope::Deleted => &self.deleted,
        }
    }

    pub(crate) fn users_in_order(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// The users with any of these indexed values, in creation order.
    pub(crate) fn lookup(&self, keys: &[(Indexed, String)]) -> BTreeSet<u64> {
        let mut out = BTreeSet::new();
        for (prop, value) in keys {
            if let Some(set) = self.index.get(prop).and_then(|m| m.get(value)) {
                out.extend(set.iter().copied());
            }
        }
        out
    }

    /// The live user other than `except` holding any of these addresses, and which one.
    pub(crate) fn claimed<'a>(&self, claims: &'a [String], except: Option<u64>) -> Option<&'a str> {
        claims
            .iter()
            .find(|c| {
                self.claims
                    .get(c.as_str())
                    .is_some_and(|holder| Some(*holder) != except)
            })
            .map(String::as_str)
    }

    pub(crate) fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(&key(id))
    }

    pub(crate) fn groups_after(&self, after: Option<&str>) -> impl Iterator<Item = &Group> {
        let start = after.map_or(std::ops::Bound::Unbounded, |a| {
            std::ops::Bound::Excluded(key(a))
        });
        self.groups
            .range((start, std::ops::Bound::Unbounded))
            .map(|(_, g)| g)
    }

    /// The groups a user is a member of, by id order.
    pub(crate) fn groups_of(&self, seq: u64) -> Vec<&Group> {
        self.member_of
            .get(&seq)
            .into_iter()
            .flatten()
            .filter_map(|g| self.groups.get(g))
            .collect()
    }

    pub(crate) fn sku(&self, id: &str) -> Option<&Sku> {
        self.skus.get(&key(id))
    }

    pub(crate) fn skus(&self) -> impl Iterator<Item = &Sku> {
        self.skus.values()
    }

    pub(crate) fn consumed(&self, sku: &str) -> u32 {
        self.consumed.get(&key(sku)).copied().unwrap_or(0)
    }

    /// Whether a unit of `sku` is free for a user who does not hold it yet.
    pub(crate) fn unit_free(&self, sku: &str) -> bool {
        self.sku(sku).is_some_and(|s| self.consumed(sku) < s.units)
    }

    pub(crate) fn groups_with_members(&self) -> impl Iterator<Item = (&Group, Vec<(u64, &str)>)> {
        self.groups.values().map(|g| {
            let members = g
                .members
                .iter()
                .filter_map(|(p, s)| self.users.get(s).map(|u| (*p, u.id())))
                .collect();
            (g, members)
        })
    }

    // ------------------------------------------------------------------------------ memberships

    /// Adds a member; the group's licences are evaluated for it at once.
    pub(crate) fn add_member(&mut self, group: &str, seq: u64) {
        let k = key(group);
        let Some(g) = self.groups.get_mut(&k) else {
            return;
        };
        if g.positions.contains_key(&seq) {
            return;
        }
        let position = g.next_position;
        g.next_position += 1;
        g.members.insert(position, seq);
        g.positions.insert(seq, position);
        self.member_of.entry(seq).or_default().insert(k.clone());
        let user_id = self
            .users
            .get(&seq)
            .map(|u| key(u.id()))
            .unwrap_or_default();
        self.journal.push(Change::Member {
            group: k.clone(),
            user: user_id,
            position,
        });
        if !self.groups[&k].licenses.is_empty() {
            self.with_user(seq, |dir, user| dir.evaluate_group_licenses(user, &k));
        }
    }

    /// Removes a member; the licences it held through the group are released.
    pub(crate) fn remove_member(&mut self, group: &str, seq: u64) -> bool {
        let k = key(group);
        let Some(g) = self.groups.get_mut(&k) else {
            return false;
        };
        let Some(position) = g.positions.remove(&seq) else {
            return false;
        };
        g.members.remove(&position);
        if let Some(set) = self.member_of.get_mut(&seq) {
            set.remove(&k);
        }
        let user_id = self
            .users
            .get(&seq)
            .map(|u| key(u.id()))
            .unwrap_or_default();
        self.journal.push(Change::MemberRemoved {
            group: k.clone(),
            user: user_id,
        });
        let inherits = self
            .users
            .get(&seq)
            .is_some_and(|u| u.group_licenses.iter().any(|l| l.group_id == k));
        if inherits {
            self.with_user(seq, |_, user| {
                user.group_licenses.retain(|l| l.group_id != k)
            });
        }
        true
    }

    /// Brings a member's licences from `group` in line with the group's licence list: each SKU
    /// the user already holds, or that has a free unit, is `Active`; the others are `Error`
    /// (`CountViolation`). Called inside [`Self::with_user`], so the user's own units are free.
    fn evaluate_group_licenses(&self, user: &mut User, group: &str) {
        let Some(g) = self.groups.get(group) else {
            user.group_licenses.retain(|l| l.group_id != group);
            return;
        };
        let mut keep: Vec<GroupLicense> = user
            .group_licenses
            .iter()
            .filter(|l| l.group_id != group || g.licenses.contains(&l.sku_id))
            .cloned()
            .collect();
        for sku in &g.licenses {
            if keep.iter().any(|l| l.group_id == group && &l.sku_id == sku) {
                continue;
            }
            let held = user.licenses.iter().any(|l| &l.sku_id == sku)
                || keep.iter().any(|l| l.active && &l.sku_id == sku);
            keep.push(GroupLicense {
                group_id: group.to_owned(),
                sku_id: sku.clone(),
                active: held || self.unit_free(sku),
            });
        }
        user.group_licenses = keep;
    }
}
