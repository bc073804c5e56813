//! `/groups`: list and get (seeded groups only: nothing creates one), members (list, add by
//! `$ref` or `members@odata.bind`, remove) and `/users/{id}/memberOf`.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::super::directory::Group;
use super::super::filter::Resource;
use super::super::schema::DEFAULT_USER_PROPERTIES;
use super::{Ctx, Resp, Result, bad_request, not_found, reference_target};

/// The group properties the sandbox knows; all of them are its default set.
const GROUP_PROPERTIES: [&str; 8] = [
    "id",
    "displayName",
    "description",
    "groupTypes",
    "mail",
    "mailEnabled",
    "mailNickname",
    "securityEnabled",
];

const MEMBER_EXISTS: &str = "One or more added object references already exist for the following modified properties: 'members'.";

fn group_json(group: &Group) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("id".to_owned(), json!(group.id));
    out.insert("displayName".to_owned(), json!(group.display_name));
    out.insert("description".to_owned(), Value::Null);
    out.insert("groupTypes".to_owned(), json!([]));
    out.insert("mail".to_owned(), Value::Null);
    out.insert("mailEnabled".to_owned(), json!(false));
    out.insert("mailNickname".to_owned(), Value::Null);
    out.insert("securityEnabled".to_owned(), json!(true));
    out
}

impl Ctx<'_> {
    fn check_group_select(&self) -> Result<()> {
        for property in self.query.select.iter().flatten() {
            if !GROUP_PROPERTIES.contains(&property.as_str()) {
                return Err(bad_request(
                    "BadRequest",
                    &format!(
                        "Could not find a property named '{property}' on type 'microsoft.graph.group'."
                    ),
                ));
            }
        }
        Ok(())
    }

    fn project_group(&self, group: &Group, with_type: bool) -> Map<String, Value> {
        let full = group_json(group);
        let mut out = Map::new();
        if with_type {
            out.insert("@odata.type".to_owned(), json!("#microsoft.graph.group"));
        }
        match &self.query.select {
            None => out.extend(full),
            Some(select) => {
                out.insert("id".to_owned(), json!(group.id));
                for property in select {
                    out.insert(
                        property.clone(),
                        full.get(property).cloned().unwrap_or(Value::Null),
                    );
                }
            }
        }
        out
    }

    /// A page of a short list (groups, memberOf) with an offset `$skiptoken`.
    fn offset_page(&self, items: Vec<Map<String, Value>>, context: String) -> Result {
        let skip = usize::try_from(self.query.skip_after()?.unwrap_or(0)).unwrap_or(usize::MAX);
        let total = items.len();
        let end = skip.saturating_add(self.page_size()).min(total);
        let next = (end < total).then(|| format!("sandbox-{end}"));
        let page = items
            .into_iter()
            .skip(skip)
            .take(end.saturating_sub(skip))
            .collect();
        Ok(self.page(page, context, Some(total), next))
    }
}

/// `GET /groups` (learn.microsoft.com/graph/api/group-list): `$select`, `$top`, `$filter`
/// (id, displayName), paging.
pub(crate) fn list(ctx: &mut Ctx<'_>) -> Result {
    ctx.check_group_select()?;
    let filter = ctx.parse_filter(Resource::Group)?;
    let items: Vec<Map<String, Value>> = ctx
        .dir
        .groups_after(None)
        .filter(|g| filter.as_ref().is_none_or(|f| f.matches(&group_json(g))))
        .map(|g| ctx.project_group(g, false))
        .collect();
    ctx.offset_page(items, ctx.context("groups"))
}

pub(crate) fn get(ctx: &mut Ctx<'_>, group_id: &str) -> Result {
    ctx.check_group_select()?;
    let group = ctx.dir.group(group_id).ok_or_else(|| not_found(group_id))?;
    let mut body = ctx.project_group(group, false);
    body.insert(
        "@odata.context".to_owned(),
        Value::String(format!("{}/$entity", ctx.context("groups"))),
    );
    Ok(Resp::json(StatusCode::OK, Value::Object(body)))
}

/// `GET /groups/{id}/members`: visible members in the order they were added, paged by position.
pub(crate) fn members(ctx: &mut Ctx<'_>, group_id: &str) -> Result {
    ctx.check_user_select()?;
    let filter = ctx.parse_filter(Resource::User)?;
    let group = ctx.dir.group(group_id).ok_or_else(|| not_found(group_id))?;
    let after = ctx.query.skip_after()?;
    let page_size = ctx.page_size();
    let mut items = Vec::new();
    let mut last = None;
    let mut more = false;
    for (position, seq) in group.members_after(after) {
        let Some(user) = ctx.dir.user(seq) else {
            continue;
        };
        if !user.is_visible(ctx.now) || !filter.as_ref().is_none_or(|f| f.matches(&user.props)) {
            continue;
        }
        if items.len() == page_size {
            more = true;
            break;
        }
        let mut u = ctx.project(user, &DEFAULT_USER_PROPERTIES);
        u.insert("@odata.type".to_owned(), json!("#microsoft.graph.user"));
        items.push(u);
        last = Some(position);
    }
    let count = ctx.query.wants_count().then(|| group.member_count());
    let next = last.filter(|_| more).map(|p| format!("sandbox-{p}"));
    Ok(ctx.page(items, ctx.context("directoryObjects"), count, next))
}

