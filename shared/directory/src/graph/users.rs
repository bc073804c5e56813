//! Typed user reads and the create.
//!
//! Every read names its properties with `$select` (cheaper in Graph's resource units, and
//! `employeeId` and friends are not in the default set). Every value placed in a `$filter` is an
//! OData literal from [`crate::odata`], then percent-encoded.

use std::collections::BTreeMap;

use rand::Rng as _;
use rand::seq::SliceRandom as _;
use serde_json::{Map, Value, json};

use super::error::GraphError;
use super::http::GraphClient;
use super::requests::{GraphRequest, GraphResponse, Method, encode_path_segment, with_query};
use crate::odata::{eq, quote};

/// Properties read for a [`DirectoryUser`].
pub const USER_SELECT: &[&str] = &[
    "id",
    "userPrincipalName",
    "mail",
    "mailNickname",
    "accountEnabled",
    "employeeId",
    "displayName",
    "givenName",
    "surname",
    "proxyAddresses",
    "department",
    "jobTitle",
    "companyName",
    "officeLocation",
    "usageLocation",
    "city",
    "country",
    "state",
    "streetAddress",
    "postalCode",
    "mobilePhone",
    "businessPhones",
    "employeeType",
    "employeeHireDate",
    "employeeOrgData",
];

/// A user as read from (or created in) the directory.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryUser {
    /// Object id.
    pub id: String,
    /// UPN.
    pub user_principal_name: String,
    /// Primary SMTP address.
    pub mail: Option<String>,
    /// Whether sign-in is allowed.
    pub account_enabled: bool,
    /// HR key.
    pub employee_id: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// `SMTP:`/`smtp:` addresses and others.
    pub proxy_addresses: Vec<String>,
    /// The other properties returned (`@odata.*` annotations left out; `null` kept).
    pub properties: BTreeMap<String, Value>,
}

const TYPED: &[&str] = &[
    "id",
    "userPrincipalName",
    "mail",
    "accountEnabled",
    "employeeId",
    "displayName",
    "proxyAddresses",
];

impl DirectoryUser {
    /// From a Graph user object. `id` and `userPrincipalName` are required; an absent
    /// `accountEnabled` reads as `false`.
    pub fn from_json(value: &Value) -> Result<Self, GraphError> {
        let object = value
            .as_object()
            .ok_or_else(|| GraphError::Decode("a user is not a JSON object".into()))?;
        let string = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
        let id = string("id").ok_or_else(|| GraphError::Decode("a user has no id".into()))?;
        let user_principal_name = string("userPrincipalName")
            .ok_or_else(|| GraphError::Decode("a user has no userPrincipalName".into()))?;
        let proxy_addresses = object
            .get("proxyAddresses")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let properties = object
            .iter()
            .filter(|(k, _)| !k.starts_with("@odata") && !TYPED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(DirectoryUser {
            id,
            user_principal_name,
            mail: string("mail"),
            account_enabled: object
                .get("accountEnabled")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            employee_id: string("employeeId"),
            display_name: string("displayName"),
            proxy_addresses,
            properties,
        })
    }
}

/// A user to create.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewUser {
    /// UPN (verified domain).
    pub user_principal_name: String,
    /// Mail alias (64 chars max).
    pub mail_nickname: String,
    /// Display name.
    pub display_name: String,
    /// Whether sign-in is allowed from the start.
    pub account_enabled: bool,
    /// Primary SMTP address, if hrsync sets it.
    pub mail: Option<String>,
    /// Other properties (`employeeId`, `department`, `usageLocation`, ...). They cannot override
    /// the fields above or the password profile.
    pub properties: BTreeMap<String, Value>,
}

/// The `POST /users` body: `properties`, then the required fields, and a `passwordProfile` with a
/// fresh random password that must be changed at first sign-in (hrsync never learns it again).
pub fn create_user_body(user: &NewUser) -> Value {
    let mut body: Map<String, Value> = user.properties.clone().into_iter().collect();
    body.insert("accountEnabled".into(), json!(user.account_enabled));
    body.insert("displayName".into(), json!(user.display_name));
    body.insert("mailNickname".into(), json!(user.mail_nickname));
    body.insert("userPrincipalName".into(), json!(user.user_principal_name));
    if let Some(mail) = &user.mail {
        body.insert("mail".into(), json!(mail));
    }
    body.insert(
        "passwordProfile".into(),
        json!({ "password": generate_password(), "forceChangePasswordNextSignIn": true }),
    );
    Value::Object(body)
}

