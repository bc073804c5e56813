//! Licences: `POST /users/{id}/assignLicense` against the seeded SKUs and their units,
//! `GET /users/{id}/licenseDetails` and `GET /subscribedSkus`.

use std::collections::HashMap;

use axum::http::StatusCode;
use base64::Engine as _;
use serde_json::{Value, json};

use super::super::directory::DirectLicense;
use super::super::schema::{DEFAULT_USER_PROPERTIES, is_guid};
use super::{Ctx, Resp, Result, bad_request, project_user};

fn guid_error() -> Resp {
    bad_request(
        "BadRequest",
        "Cannot convert a primitive value to the expected type 'Edm.Guid'. See the inner exception for more details",
    )
}

/// learn.microsoft.com/graph/api/user-assignlicense: an SKU the tenant does not own.
fn unknown_sku(sku: &str) -> Resp {
    bad_request(
        "Request_BadRequest",
        &format!("License {sku} does not correspond to a valid company License."),
    )
}

/// No free unit (learn.microsoft.com/graph/api/user-assignlicense; the SKU id as given).
fn no_units(sku: &str) -> Resp {
    bad_request(
        "Request_BadRequest",
        &format!("Subscription with SKU {sku} does not have any available licenses."),
    )
}

pub(crate) fn assign(ctx: &mut Ctx<'_>, key: &str) -> Result {
    let seq = ctx.writable(key)?;
    let body = ctx.body_object()?;
    let (Some(add), Some(remove)) = (
        body.get("addLicenses").and_then(Value::as_array),
        body.get("removeLicenses").and_then(Value::as_array),
    ) else {
        return Err(bad_request(
            "Request_BadRequest",
            "Both 'addLicenses' and 'removeLicenses' are required (use an empty array for none).",
        ));
    };
    let mut adds: Vec<(String, String, Vec<Value>)> = Vec::new();
    for license in add {
        let sku = license
            .get("skuId")
            .and_then(Value::as_str)
            .filter(|s| is_guid(s))
            .ok_or_else(guid_error)?;
        let disabled = match license.get("disabledPlans") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(plans)) if plans.iter().all(|p| p.as_str().is_some_and(is_guid)) => {
                plans.clone()
            }
            Some(_) => return Err(guid_error()),
        };
        if ctx.dir.sku(sku).is_none() {
            return Err(unknown_sku(sku));
        }
        adds.push((sku.to_ascii_lowercase(), sku.to_owned(), disabled));
    }
    let user = ctx.user(seq);
    let mut removes = Vec::new();
    for sku in remove {
        let sku = sku.as_str().filter(|s| is_guid(s)).ok_or_else(guid_error)?;
        if ctx.dir.sku(sku).is_none() {
            return Err(unknown_sku(sku));
        }
        let lower = sku.to_ascii_lowercase();
        if !user.licenses.iter().any(|l| l.sku_id == lower) {
            return Err(bad_request(
                "Request_BadRequest",
                "User does not have a corresponding license.",
            ));
        }
        removes.push(lower);
    }
    if !adds.is_empty() && user.str_prop("usageLocation").is_none() {
        return Err(bad_request(
            "Request_BadRequest",
            "License assignment cannot be done for user with invalid usage location.",
        ));
    }
    let held = user.held_skus();
    let mut taking: HashMap<&str, u32> = HashMap::new();
    for (sku, given, _) in &adds {
        if held.contains(sku) {
            continue;
        }
        let units = ctx.dir.sku(sku).map_or(0, |s| s.units);
        let pending = taking.entry(sku.as_str()).or_default();
        if ctx.dir.consumed(sku) + *pending >= units {
            return Err(no_units(given));
        }
        *pending += 1;
    }

    ctx.dir.with_user(seq, |_, user| {
        user.licenses.retain(|l| {
            !removes.contains(&l.sku_id) && !adds.iter().any(|(a, _, _)| *a == l.sku_id)
        });
        for (sku, _, disabled) in &adds {
            user.licenses.push(DirectLicense {
                sku_id: sku.clone(),
                disabled_plans: disabled.clone(),
            });
            // The user holds the SKU now: a group assignment waiting for a unit is satisfied.
            for g in user.group_licenses.iter_mut().filter(|g| &g.sku_id == sku) {
                g.active = true;
            }
        }
    });
    let mut out = project_user(ctx.user(seq), None, &DEFAULT_USER_PROPERTIES);
    out.insert(
        "@odata.context".to_owned(),
        Value::String(format!("{}$metadata#users/$entity", ctx.req.base)),
    );
    Ok(Resp::json(StatusCode::OK, Value::Object(out)))
}

/// `GET /users/{id}/licenseDetails`: every SKU the user holds, direct or through a group.
pub(crate) fn details(ctx: &mut Ctx<'_>, key: &str) -> Result {
    let seq = ctx.readable(key)?;
    let user = ctx.user(seq);
    let user_id = user.id().to_owned();
    let details: Vec<Value> = user
        .held_skus()
        .into_iter()
        .map(|sku| {
            let part = ctx
                .dir
                .sku(&sku)
                .map(|s| s.part_number.clone())
                .unwrap_or_default();
            json!({
                "id": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{user_id}:{sku}")),
                "skuId": sku,
                "skuPartNumber": part,
                "servicePlans": [],
            })
        })
        .collect();
    Ok(Resp::json(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}$metadata#users('{user_id}')/licenseDetails", ctx.req.base),
            "value": details,
        }),
    ))
}

/// `GET /subscribedSkus` (learn.microsoft.com/graph/api/subscribedsku-list): the seeded SKUs,
/// `prepaidUnits.enabled` their units, `consumedUnits` the live users holding them.
pub(crate) fn subscribed_skus(ctx: &mut Ctx<'_>) -> Result {
    let skus: Vec<Value> = ctx
        .dir
        .skus()
        .map(|sku| {
            json!({
                "id": format!("sandbox_{}", sku.id),
                "skuId": sku.id,
                "skuPartNumber": sku.part_number,
                "appliesTo": "User",
                "capabilityStatus": "Enabled",
                "consumedUnits": ctx.dir.consumed(&sku.id),
                "prepaidUnits": {"enabled": sku.units, "suspended": 0, "warning": 0, "lockedOut": 0},
                "servicePlans": [],
            })
        })
        .map(|sku| match &ctx.query.select {
            // The selected properties (and the key).
            Some(select) => Value::Object(
                sku.as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| *k == "id" || select.iter().any(|s| s == *k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            None => sku,
        })
        .collect();
    Ok(Resp::json(
        StatusCode::OK,
        json!({"@odata.context": format!("{}$metadata#subscribedSkus", ctx.req.base), "value": skus}),
    ))
}
