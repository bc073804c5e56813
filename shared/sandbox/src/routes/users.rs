//! `/users`: list (with `$filter` through the indexes and `$skiptoken` paging), `$count`, get
//! by id or userPrincipalName, create, update, soft delete and `revokeSignInSessions`.

use std::ops::Bound;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::super::directory::{Scope, User};
use super::super::filter::Resource;
use super::super::schema::{
    DEFAULT_USER_PROPERTIES, Kind, NOT_NULLABLE, deleted_upn, graph_timestamp, password_is_complex,
    user_property, valid_mail_nickname, valid_upn_alias,
};
use super::{Ctx, Resp, Result, bad_request, conflict, invalid_value, lock, required};

/// Validates one property of a user write. `Ok(None)`: the property is cleared (`null`).
fn check_property(name: &str, value: &Value) -> Result<Option<Value>> {
    let kind = user_property(name).ok_or_else(|| {
        bad_request(
            "BadRequest",
            &format!(
                "Property '{name}' does not exist on type 'microsoft.graph.user'. Make sure to only use property names that are defined by the type or mark the type as open type."
            ),
        )
    })?;
    if kind == Kind::ReadOnly {
        return Err(bad_request(
            "Request_BadRequest",
            &format!("Property '{name}' is read-only and cannot be set."),
        ));
    }
    if value.is_null() {
        return match NOT_NULLABLE.contains(&name) {
            true => Err(invalid_value(name)),
            false => Ok(None),
        };
    }
    let ok = match kind {
        // The required strings cannot be empty (learn.microsoft.com/graph/api/user-post-users).
        Kind::Str(_) if REQUIRED_ON_CREATE.contains(&name) && value.as_str() == Some("") => false,
        Kind::Str(max) => value
            .as_str()
            .is_some_and(|s| max.is_none_or(|m| s.chars().count() <= m)),
        Kind::Bool => value.is_boolean(),
        Kind::DateTime => value
            .as_str()
            .is_some_and(|s| s.parse::<jiff::Timestamp>().is_ok()),
        Kind::UsageLocation => value
            .as_str()
            .is_some_and(|s| s.len() == 2 && s.chars().all(|c| c.is_ascii_alphabetic())),
        Kind::StrList(max) => value.as_array().is_some_and(|items| {
            items.iter().all(Value::is_string) && max.is_none_or(|m| items.len() <= m)
        }),
        Kind::Object(members) => value.as_object().is_some_and(|obj| {
            obj.iter()
                .all(|(k, v)| members.contains(&k.as_str()) && (v.is_string() || v.is_null()))
        }),
        Kind::Extension => match value {
            Value::String(_) | Value::Bool(_) | Value::Number(_) => true,
            Value::Array(items) => items.iter().all(Value::is_string),
            _ => false,
        },
        Kind::PasswordProfile | Kind::ReadOnly => false,
    };
    let ok = ok
        && match name {
            "userPrincipalName" => value.as_str().is_some_and(|upn| {
                matches!(upn.split_once('@'), Some((alias, domain))
                    if valid_upn_alias(alias) && !domain.is_empty() && !domain.contains('@'))
            }),
            "mailNickname" => value.as_str().is_some_and(valid_mail_nickname),
            "mail" => value.as_str().is_some_and(|mail| {
                mail.is_ascii()
                    && !mail.chars().any(char::is_whitespace)
                    && matches!(mail.split_once('@'), Some((a, d)) if !a.is_empty() && !d.is_empty() && !d.contains('@'))
            }),
            _ => true,
        };
    if !ok {
        return Err(invalid_value(name));
    }
    Ok(Some(match kind {
        Kind::UsageLocation => {
            Value::String(value.as_str().unwrap_or_default().to_ascii_uppercase())
        }
        Kind::Object(members) => {
            // Members left out are cleared, as Graph does for employeeOrgData.
            let given = value.as_object().cloned().unwrap_or_default();
            Value::Object(
                members
                    .iter()
                    .filter(|m| name == "employeeOrgData" || given.contains_key(**m))
                    .map(|m| {
                        (
                            (*m).to_owned(),
                            given.get(*m).cloned().unwrap_or(Value::Null),
                        )
                    })
                    .collect(),
            )
        }
        _ => value.clone(),
    }))
}