const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const DIGITS: &[u8] = b"23456789";
const SYMBOLS: &[u8] = b"!@#$%^&*-_=+?.:";

/// A 28-character password from the thread CSPRNG with at least one upper, lower, digit and symbol
/// (Entra's complexity rule asks for three of the four).
pub(crate) fn generate_password() -> String {
    const LEN: usize = 28;
    let mut rng = rand::rng();
    let all: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS].concat();
    let mut chars: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS]
        .iter()
        .map(|set| set[rng.random_range(0..set.len())])
        .collect();
    while chars.len() < LEN {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    chars.shuffle(&mut rng);
    chars.into_iter().map(char::from).collect()
}

/// `GET /users?$filter=employeeId eq '<id>'&$select=...&$top=2`.
pub fn find_by_employee_id_request(employee_id: &str) -> GraphRequest {
    GraphRequest::get(with_query(
        "/users",
        &[
            ("$filter", &eq("employeeId", employee_id)),
            ("$select", &USER_SELECT.join(",")),
            ("$top", "2"),
        ],
    ))
}

/// The `$filter` clauses matching `name` as UPN (`upn_clause`), mail, or an SMTP proxy address.
/// `eq` on `proxyAddresses` is case-insensitive, so `smtp:` also matches the primary `SMTP:`.
fn name_clauses(upn_clause: &str, name: &str) -> String {
    format!(
        "{upn_clause} or mail eq {} or proxyAddresses/any(p:p eq {})",
        quote(name),
        quote(&format!("smtp:{name}"))
    )
}

/// The lookups of a preflight, in at most two requests however many names: the live users that
/// carry `employee_id` or hold one of `names` (UPN, mail or SMTP proxy address), and the
/// soft-deleted users that hold one of `names`. A deleted user's UPN is prefixed with its object
/// id, so that query uses `endsWith(userPrincipalName, ...)` (an advanced query:
/// `ConsistencyLevel: eventual` and `$count=true`) and the matches are checked exactly on the
/// client. No names: no deleted-users request.
pub fn preflight_requests(
    employee_id: Option<&str>,
    names: &[&str],
) -> (Option<GraphRequest>, Option<GraphRequest>) {
    let mut live_clauses: Vec<String> = employee_id
        .map(|id| eq("employeeId", id))
        .into_iter()
        .collect();
    live_clauses.extend(
        names
            .iter()
            .map(|name| name_clauses(&format!("userPrincipalName eq {}", quote(name)), name)),
    );
    let top = (2 + names.len() * 3).to_string();
    let live = (!live_clauses.is_empty()).then(|| {
        GraphRequest::get(with_query(
            "/users",
            &[
                ("$filter", &live_clauses.join(" or ")),
                ("$select", &USER_SELECT.join(",")),
                ("$top", &top),
            ],
        ))
    });
    let deleted = (!names.is_empty()).then(|| {
        let clauses: Vec<String> = names
            .iter()
            .map(|name| {
                name_clauses(
                    &format!("endsWith(userPrincipalName,{})", quote(name)),
                    name,
                )
            })
            .collect();
        GraphRequest::get(with_query(
            "/directory/deletedItems/microsoft.graph.user",
            &[
                ("$filter", &clauses.join(" or ")),
                ("$count", "true"),
                ("$select", "id,userPrincipalName,mail,proxyAddresses"),
                ("$top", "50"),
            ],
        ))
        .header("ConsistencyLevel", "eventual")
    });
    (live, deleted)
}

/// Whether a live user holds `name` as UPN, mail or SMTP proxy address.
fn live_user_holds(user: &DirectoryUser, name: &str) -> bool {
    let smtp = format!("smtp:{name}");
    user.user_principal_name.eq_ignore_ascii_case(name)
        || user
            .mail
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case(name))
        || user
            .proxy_addresses
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&smtp))
}

