//! `/domains`: the tenant's verified domains (the ones a userPrincipalName may use).

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::{Ctx, Resp, Result, not_found};

fn domain_json(name: &str, default: bool) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("id".to_owned(), json!(name));
    out.insert("authenticationType".to_owned(), json!("Managed"));
    out.insert("isAdminManaged".to_owned(), json!(true));
    out.insert("isDefault".to_owned(), json!(default));
    out.insert("isInitial".to_owned(), json!(false));
    out.insert("isRoot".to_owned(), json!(true));
    out.insert("isVerified".to_owned(), json!(true));
    out.insert("supportedServices".to_owned(), json!(["Email"]));
    out
}

/// `GET /domains` (learn.microsoft.com/graph/api/domain-list).
pub(crate) fn list(ctx: &mut Ctx<'_>) -> Result {
    let items: Vec<Map<String, Value>> = ctx
        .shared
        .settings
        .verified_domains
        .iter()
        .enumerate()
        .map(|(i, d)| domain_json(d, i == 0))
        .collect();
    Ok(ctx.page(items, ctx.context("domains"), None, None))
}

/// `GET /domains/{id}` (learn.microsoft.com/graph/api/domain-get).
pub(crate) fn get(ctx: &mut Ctx<'_>, name: &str) -> Result {
    let domains = &ctx.shared.settings.verified_domains;
    let index = domains
        .iter()
        .position(|d| d.eq_ignore_ascii_case(name))
        .ok_or_else(|| not_found(name))?;
    let mut body = domain_json(&domains[index], index == 0);
    body.insert(
        "@odata.context".to_owned(),
        Value::String(format!("{}$metadata#domains/$entity", ctx.req.base)),
    );
    Ok(Resp::json(StatusCode::OK, Value::Object(body)))
}