/// A `passwordProfile` must carry a non-empty `password` (and may carry the two booleans).
fn check_password_profile(value: &Value) -> Result<()> {
    let Some(profile) = value.as_object() else {
        return Err(invalid_value("passwordProfile"));
    };
    for (key, v) in profile {
        let ok = match key.as_str() {
            "password" => v.is_string() || v.is_null(),
            "forceChangePasswordNextSignIn" | "forceChangePasswordNextSignInWithMfa" => {
                v.is_boolean() || v.is_null()
            }
            _ => false,
        };
        if !ok {
            return Err(invalid_value("passwordProfile"));
        }
    }
    match profile.get("password").and_then(Value::as_str) {
        Some(p) if !p.is_empty() && !password_is_complex(p) => Err(bad_request(
            "Request_BadRequest",
            "The specified password does not comply with password complexity requirements. Please provide a different password.",
        )),
        Some(p) if !p.is_empty() => Ok(()),
        _ => Err(required("passwordProfile.password")),
    }
}

/// Makes `mail` the primary SMTP address: the old primary stays as an `smtp:` alias.
fn proxies_for_mail(current: &Map<String, Value>, mail: Option<&str>) -> Value {
    let mut proxies: Vec<String> = current
        .get("proxyAddresses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for p in &mut proxies {
        if let Some(rest) = p.strip_prefix("SMTP:") {
            *p = format!("smtp:{rest}");
        }
    }
    if let Some(mail) = mail {
        proxies.retain(|p| !p.eq_ignore_ascii_case(&format!("smtp:{mail}")));
        proxies.insert(0, format!("SMTP:{mail}"));
    }
    json!(proxies)
}

const REQUIRED_ON_CREATE: [&str; 4] = [
    "accountEnabled",
    "displayName",
    "mailNickname",
    "userPrincipalName",
];

/// A `$filter`ed, `$select`ed page of the users in `scope`, continuing after the `$skiptoken`.
/// Equality filters on indexed properties read only the matching users; other filters scan
/// from the page's start until the page is full.
pub(crate) fn list_scope(
    ctx: &mut Ctx<'_>,
    scope: Scope,
    defaults: &[&str],
    context: String,
) -> Result {
    let ctx: &Ctx<'_> = ctx;
    ctx.check_user_select()?;
    let filter = ctx.parse_filter(Resource::User)?;
    let after = ctx.query.skip_after()?;
    let page_size = ctx.page_size();
    let dir = &*ctx.dir;
    let now = ctx.now;
    let in_scope = dir.scope(scope);
    let matches = |seq: u64| -> Option<&User> {
        let user = dir.user(seq)?;
        (in_scope.contains(&seq)
            && !user.is_lagging(now)
            && filter.as_ref().is_none_or(|f| f.matches(&user.props)))
        .then_some(user)
    };
    let plan = filter.as_ref().and_then(|f| f.index_plan());
    let candidates: Box<dyn Iterator<Item = u64> + '_> = match &plan {
        Some(keys) => Box::new(
            dir.lookup(keys)
                .into_iter()
                .filter(move |s| after.is_none_or(|a| *s > a)),
        ),
        None => Box::new(
            in_scope
                .range((
                    after.map_or(Bound::Unbounded, Bound::Excluded),
                    Bound::Unbounded,
                ))
                .copied(),
        ),
    };
    let mut items = Vec::new();
    let mut last = None;
    let mut more = false;
    for seq in candidates {
        if let Some(user) = matches(seq) {
            if items.len() == page_size {
                more = true;
                break;
            }
            items.push(ctx.project(user, defaults));
            last = Some(seq);
        }
    }
    let count = ctx.query.wants_count().then(|| match (&filter, &plan) {
        (None, _) => in_scope.len(),
        (Some(_), Some(keys)) => dir
            .lookup(keys)
            .into_iter()
            .filter(|s| matches(*s).is_some())
            .count(),
        (Some(_), None) => in_scope.iter().filter(|s| matches(**s).is_some()).count(),
    });
    let next = last.filter(|_| more).map(|seq| format!("sandbox-{seq}"));
    Ok(ctx.page(items, context, count, next))
}

pub(crate) fn list(ctx: &mut Ctx<'_>) -> Result {
    let context = ctx.context("users");
    list_scope(ctx, Scope::Live, &DEFAULT_USER_PROPERTIES, context)
}