pub(crate) fn member_of(ctx: &mut Ctx<'_>, key: &str) -> Result {
    ctx.check_group_select()?;
    let seq = ctx.readable(key)?;
    let items: Vec<Map<String, Value>> = ctx
        .dir
        .groups_of(seq)
        .into_iter()
        .map(|g| ctx.project_group(g, true))
        .collect();
    ctx.offset_page(items, ctx.context("directoryObjects"))
}

/// The user a membership write references, or Graph's error for it
/// (learn.microsoft.com/graph/api/group-post-members).
fn member_to_add(ctx: &Ctx<'_>, group: &Group, user_key: &str) -> Result<u64> {
    let seq = ctx
        .dir
        .live_user(user_key)
        .ok_or_else(|| not_found(user_key))?;
    if ctx.user(seq).is_lagging(ctx.now) {
        return Err(bad_request(
            "Request_BadRequest",
            "The source resource object or one of the objects being referenced do not exist.",
        ));
    }
    if group.has_member(seq) {
        return Err(bad_request("Request_BadRequest", MEMBER_EXISTS));
    }
    Ok(seq)
}

pub(crate) fn add_member(ctx: &mut Ctx<'_>, group_id: &str) -> Result {
    let target = reference_target(&ctx.body_object()?)?;
    let group = ctx.dir.group(group_id).ok_or_else(|| not_found(group_id))?;
    let seq = member_to_add(ctx, group, &target)?;
    ctx.dir.add_member(group_id, seq);
    Ok(Resp::no_content())
}

pub(crate) fn remove_member(ctx: &mut Ctx<'_>, group_id: &str, member: &str) -> Result {
    let group = ctx.dir.group(group_id).ok_or_else(|| not_found(group_id))?;
    let seq = ctx
        .dir
        .live_user(member)
        .filter(|s| group.has_member(*s))
        .ok_or_else(|| not_found(member))?;
    ctx.dir.remove_member(group_id, seq);
    Ok(Resp::no_content())
}

/// `PATCH /groups/{id}`: `displayName` and `members@odata.bind` (at most 20 per request,
/// learn.microsoft.com/graph/api/group-post-members).
pub(crate) fn patch(ctx: &mut Ctx<'_>, group_id: &str) -> Result {
    let body = ctx.body_object()?;
    let mut to_add = Vec::new();
    let mut display_name = None;
    for (name, value) in &body {
        match name.as_str() {
            "members@odata.bind" => {
                let urls = value
                    .as_array()
                    .filter(|a| a.iter().all(Value::is_string))
                    .ok_or_else(|| {
                        bad_request(
                            "BadRequest",
                            "'members@odata.bind' must be an array of reference urls.",
                        )
                    })?;
                if urls.len() > 20 {
                    return Err(bad_request(
                        "Request_BadRequest",
                        "At most 20 members can be added in a single request.",
                    ));
                }
                for url in urls {
                    let mut reference = Map::new();
                    reference.insert("@odata.id".to_owned(), url.clone());
                    to_add.push(reference_target(&reference)?);
                }
            }
            "displayName" => {
                display_name = Some(value.as_str().map(str::to_owned).ok_or_else(|| {
                    bad_request(
                        "Request_BadRequest",
                        "Invalid value specified for property 'displayName' of resource 'Group'.",
                    )
                })?);
            }
            other if other.starts_with('@') => {}
            other => {
                return Err(bad_request(
                    "BadRequest",
                    &format!(
                        "Property '{other}' is not supported on groups by the hrsync sandbox."
                    ),
                ));
            }
        }
    }
    let group = ctx.dir.group(group_id).ok_or_else(|| not_found(group_id))?;
    let mut seqs: Vec<u64> = Vec::new();
    for key in &to_add {
        let seq = member_to_add(ctx, group, key)?;
        if seqs.contains(&seq) {
            return Err(bad_request("Request_BadRequest", MEMBER_EXISTS));
        }
        seqs.push(seq);
    }
    if let Some(name) = display_name {
        let (id, licenses) = (group.id.clone(), group.licenses.clone());
        ctx.dir.upsert_group(&id, &name, licenses);
    }
    for seq in seqs {
        ctx.dir.add_member(group_id, seq);
    }
    Ok(Resp::no_content())
}
