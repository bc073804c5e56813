//! `/directory/deletedItems`: soft-deleted users listed (paged, filtered), read, restored
//! (conflicting with a live user that took their UPN) and purged.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::super::directory::Scope;
use super::super::schema::{DEFAULT_USER_PROPERTIES, proxy_claim};
use super::users::list_scope;
use super::{Ctx, Resp, Result, bad_request, conflict, not_found, project_user};

/// A deleted user's default properties: a live user's, and when it was deleted.
const DELETED_DEFAULT_PROPERTIES: [&str; 12] = {
    let mut out = [""; 12];
    let mut i = 0;
    while i < DEFAULT_USER_PROPERTIES.len() {
        out[i] = DEFAULT_USER_PROPERTIES[i];
        i += 1;
    }
    out[11] = "deletedDateTime";
    out
};

pub(crate) fn list(ctx: &mut Ctx<'_>) -> Result {
    let context = ctx.context("directory/deletedItems/microsoft.graph.user");
    list_scope(ctx, Scope::Deleted, &DELETED_DEFAULT_PROPERTIES, context)
}

pub(crate) fn get(ctx: &mut Ctx<'_>, id: &str) -> Result {
    ctx.check_user_select()?;
    let seq = ctx.dir.deleted_user(id).ok_or_else(|| not_found(id))?;
    let mut body = ctx.project(ctx.user(seq), &DELETED_DEFAULT_PROPERTIES);
    body.insert("@odata.type".to_owned(), json!("#microsoft.graph.user"));
    body.insert(
        "@odata.context".to_owned(),
        Value::String(format!(
            "{}$metadata#directory/deletedItems/$entity",
            ctx.req.base
        )),
    );
    Ok(Resp::json(StatusCode::OK, Value::Object(body)))
}

/// `POST /directory/deletedItems/{id}/restore` (learn.microsoft.com/graph/api/directory-deleteditems-restore):
/// the user gets its UPN back, or `newUserPrincipalName`; a UPN a live user took meanwhile is a
/// 400 conflict, as are its addresses unless `autoReconcileProxyConflict` drops them.
pub(crate) fn restore(ctx: &mut Ctx<'_>, id: &str) -> Result {
    let seq = ctx.dir.deleted_user(id).ok_or_else(|| not_found(id))?;
    let body = if ctx.req.body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        ctx.body_object()?
    };
    let new_upn = match body.get("newUserPrincipalName") {
        None | Some(Value::Null) => None,
        Some(Value::String(upn)) => {
            ctx.check_upn_domain(upn)?;
            Some(upn.clone())
        }
        Some(_) => {
            return Err(bad_request(
                "Request_BadRequest",
                "Invalid value specified for property 'newUserPrincipalName'.",
            ));
        }
    };
    let reconcile = body
        .get("autoReconcileProxyConflict")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let user = ctx.user(seq);
    let upn = match new_upn {
        Some(upn) => upn,
        None => user.original_upn().unwrap_or_default(),
    };
    if ctx.dir.claimed(&[upn.to_lowercase()], Some(seq)).is_some() {
        return Err(conflict("userPrincipalName"));
    }
    let taken = |address: &str| {
        ctx.dir
            .claimed(&[proxy_claim(address)], Some(seq))
            .is_some()
    };
    let mail_taken = user.str_prop("mail").is_some_and(taken);
    let proxies: Vec<String> = user
        .props
        .get("proxyAddresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let kept: Vec<String> = proxies.iter().filter(|p| !taken(p)).cloned().collect();
    if (mail_taken || kept.len() != proxies.len()) && !reconcile {
        return Err(conflict("proxyAddresses"));
    }
    ctx.dir.with_user(seq, |_, user| {
        user.props
            .insert("userPrincipalName".to_owned(), Value::String(upn));
        user.props.remove("deletedDateTime");
        if mail_taken {
            user.props.remove("mail");
        }
        user.props.insert("proxyAddresses".to_owned(), json!(kept));
    });
    let mut out = project_user(ctx.user(seq), None, &DEFAULT_USER_PROPERTIES);
    out.insert("@odata.type".to_owned(), json!("#microsoft.graph.user"));
    out.insert(
        "@odata.context".to_owned(),
        Value::String(format!(
            "{}$metadata#directoryObjects/$entity",
            ctx.req.base
        )),
    );
    Ok(Resp::json(StatusCode::OK, Value::Object(out)))
}

pub(crate) fn purge(ctx: &mut Ctx<'_>, id: &str) -> Result {
    let seq = ctx.dir.deleted_user(id).ok_or_else(|| not_found(id))?;
    ctx.dir.purge_user(seq);
    Ok(Resp::no_content())
}