/// `GET /users/$count`: a plain-text number, only with `ConsistencyLevel: eventual`
/// (learn.microsoft.com/graph/aad-advanced-queries: otherwise 400 `$count is not currently
/// supported.`).
pub(crate) fn count(ctx: &mut Ctx<'_>) -> Result {
    if !ctx.query.eventual {
        return Err(bad_request(
            "Request_BadRequest",
            "$count is not currently supported.",
        ));
    }
    let filter = ctx.parse_filter_for_count()?;
    let dir = &*ctx.dir;
    let live = dir.scope(Scope::Live);
    let n = match &filter {
        None => live.len(),
        Some(f) => match f.index_plan() {
            Some(keys) => dir
                .lookup(&keys)
                .into_iter()
                .filter(|s| live.contains(s))
                .filter(|s| dir.user(*s).is_some_and(|u| f.matches(&u.props)))
                .count(),
            None => live
                .iter()
                .filter(|s| dir.user(**s).is_some_and(|u| f.matches(&u.props)))
                .count(),
        },
    };
    Ok(Resp::text(n.to_string()))
}

impl Ctx<'_> {
    /// `/$count` is itself the advanced query: its filter needs only the header.
    fn parse_filter_for_count(&self) -> Result<Option<super::Filter>> {
        let Some(text) = &self.query.filter else {
            return Ok(None);
        };
        super::filter::parse(text, Resource::User)
            .map(Some)
            .map_err(|e| bad_request(e.code, &e.message))
    }
}

pub(crate) fn get(ctx: &mut Ctx<'_>, key: &str) -> Result {
    ctx.check_user_select()?;
    let seq = ctx.readable(key)?;
    let mut body = ctx.project(ctx.user(seq), &DEFAULT_USER_PROPERTIES);
    body.insert(
        "@odata.context".to_owned(),
        Value::String(format!("{}/$entity", ctx.context("users"))),
    );
    Ok(Resp::json(StatusCode::OK, Value::Object(body)))
}

/// A mail address and the UPN share one namespace with every user's proxy addresses.
fn claim_conflict(
    ctx: &Ctx<'_>,
    upn: Option<&str>,
    mail: Option<&str>,
    except: Option<u64>,
) -> Result<()> {
    if let Some(upn) = upn
        && ctx.dir.claimed(&[upn.to_lowercase()], except).is_some()
    {
        return Err(conflict("userPrincipalName"));
    }
    if let Some(mail) = mail
        && ctx.dir.claimed(&[mail.to_lowercase()], except).is_some()
    {
        return Err(conflict("proxyAddresses"));
    }
    Ok(())
}

