//! `/users/{id}/manager` and its `$ref`: read, set (`PUT`, 204) and remove the manager reference.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::super::schema::DEFAULT_USER_PROPERTIES;
use super::{Ctx, Resp, Result, not_found, reference_target};

fn manager_of(ctx: &Ctx<'_>, key: &str) -> Result<u64> {
    let seq = ctx.readable(key)?;
    ctx.user(seq)
        .manager_id
        .as_deref()
        .and_then(|m| ctx.dir.live_user(m))
        .filter(|&m| ctx.user(m).is_visible(ctx.now))
        .ok_or_else(|| not_found("manager"))
}

pub(crate) fn get(ctx: &mut Ctx<'_>, key: &str) -> Result {
    ctx.check_user_select()?;
    let manager = manager_of(ctx, key)?;
    let mut body = ctx.project(ctx.user(manager), &DEFAULT_USER_PROPERTIES);
    body.insert("@odata.type".to_owned(), json!("#microsoft.graph.user"));
    body.insert(
        "@odata.context".to_owned(),
        Value::String(format!(
            "{}$metadata#directoryObjects/$entity",
            ctx.req.base
        )),
    );
    Ok(Resp::json(StatusCode::OK, Value::Object(body)))
}

pub(crate) fn get_ref(ctx: &mut Ctx<'_>, key: &str) -> Result {
    let manager = manager_of(ctx, key)?;
    Ok(Resp::json(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}$metadata#$ref", ctx.req.base),
            "@odata.id": format!("{}directoryObjects/{}", ctx.req.base, ctx.user(manager).id()),
        }),
    ))
}

/// `PUT /users/{id}/manager/$ref` (learn.microsoft.com/graph/api/user-post-manager): 204; an
/// unknown (or not yet replicated) manager is 404.
pub(crate) fn set(ctx: &mut Ctx<'_>, key: &str) -> Result {
    let seq = ctx.writable(key)?;
    let target = reference_target(&ctx.body_object()?)?;
    let manager = ctx.readable(&target)?;
    let manager_id = ctx.user(manager).id().to_owned();
    if ctx.user(seq).manager_id.as_deref() != Some(manager_id.as_str()) {
        ctx.dir
            .with_user(seq, |_, user| user.manager_id = Some(manager_id));
    }
    Ok(Resp::no_content())
}

pub(crate) fn remove(ctx: &mut Ctx<'_>, key: &str) -> Result {
    let seq = ctx.writable(key)?;
    if ctx.user(seq).manager_id.is_none() {
        return Err(not_found("manager"));
    }
    ctx.dir.with_user(seq, |_, user| user.manager_id = None);
    Ok(Resp::no_content())
}