/// Whether a soft-deleted user (as returned by the deleted-items query) really holds `name`.
pub(crate) fn deleted_user_holds(user: &Value, name: &str) -> bool {
    let lower = name.to_lowercase();
    let field = |k: &str| user.get(k).and_then(Value::as_str).map(str::to_lowercase);
    if field("mail").as_deref() == Some(lower.as_str()) {
        return true;
    }
    let smtp = format!("smtp:{lower}");
    if user
        .get("proxyAddresses")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .any(|p| p.to_lowercase() == smtp)
        })
    {
        return true;
    }
    let (Some(upn), Some(id)) = (field("userPrincipalName"), field("id")) else {
        return false;
    };
    upn == lower
        || upn
            .strip_suffix(&lower)
            .is_some_and(|prefix| prefix == id || prefix == id.replace('-', ""))
}

fn values(response: &GraphResponse) -> Result<&Vec<Value>, GraphError> {
    response
        .body
        .as_ref()
        .and_then(|b| b.get("value"))
        .and_then(Value::as_array)
        .ok_or_else(|| GraphError::Decode("a collection response has no value array".into()))
}

/// What [`GraphClient::preflight`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Preflight {
    /// The account that already carries the employee id.
    pub existing: Option<DirectoryUser>,
    /// The names asked about that someone holds.
    pub taken: Vec<String>,
}

/// The single user of an `employeeId` lookup; two or more is [`GraphError::AmbiguousEmployeeId`].
fn user_found(response: &GraphResponse) -> Result<Option<DirectoryUser>, GraphError> {
    if let Some(e) = response.error() {
        return Err(e);
    }
    let users = values(response)?
        .iter()
        .map(DirectoryUser::from_json)
        .collect::<Result<Vec<_>, _>>()?;
    the_one(users)
}

/// The one account among `carrying` (the users that carry an employee id), if any.
pub(crate) fn the_one(
    mut carrying: Vec<DirectoryUser>,
) -> Result<Option<DirectoryUser>, GraphError> {
    match carrying.len() {
        0 | 1 => Ok(carrying.pop()),
        matches => Err(GraphError::AmbiguousEmployeeId { matches }),
    }
}

/// What the two lookups of [`preflight_requests`] found.
fn preflight_answer(
    employee_id: Option<&str>,
    names: &[&str],
    live: Option<&GraphResponse>,
    deleted: Option<&GraphResponse>,
) -> Result<Preflight, GraphError> {
    let mut live_users = Vec::new();
    if let Some(live) = live {
        if let Some(e) = live.error() {
            return Err(e);
        }
        for user in values(live)? {
            live_users.push(DirectoryUser::from_json(user)?);
        }
    }
    let mut deleted_users: &[Value] = &[];
    if let Some(deleted) = deleted {
        if let Some(e) = deleted.error() {
            return Err(e);
        }
        deleted_users = values(deleted)?;
    }
    let carrying = live_users
        .iter()
        .filter(|u| {
            employee_id.is_some_and(|id| {
                u.employee_id
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(id))
            })
        })
        .cloned()
        .collect();
    let taken = names
        .iter()
        .filter(|name| {
            live_users.iter().any(|u| live_user_holds(u, name))
                || deleted_users.iter().any(|u| deleted_user_holds(u, name))
        })
        .map(|name| (*name).to_owned())
        .collect();
    Ok(Preflight {
        existing: the_one(carrying)?,
        taken,
    })
}

impl GraphClient {
    /// The user whose `employeeId` is `employee_id`, if any; two or more is
    /// [`GraphError::AmbiguousEmployeeId`].
    pub async fn find_user_by_employee_id(
        &self,
        employee_id: &str,
    ) -> Result<Option<DirectoryUser>, GraphError> {
        let response = self.send(&find_by_employee_id_request(employee_id)).await?;
        user_found(&response)
    }