/// `POST /users`: 201 with the default property set (learn.microsoft.com/graph/api/user-post-users).
pub(crate) fn create(ctx: &mut Ctx<'_>) -> Result {
    let body = ctx.body_object()?;
    let mut props = Map::new();
    let mut password = None;
    for (name, value) in &body {
        if name.starts_with('@') {
            continue;
        }
        if name == "passwordProfile" {
            password = Some(value);
            continue;
        }
        if let Some(v) = check_property(name, value)? {
            props.insert(name.clone(), v);
        }
    }
    for property in REQUIRED_ON_CREATE {
        if !props.contains_key(property) {
            return Err(required(property));
        }
    }
    match password {
        None => return Err(required("passwordProfile")),
        Some(profile) => check_password_profile(profile)?,
    }
    let upn = props
        .get("userPrincipalName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    ctx.check_upn_domain(&upn)?;
    let mail = props.get("mail").and_then(Value::as_str).map(str::to_owned);
    claim_conflict(ctx, Some(&upn), mail.as_deref(), None)?;

    let id = uuid::Uuid::new_v4().to_string();
    props.insert("id".to_owned(), Value::String(id.clone()));
    props.insert(
        "createdDateTime".to_owned(),
        Value::String(graph_timestamp(jiff::Timestamp::now())),
    );
    props.insert(
        "proxyAddresses".to_owned(),
        proxies_for_mail(&Map::new(), mail.as_deref()),
    );
    props.entry("businessPhones").or_insert_with(|| json!([]));
    let lag = lock(&ctx.shared.faults).replication_lag();
    let mut user = User::new(props);
    user.visible_at = (!lag.is_zero()).then(|| ctx.now + lag);
    let seq = ctx.dir.insert_user(user);
    let mut out = super::project_user(ctx.user(seq), None, &DEFAULT_USER_PROPERTIES);
    out.insert(
        "@odata.context".to_owned(),
        Value::String(format!("{}$metadata#users/$entity", ctx.req.base)),
    );
    Ok(Resp::json(StatusCode::CREATED, Value::Object(out))
        .header("Location", &format!("{}users/{id}", ctx.req.base)))
}

pub(crate) fn update(ctx: &mut Ctx<'_>, key: &str) -> Result {
    let seq = ctx.writable(key)?;
    let body = ctx.body_object()?;
    let current = ctx.user(seq).props.clone();
    let mut next = current.clone();
    for (name, value) in &body {
        if name.starts_with('@') {
            continue;
        }
        if name == "passwordProfile" {
            check_password_profile(value)?;
            continue;
        }
        match check_property(name, value)? {
            None if REQUIRED_ON_CREATE.contains(&name.as_str()) => return Err(invalid_value(name)),
            None => {
                next.remove(name);
            }
            Some(Value::Object(given)) if name == "onPremisesExtensionAttributes" => {
                let mut merged = next
                    .get(name)
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                merged.extend(given);
                next.insert(name.clone(), Value::Object(merged));
            }
            Some(v) => {
                next.insert(name.clone(), v);
            }
        }
    }

    let old_upn = current
        .get("userPrincipalName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let new_upn = next
        .get("userPrincipalName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let old_mail = current
        .get("mail")
        .and_then(Value::as_str)
        .map(str::to_lowercase);
    let new_mail = next.get("mail").and_then(Value::as_str).map(str::to_owned);
    let upn_changed = !new_upn.eq_ignore_ascii_case(old_upn);
    if upn_changed {
        ctx.check_upn_domain(&new_upn)?;
    }
    let mail_changed = new_mail.as_ref().map(|m| m.to_lowercase()) != old_mail;
    if mail_changed {
        next.insert(
            "proxyAddresses".to_owned(),
            proxies_for_mail(&current, new_mail.as_deref()),
        );
    }
    claim_conflict(
        ctx,
        upn_changed.then_some(new_upn.as_str()),
        new_mail.as_deref().filter(|_| mail_changed),
        Some(seq),
    )?;
    if next != current {
        ctx.dir.with_user(seq, |_, user| user.props = next);
    }
    Ok(Resp::no_content())
}

/// Soft delete: `deletedDateTime` is set and, as Entra does, the UPN is prefixed with the object
/// id without hyphens (`{id}{upn}`), which frees the UPN for a new user
/// (support.microsoft.com/kb/2619308) and is why a deleted user is found by
/// `endsWith(userPrincipalName,'...')`.
pub(crate) fn delete(ctx: &mut Ctx<'_>, key: &str) -> Result {
    let seq = ctx.writable(key)?;
    ctx.dir.with_user(seq, |_, user| {
        if let Some(upn) = user.str_prop("userPrincipalName") {
            let mangled = deleted_upn(user.id(), upn);
            user.props
                .insert("userPrincipalName".to_owned(), Value::String(mangled));
        }
        user.props.insert(
            "deletedDateTime".to_owned(),
            Value::String(graph_timestamp(jiff::Timestamp::now())),
        );
    });
    Ok(Resp::no_content())
}

pub(crate) fn revoke_sessions(ctx: &mut Ctx<'_>, key: &str) -> Result {
    let seq = ctx.writable(key)?;
    ctx.dir.with_user(seq, |_, user| {
        user.props.insert(
            "signInSessionsValidFromDateTime".to_owned(),
            Value::String(graph_timestamp(jiff::Timestamp::now())),
        );
    });
    Ok(Resp::json(
        StatusCode::OK,
        json!({"@odata.context": format!("{}$metadata#Edm.Boolean", ctx.req.base), "value": true}),
    ))
}

impl Ctx<'_> {
    pub(crate) fn check_upn_domain(&self, upn: &str) -> Result<()> {
        let domain = upn
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        if self.shared.settings.verified_domains.contains(&domain) {
            return Ok(());
        }
        Err(Resp::json(
            StatusCode::BAD_REQUEST,
            json!({"error": {
                "code": "Request_BadRequest",
                "message": "The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization.",
                "details": [{"target": "userPrincipalName", "code": "InvalidValue"}],
            }}),
        ))
    }
}