    /// `GET /users/{id}?$select=...`; `None` on 404.
    pub async fn get_user(&self, id: &str) -> Result<Option<DirectoryUser>, GraphError> {
        let request = GraphRequest::get(with_query(
            &format!("/users/{}", encode_path_segment(id)),
            &[("$select", &USER_SELECT.join(","))],
        ));
        match self.send(&request).await {
            Ok(response) => response
                .body
                .as_ref()
                .ok_or_else(|| GraphError::Decode("a user response has no body".into()))
                .and_then(DirectoryUser::from_json)
                .map(Some),
            Err(GraphError::Graph { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether `name` is taken as a UPN, mail or SMTP proxy address by a live or a soft-deleted
    /// user (a deleted user can be restored, and would then clash).
    pub async fn name_in_use(&self, name: &str) -> Result<bool, GraphError> {
        Ok(!self.preflight(None, &[name]).await?.taken.is_empty())
    }

    /// Before a joiner's first create, in one `$batch` of at most two requests: the account that
    /// already carries the employee id (if any), and which of `names` a live or a soft-deleted
    /// user holds.
    pub async fn preflight(
        &self,
        employee_id: Option<&str>,
        names: &[&str],
    ) -> Result<Preflight, GraphError> {
        let (live, deleted) = preflight_requests(employee_id, names);
        let live = live.map(|r| r.id("live"));
        let deleted = deleted.map(|r| r.id("deleted"));
        let requests: Vec<GraphRequest> = live.iter().chain(&deleted).cloned().collect();
        let responses = self.batch(requests).await?;
        let find = |id: &str| responses.iter().find(|r| r.id == id);
        preflight_answer(employee_id, names, find("live"), find("deleted"))
    }

    /// Every user (`$select`ed for a [`DirectoryUser`]) and every soft-deleted user, 999 a page
    /// (learn.microsoft.com/graph/paging): the directory read once instead of a lookup per worker.
    pub async fn read_directory(&self) -> Result<(Vec<DirectoryUser>, Vec<Value>), GraphError> {
        let users = self
            .pages(&with_query(
                "/users",
                &[("$select", &USER_SELECT.join(",")), ("$top", "999")],
            ))
            .await?
            .iter()
            .map(DirectoryUser::from_json)
            .collect::<Result<Vec<_>, _>>()?;
        let deleted = self
            .pages(&with_query(
                "/directory/deletedItems/microsoft.graph.user",
                &[
                    ("$select", "id,userPrincipalName,mail,proxyAddresses"),
                    ("$top", "999"),
                ],
            ))
            .await?;
        Ok((users, deleted))
    }

    /// Every item of a collection, following `@odata.nextLink`.
    async fn pages(&self, first: &str) -> Result<Vec<Value>, GraphError> {
        let mut items = Vec::new();
        let mut url = first.to_owned();
        loop {
            let response = self.send(&GraphRequest::get(&url)).await?;
            items.extend(values(&response)?.iter().cloned());
            let next = response
                .body
                .as_ref()
                .and_then(|b| b.get("@odata.nextLink"))
                .and_then(Value::as_str);
            match next {
                None => return Ok(items),
                Some(next) => {
                    url = next
                        .strip_prefix(self.api_base())
                        .ok_or_else(|| {
                            GraphError::Decode(
                                "an @odata.nextLink points outside the Graph endpoint".into(),
                            )
                        })?
                        .to_owned();
                }
            }
        }
    }

    /// `POST /users` (`201 Created`) with a random password that must be changed at first sign-in.
    /// Returns the created user as Graph answered it, completed from `user` for properties the
    /// create response leaves out (e.g. `accountEnabled`): trust the write, do not read back.
    pub async fn create_user(&self, user: &NewUser) -> Result<DirectoryUser, GraphError> {
        let request = GraphRequest::with_json(Method::POST, "/users", create_user_body(user));
        let response = self.send(&request).await?;
        let body = response
            .body
            .as_ref()
            .ok_or_else(|| GraphError::Decode("the create response has no body".into()))?;
        let mut created = DirectoryUser::from_json(body)?;
        if body.get("accountEnabled").is_none() {
            created.account_enabled = user.account_enabled;
        }
        if created.display_name.is_none() {
            created.display_name = Some(user.display_name.clone());
        }
        if created.mail.is_none() {
            created.mail.clone_from(&user.mail);
        }
        if created.employee_id.is_none() {
            created.employee_id = user
                .properties
                .get("employeeId")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        Ok(created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_strong_and_fresh() {
        let a = generate_password();
        let b = generate_password();
        assert_ne!(a, b);
        assert!(a.len() >= 24);
        assert!(a.bytes().any(|c| c.is_ascii_uppercase()));
        assert!(a.bytes().any(|c| c.is_ascii_lowercase()));
        assert!(a.bytes().any(|c| c.is_ascii_digit()));
        assert!(a.bytes().any(|c| SYMBOLS.contains(&c)));
    }

    #[test]
    fn create_body_has_required_fields_and_password_profile() {
        let mut properties = BTreeMap::new();
        properties.insert("employeeId".to_owned(), json!("1001"));
        properties.insert("userPrincipalName".to_owned(), json!("sneaky@x.com"));
        let body = create_user_body(&NewUser {
            user_principal_name: "ada@contoso.com".into(),
            mail_nickname: "ada".into(),
            display_name: "Ada L".into(),
            account_enabled: false,
            mail: None,
            properties,
        });
        assert_eq!(body["userPrincipalName"], "ada@contoso.com");
        assert_eq!(body["employeeId"], "1001");
        assert_eq!(body["accountEnabled"], false);
        assert_eq!(
            body["passwordProfile"]["forceChangePasswordNextSignIn"],
            true
        );
        assert!(
            body["passwordProfile"]["password"]
                .as_str()
                .is_some_and(|p| p.len() >= 24)
        );
        assert!(body.get("mail").is_none());
        let password = body["passwordProfile"]["password"]
            .as_str()
            .expect("password");
        let request = GraphRequest::with_json(Method::POST, "/users", body.clone());
        assert!(!format!("{request:?}").contains(password));
    }

    #[test]
    fn users_decode_with_other_properties() {
        let user = DirectoryUser::from_json(&json!({
            "@odata.context": "x",
            "id": "u1",
            "userPrincipalName": "ada@contoso.com",
            "accountEnabled": true,
            "proxyAddresses": ["SMTP:ada@contoso.com"],
            "department": "R&D",
            "jobTitle": null
        }))
        .expect("user");
        assert_eq!(user.id, "u1");
        assert!(user.account_enabled);
        assert_eq!(user.proxy_addresses, vec!["SMTP:ada@contoso.com"]);
        assert_eq!(user.properties.len(), 2);
        assert_eq!(user.properties["jobTitle"], Value::Null);
        assert!(DirectoryUser::from_json(&json!({"id": "x"})).is_err());
    }

    #[test]
    fn deleted_users_match_exactly() {
        let name = "ada@contoso.com";
        let mangled = json!({"id": "0f6a6f2e-1111-2222-3333-444455556666",
            "userPrincipalName": "0f6a6f2e111122223333444455556666ada@contoso.com"});
        assert!(deleted_user_holds(&mangled, name));
        let other = json!({"id": "0f6a6f2e-1111-2222-3333-444455556666",
            "userPrincipalName": "0f6a6f2e111122223333444455556666bada@contoso.com"});
        assert!(!deleted_user_holds(&other, name));
        let by_proxy = json!({"id": "z", "userPrincipalName": "zq@contoso.com",
            "proxyAddresses": ["SMTP:Ada@Contoso.com"]});
        assert!(deleted_user_holds(&by_proxy, name));
    }

    #[test]
    fn a_preflight_without_names_asks_only_for_the_employee_id() {
        let (live, deleted) = preflight_requests(Some("42"), &[]);
        assert!(live.is_some_and(|r| r.url.contains("employeeId%20eq%20%2742%27")));
        assert!(deleted.is_none());
        assert_eq!(preflight_requests(None, &[]), (None, None));
    }

    #[test]
    fn filters_quote_every_value() {
        let r = find_by_employee_id_request("x' or 1 eq 1 or employeeId eq 'y");
        assert!(r.url.starts_with(
            "/users?$filter=employeeId%20eq%20%27x%27%27%20or%201%20eq%201%20or%20employeeId%20eq%20%27%27y%27&$select=id,"
        ));
        let (live, deleted) =
            preflight_requests(Some("x'1"), &["o'hara@contoso.com", "b@contoso.com"]);
        let (live, deleted) = (live.expect("live"), deleted.expect("deleted"));
        assert!(live.url.contains("%27o%27%27hara@contoso.com%27"));
        assert!(live.url.contains("employeeId%20eq%20%27x%27%271%27"));
        assert!(live.url.contains("%27b@contoso.com%27"));
        assert!(
            deleted
                .url
                .contains("endsWith(userPrincipalName,%27b@contoso.com%27)")
        );
        assert!(
            deleted
                .url
                .contains("endsWith(userPrincipalName,%27o%27%27hara@contoso.com%27)")
        );
        assert!(deleted.url.contains("$count=true"));
        assert!(
            deleted
                .headers
                .contains(&("ConsistencyLevel".to_owned(), "eventual".to_owned()))
        );
    }
}
