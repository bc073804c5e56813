//! The Graph client against the Entra-compatible sandbox: the two halves of `hrsync-directory`
//! talking over HTTP exactly as the client talks to Microsoft Graph (token endpoint included).
//!
//! Each test starts its own sandbox on `127.0.0.1:0`; the client's `graph_endpoint` and
//! `authority_host` are both the sandbox url, tenant `contoso`. Retry delays are tiny so the fault
//! test stays fast, and the sandbox answers `Retry-After: 0`.

use std::collections::BTreeMap;
use std::time::Duration;

use hrsync_directory::graph::{
    Credential, DirectoryUser, GraphClient, GraphError, GraphRequest, GraphResponse, GraphSettings,
    Method, NewUser, RetryPolicy, requests, users,
};
use hrsync_sandbox::{
    Faults, LoggedRequest, RunningSandbox, Sandbox, SandboxConfig, SeedGroup, SeedSku,
};
use serde_json::{Value, json};

const TENANT: &str = "contoso";
const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const SKU_E3: &str = "05e9a617-0261-4cee-bb44-138d3ef5d965";
const GROUP: &str = "7f1c4b1e-0c2a-4a55-9d0e-5b1b0f7c9a01";
const CERT: &str = include_str!("fixtures/graph_test_cert.pem");
const KEY: &str = include_str!("fixtures/graph_test_key.pem");

// ---------------------------------------------------------------------------------------------
// Set-up

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
        lag_attempts: 10,
        lag_delay: Duration::from_millis(50),
    }
}

fn client_for(sandbox: &RunningSandbox, credential: Credential) -> GraphClient {
    GraphClient::new(
        GraphSettings {
            tenant_id: TENANT.into(),
            client_id: CLIENT_ID.into(),
            credential,
            graph_endpoint: sandbox.url.clone(),
            authority_host: sandbox.url.clone(),
            retry: fast_retry(),
            write_limit: None,
            max_in_flight: 16,
        },
        reqwest::Client::new(),
    )
}

async fn start_with(faults: Faults) -> (RunningSandbox, GraphClient) {
    let sandbox = Sandbox::start(SandboxConfig { faults, ..seeded() })
        .await
        .expect("sandbox starts");
    let client = client_for(&sandbox, Credential::ClientSecret("s3cret".into()));
    (sandbox, client)
}

/// The group and SKU the scenarios use exist, as in a real tenant.
fn seeded() -> SandboxConfig {
    SandboxConfig {
        groups: vec![SeedGroup {
            id: GROUP.to_owned(),
            display_name: "Engineering".to_owned(),
            licenses: Vec::new(),
        }],
        skus: vec![SeedSku {
            id: SKU_E3.to_owned(),
            part_number: "ENTERPRISEPACK".to_owned(),
            units: 1000,
        }],
        ..SandboxConfig::default()
    }
}

async fn start() -> (RunningSandbox, GraphClient) {
    start_with(Faults::default()).await
}

fn new_user(upn: &str, mail: Option<&str>, employee_id: &str) -> NewUser {
    let alias = upn.split('@').next().unwrap_or_default();
    let mut properties = BTreeMap::new();
    properties.insert("employeeId".to_owned(), json!(employee_id));
    properties.insert("department".to_owned(), json!("Engineering"));
    NewUser {
        user_principal_name: upn.to_owned(),
        mail_nickname: alias.replace('\'', ""),
        display_name: format!("User {employee_id}"),
        account_enabled: true,
        mail: mail.map(str::to_owned),
        properties,
    }
}

async fn create(client: &GraphClient, upn: &str, employee_id: &str) -> DirectoryUser {
    client
        .create_user(&new_user(upn, Some(upn), employee_id))
        .await
        .unwrap_or_else(|e| panic!("create {upn}: {e}"))
}

async fn send(client: &GraphClient, request: &GraphRequest) -> GraphResponse {
    client
        .send(request)
        .await
        .unwrap_or_else(|e| panic!("{} {}: {e}", request.method, request.url))
}

/// One request sent alone inside a `$batch`, to see its response whatever its status.
async fn outcome(client: &GraphClient, request: GraphRequest) -> GraphResponse {
    let mut responses = client.batch(vec![request]).await.expect("batch call");
    assert_eq!(responses.len(), 1);
    responses.remove(0)
}

async fn in_use(client: &GraphClient, name: &str) -> bool {
    client
        .name_in_use(name)
        .await
        .unwrap_or_else(|e| panic!("name_in_use({name}): {e}"))
}

fn sandbox_user(sandbox: &Sandbox, id: &str) -> Value {
    sandbox
        .users()
        .into_iter()
        .find(|u| u["id"] == id)
        .unwrap_or_else(|| panic!("no user {id} in the sandbox"))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn graph_log(sandbox: &Sandbox) -> Vec<LoggedRequest> {
    sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1.0/"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Create, find, get

#[tokio::test]
async fn created_user_is_found_by_employee_id_and_by_id() {
    let (sandbox, client) = start().await;
    let created = client
        .create_user(&new_user(
            "ada.lovelace@acme.example",
            Some("Ada.Lovelace@acme.example"),
            "1001",
        ))
        .await
        .expect("create");
    assert_eq!(created.id.len(), 36, "{created:?}");
    assert_eq!(created.user_principal_name, "ada.lovelace@acme.example");
    assert_eq!(created.mail.as_deref(), Some("Ada.Lovelace@acme.example"));
    assert!(created.account_enabled);
    assert_eq!(created.employee_id.as_deref(), Some("1001"));

    let found = client
        .find_user_by_employee_id("1001")
        .await
        .expect("find")
        .expect("the user is found");
    assert_eq!(found.id, created.id);
    assert_eq!(found.user_principal_name, "ada.lovelace@acme.example");
    assert_eq!(found.mail.as_deref(), Some("Ada.Lovelace@acme.example"));
    assert!(found.account_enabled);
    assert_eq!(found.employee_id.as_deref(), Some("1001"));
    assert_eq!(found.display_name.as_deref(), Some("User 1001"));
    assert_eq!(
        found.proxy_addresses,
        vec!["SMTP:Ada.Lovelace@acme.example"]
    );
    assert_eq!(
        found.properties.get("department"),
        Some(&json!("Engineering"))
    );

    let got = client
        .get_user(&created.id)
        .await
        .expect("get")
        .expect("the user exists");
    assert_eq!(got, found);
    // By UPN too, as Graph allows.
    let by_upn = client
        .get_user("ADA.LOVELACE@acme.example")
        .await
        .expect("get by upn")
        .expect("the user exists");
    assert_eq!(by_upn.id, created.id);

    assert_eq!(
        client.find_user_by_employee_id("9999").await.expect("find"),
        None
    );
    assert_eq!(
        client
            .get_user("00000000-0000-0000-0000-000000000000")
            .await
            .expect("get"),
        None
    );

    // employeeId is not unique in Entra: two holders is an ambiguity, not a silent pick.
    create(&client, "twin@acme.example", "1001").await;
    assert_eq!(
        client.find_user_by_employee_id("1001").await,
        Err(GraphError::AmbiguousEmployeeId { matches: 2 })
    );
    assert!(
        graph_log(&sandbox.sandbox)
            .iter()
            .all(|r| r.status < 400 || r.status == 404),
        "{:#?}",
        sandbox.sandbox.requests()
    );
}

// ---------------------------------------------------------------------------------------------
// 2. name_in_use

#[tokio::test]
async fn name_in_use_sees_upn_mail_aliases_and_soft_deleted_users() {
    let (sandbox, client) = start().await;

    // A live user whose old mail stays as an `smtp:` alias after the mail changes.
    let grace = client
        .create_user(&new_user(
            "grace.hopper@acme.example",
            Some("grace@acme.example"),
            "2001",
        ))
        .await
        .expect("create");
    let mut change = BTreeMap::new();
    change.insert("mail".to_owned(), json!("g.hopper@acme.example"));
    send(&client, &requests::update_user(&grace.id, &change)).await;
    let grace_now = client
        .get_user(&grace.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        grace_now.proxy_addresses,
        vec!["SMTP:g.hopper@acme.example", "smtp:grace@acme.example"]
    );

    assert!(in_use(&client, "grace.hopper@acme.example").await);
    assert!(in_use(&client, "Grace.Hopper@ACME.example").await);
    assert!(in_use(&client, "g.hopper@acme.example").await);
    assert!(in_use(&client, "grace@acme.example").await);
    assert!(in_use(&client, "GRACE@Acme.Example").await);

    // The primary is `SMTP:`; the client asks for `smtp:` — Graph compares case-insensitively.
    let by_proxy = send(
        &client,
        &GraphRequest::get(requests::with_query(
            "/users",
            &[
                (
                    "$filter",
                    "proxyAddresses/any(p:p eq 'smtp:G.Hopper@acme.example')",
                ),
                ("$select", "id"),
            ],
        )),
    )
    .await;
    assert_eq!(
        by_proxy.body.as_ref().expect("body")["value"],
        json!([{"id": grace.id}])
    );

    // A soft-deleted user keeps its names (it can be restored), under a mangled UPN.
    let leaver = client
        .create_user(&new_user(
            "leaver@acme.example",
            Some("leaver.mail@acme.example"),
            "2002",
        ))
        .await
        .expect("create");
    send(&client, &requests::delete_user(&leaver.id)).await;
    let deleted = sandbox_user(&sandbox.sandbox, &leaver.id);
    assert!(deleted["deletedDateTime"].is_string());
    assert_eq!(
        deleted["userPrincipalName"],
        format!("{}leaver@acme.example", leaver.id.replace('-', "")),
        "Entra prefixes a deleted user's UPN with its object id (no hyphens)"
    );
    assert_eq!(client.get_user(&leaver.id).await.expect("get"), None);
    assert!(in_use(&client, "leaver@acme.example").await);
    assert!(in_use(&client, "LEAVER@acme.example").await);
    assert!(in_use(&client, "leaver.mail@acme.example").await);

    // `endsWith` also matches a longer local part; the client checks the match exactly.
    let bada = create(&client, "bada@acme.example", "2003").await;
    send(&client, &requests::delete_user(&bada.id)).await;
    assert!(!in_use(&client, "ada@acme.example").await);

    assert!(!in_use(&client, "nobody@acme.example").await);

    // A quote is data, not syntax: no 400, and no widening to other users.
    assert!(!in_use(&client, "o'neil@acme.example").await);
    create(&client, "o'neil@acme.example", "2004").await;
    assert!(in_use(&client, "o'neil@acme.example").await);
    assert!(!in_use(&client, "o'brien@acme.example").await);

    let log = graph_log(&sandbox.sandbox);
    let lookups: Vec<&LoggedRequest> = log
        .iter()
        .filter(|r| r.in_batch || r.path == "/v1.0/$batch")
        .collect();
    assert_eq!(lookups.len(), 3 * 13, "one $batch of two lookups per name");
    assert!(
        lookups.iter().all(|r| r.status == 200),
        "no lookup was refused: {lookups:#?}"
    );
    let deleted_queries: Vec<String> = log
        .iter()
        .filter(|r| r.in_batch && r.path == "/v1.0/directory/deletedItems/microsoft.graph.user")
        .map(|r| percent_decode(r.query.as_deref().unwrap_or_default()))
        .collect();
    assert!(
        deleted_queries.iter().any(|q| q
            .contains("endsWith(userPrincipalName,'o''neil@acme.example')")
            && q.contains("$count=true")),
        "{deleted_queries:#?}"
    );

    // Restoring gives the original UPN back.
    let restored = send(
        &client,
        &GraphRequest::new(
            Method::POST,
            format!("/directory/deletedItems/{}/restore", leaver.id),
        ),
    )
    .await;
    assert_eq!(restored.status, 200);
    let back = client
        .get_user(&leaver.id)
        .await
        .expect("get")
        .expect("restored");
    assert_eq!(back.user_principal_name, "leaver@acme.example");
    assert!(in_use(&client, "leaver@acme.example").await);
}

// ---------------------------------------------------------------------------------------------
// 3. OData injection

#[tokio::test]
async fn an_employee_id_cannot_widen_the_filter() {
    let (sandbox, client) = start().await;
    create(&client, "one@acme.example", "1001").await;
    create(&client, "why@acme.example", "y").await;
    sandbox.sandbox.clear_requests();

    let injected = "x' or employeeId ne 'y";
    assert_eq!(
        client
            .find_user_by_employee_id(injected)
            .await
            .expect("find"),
        None
    );
    let log = graph_log(&sandbox.sandbox);
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].path, "/v1.0/users");
    assert_eq!(log[0].status, 200);
    let query = log[0].query.as_deref().expect("query");
    assert!(
        !query.contains('\''),
        "quotes travel percent-encoded: {query}"
    );
    let decoded = percent_decode(query);
    assert!(
        decoded.contains("$filter=employeeId eq 'x'' or employeeId ne ''y'&"),
        "{decoded}"
    );

    // employeeId is at most 16 characters in Entra, so that id cannot even be stored...
    let refused = client
        .create_user(&new_user("tricky@acme.example", None, injected))
        .await;
    assert!(
        matches!(refused, Err(GraphError::Graph { status: 400, .. })),
        "{refused:?}"
    );
    // ...but a short one with a quote round-trips exactly.
    let user = new_user("tricky@acme.example", None, "o'x");
    let tricky = client.create_user(&user).await.expect("create");
    let found = client
        .find_user_by_employee_id("o'x")
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found.id, tricky.id);
}

// ---------------------------------------------------------------------------------------------
// 4. Every request builder

#[tokio::test]
async fn every_request_builder_works_against_the_sandbox() {
    let (sandbox, client) = start().await;
    let sb = &sandbox.sandbox;
    let user = create(&client, "builder@acme.example", "4001").await;
    let boss = create(&client, "boss@acme.example", "4002").await;

    // update_user: set, then clear with null.
    let mut set = BTreeMap::new();
    set.insert("jobTitle".to_owned(), json!("Engineer"));
    set.insert("department".to_owned(), json!("Sales"));
    set.insert(
        "employeeOrgData".to_owned(),
        json!({"division": "EMEA", "costCenter": "CC-7"}),
    );
    let r = send(&client, &requests::update_user(&user.id, &set)).await;
    assert_eq!(r.status, 204);
    let read = client.get_user(&user.id).await.expect("get").expect("user");
    assert_eq!(read.properties["jobTitle"], "Engineer");
    assert_eq!(read.properties["department"], "Sales");
    assert_eq!(read.properties["employeeOrgData"]["costCenter"], "CC-7");
    let mut clear = BTreeMap::new();
    clear.insert("jobTitle".to_owned(), Value::Null);
    send(&client, &requests::update_user(&user.id, &clear)).await;
    let read = client.get_user(&user.id).await.expect("get").expect("user");
    assert_eq!(read.properties["jobTitle"], Value::Null);
    assert_eq!(read.properties["department"], "Sales");

    // Manager.
    let r = send(&client, &requests::set_manager(&user.id, &boss.id)).await;
    assert_eq!(r.status, 204);
    assert_eq!(sb.manager_of(&user.id), Some(boss.id.clone()));
    let r = send(&client, &requests::remove_manager(&user.id)).await;
    assert_eq!(r.status, 204);
    assert_eq!(sb.manager_of(&user.id), None);
    let r = send(&client, &requests::remove_manager(&user.id)).await;
    assert_eq!(
        r.status, 404,
        "no manager left: success by AlsoOk::NotFound"
    );
    assert!(r.is_success());

    // Membership, twice each way.
    let r = send(&client, &requests::add_member(GROUP, &user.id)).await;
    assert_eq!(r.status, 204);
    let again = send(&client, &requests::add_member(GROUP, &user.id)).await;
    assert_eq!(
        again.status, 400,
        "Graph answers 400 for an existing member"
    );
    assert!(again.is_success(), "...which AlsoOk::AlreadyExists accepts");
    assert_eq!(sb.group_members(GROUP), vec![user.id.clone()]);
    let r = send(&client, &requests::remove_member(GROUP, &user.id)).await;
    assert_eq!(r.status, 204);
    let again = send(&client, &requests::remove_member(GROUP, &user.id)).await;
    assert_eq!(again.status, 404);
    assert!(again.is_success());
    assert!(sb.group_members(GROUP).is_empty());

    // Licenses need a usage location first.
    let no_location = outcome(&client, requests::assign_licenses(&user.id, &[SKU_E3], &[])).await;
    assert_eq!(no_location.status, 400);
    assert!(!no_location.is_success());
    assert!(
        no_location
            .error_message()
            .is_some_and(|m| m.contains("invalid usage location")),
        "{no_location:?}"
    );
    let err = client
        .send(&requests::assign_licenses(&user.id, &[SKU_E3], &[]))
        .await
        .expect_err("refused");
    assert!(
        matches!(err, GraphError::Graph { status: 400, .. }) && !err.is_retryable(),
        "{err:?}"
    );
    let mut location = BTreeMap::new();
    location.insert("usageLocation".to_owned(), json!("NO"));
    send(&client, &requests::update_user(&user.id, &location)).await;
    let r = send(
        &client,
        &requests::assign_licenses(&user.id, &[SKU_E3], &[]),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        sandbox_user(sb, &user.id)["assignedLicenses"],
        json!([{"disabledPlans": [], "skuId": SKU_E3}])
    );
    let none: [&str; 0] = [];
    send(
        &client,
        &requests::assign_licenses(&user.id, &none, &[SKU_E3]),
    )
    .await;
    assert_eq!(sandbox_user(sb, &user.id)["assignedLicenses"], json!([]));

    // Disable, revoke sessions (a POST with no body), leave date.
    send(&client, &requests::set_enabled(&user.id, false)).await;
    let read = client.get_user(&user.id).await.expect("get").expect("user");
    assert!(!read.account_enabled);
    let revoked = send(&client, &requests::revoke_sessions(&user.id)).await;
    assert_eq!(revoked.status, 200);
    assert_eq!(revoked.body.as_ref().expect("body")["value"], true);
    assert!(sandbox_user(sb, &user.id)["signInSessionsValidFromDateTime"].is_string());
    let leave: jiff::Timestamp = "2026-03-31T17:00:00Z".parse().expect("timestamp");
    send(&client, &requests::set_leave_date(&user.id, leave)).await;
    assert_eq!(
        sandbox_user(sb, &user.id)["employeeLeaveDateTime"],
        "2026-03-31T17:00:00Z"
    );
    // ...and in a batch, where the bodiless POST has no Content-Type.
    let batched = outcome(&client, requests::revoke_sessions(&user.id)).await;
    assert_eq!(batched.status, 200, "{batched:?}");

    // Delete twice.
    let r = send(&client, &requests::delete_user(&user.id)).await;
    assert_eq!(r.status, 204);
    let again = send(&client, &requests::delete_user(&user.id)).await;
    assert_eq!(again.status, 404);
    assert!(again.is_success());
    assert_eq!(client.get_user(&user.id).await.expect("get"), None);
    assert!(sandbox_user(sb, &user.id)["deletedDateTime"].is_string());

    // Only the expected refusals happened (the 400s/404s above), never a 415 or a parse error.
    for r in graph_log(sb) {
        assert!(
            matches!(r.status, 200 | 201 | 204 | 400 | 404),
            "unexpected status: {r:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. $batch

#[tokio::test]
async fn a_batch_of_25_takes_two_calls_and_keeps_input_order() {
    let (sandbox, client) = start().await;
    let mut users = Vec::new();
    for n in 0..5 {
        users.push(
            create(
                &client,
                &format!("batch{n}@acme.example"),
                &format!("50{n}"),
            )
            .await,
        );
    }
    let mut batch = Vec::new();
    for (n, user) in users.iter().enumerate() {
        batch.push(GraphRequest::get(requests::with_query(
            &format!("/users/{}", user.id),
            &[("$select", "id,displayName,jobTitle")],
        )));
        let mut props = BTreeMap::new();
        props.insert("jobTitle".to_owned(), json!(format!("Title {n}")));
        batch.push(requests::update_user(&user.id, &props));
        batch.push(requests::add_member(GROUP, &user.id));
        batch.push(users::find_by_employee_id_request(&format!("50{n}")));
        batch.push(requests::set_manager(&user.id, &users[(n + 1) % 5].id));
    }
    assert_eq!(batch.len(), 25);
    let ids: Vec<String> = batch.iter().map(|r| r.id.clone()).collect();
    sandbox.sandbox.clear_requests();

    let responses = client.batch(batch).await.expect("batch");
    assert_eq!(responses.len(), 25);
    assert_eq!(
        responses.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        ids
    );
    for r in &responses {
        assert!(r.is_success(), "{r:?}");
    }
    for (n, user) in users.iter().enumerate() {
        let get = &responses[n * 5];
        assert_eq!(get.status, 200);
        assert_eq!(get.body.as_ref().expect("body")["id"], user.id);
        assert_eq!(responses[n * 5 + 1].status, 204);
        assert_eq!(responses[n * 5 + 2].status, 204);
        let found = &responses[n * 5 + 3].body.as_ref().expect("body")["value"];
        assert_eq!(found[0]["id"], user.id);
        assert_eq!(responses[n * 5 + 4].status, 204);
        assert_eq!(
            sandbox.sandbox.manager_of(&user.id),
            Some(users[(n + 1) % 5].id.clone())
        );
    }
    let mut members = sandbox.sandbox.group_members(GROUP);
    members.sort();
    let mut expected: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    expected.sort();
    assert_eq!(members, expected);

    let log = graph_log(&sandbox.sandbox);
    let outer: Vec<&LoggedRequest> = log
        .iter()
        .filter(|r| !r.in_batch && r.path == "/v1.0/$batch")
        .collect();
    assert_eq!(outer.len(), 2, "20 + 5: {log:#?}");
    assert!(outer.iter().all(|r| r.method == "POST" && r.status == 200));
    assert_eq!(log.iter().filter(|r| r.in_batch).count(), 25);
    assert_eq!(log.len(), 27, "nothing else was sent");
}

// ---------------------------------------------------------------------------------------------
// 6. Faults

#[tokio::test]
async fn throttling_outages_and_replication_lag_are_ridden_out() {
    let (sandbox, client) = start_with(Faults {
        throttle_rate: 0.3,
        error_rate: 0.1,
        retry_after_secs: 0,
        replication_lag: Duration::from_millis(300),
        seed: 7,
    })
    .await;
    let sb = &sandbox.sandbox;

    let boss = create(&client, "lag.boss@acme.example", "6001").await;
    let user = create(&client, "lag.user@acme.example", "6002").await;
    // Both are still replicating: the manager reference and the membership fail at first.
    send(&client, &requests::set_manager(&user.id, &boss.id)).await;
    send(&client, &requests::add_member(GROUP, &user.id)).await;

    // The same through $batch, with a third brand-new user.
    let third = create(&client, "lag.third@acme.example", "6003").await;
    let mut props = BTreeMap::new();
    props.insert("jobTitle".to_owned(), json!("Analyst"));
    let responses = client
        .batch(vec![
            requests::update_user(&third.id, &props),
            requests::set_manager(&third.id, &boss.id),
            requests::add_member(GROUP, &third.id),
        ])
        .await
        .expect("batch");
    for r in &responses {
        assert!(r.is_success(), "{r:?}");
    }

    assert_eq!(sb.manager_of(&user.id), Some(boss.id.clone()));
    assert_eq!(sb.manager_of(&third.id), Some(boss.id.clone()));
    assert_eq!(
        sb.group_members(GROUP),
        vec![user.id.clone(), third.id.clone()]
    );
    assert_eq!(sandbox_user(sb, &third.id)["jobTitle"], "Analyst");
    let live: Vec<Value> = sb
        .users()
        .into_iter()
        .filter(|u| u.get("deletedDateTime").is_none())
        .collect();
    assert_eq!(live.len(), 3, "retried creates made no duplicates");

    let log = graph_log(sb);
    let faulted = log.iter().filter(|r| r.faulted).count();
    let lagged = log
        .iter()
        .filter(|r| !r.faulted && matches!(r.status, 400 | 404))
        .count();
    assert!(faulted > 0, "{log:#?}");
    assert!(lagged > 0, "replication lag was exercised: {log:#?}");
}

// ---------------------------------------------------------------------------------------------
// 7. Token caching

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_token_serves_every_call() {
    let (sandbox, client) = start().await;
    let user = create(&client, "cached@acme.example", "7001").await;
    for _ in 0..20 {
        client.get_user(&user.id).await.expect("get").expect("user");
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let client = client.clone();
        tasks.spawn(async move { client.find_user_by_employee_id("7001").await });
    }
    while let Some(result) = tasks.join_next().await {
        assert!(result.expect("task").expect("find").is_some());
    }
    assert!(in_use(&client, "cached@acme.example").await);
    assert_eq!(sandbox.sandbox.tokens_issued(), 1);
    let token_calls: Vec<LoggedRequest> = sandbox
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path == format!("/{TENANT}/oauth2/v2.0/token"))
        .collect();
    assert_eq!(token_calls.len(), 1);
    assert_eq!(token_calls[0].status, 200);
}

// ---------------------------------------------------------------------------------------------
// 8. Certificate credential

#[tokio::test]
async fn a_certificate_credential_gets_a_token() {
    let sandbox = Sandbox::start(seeded()).await.expect("sandbox");
    let credential = Credential::Certificate {
        certificate_pem: CERT.into(),
        private_key_pem: KEY.into(),
    };
    credential.check().expect("usable credential");
    let client = client_for(&sandbox, credential);
    let user = create(&client, "cert@acme.example", "8001").await;
    assert!(client.get_user(&user.id).await.expect("get").is_some());
    assert_eq!(sandbox.sandbox.tokens_issued(), 1);
}

// ---------------------------------------------------------------------------------------------
// Write pacing

/// A client paced to the directory's write quota (Graph: 3,000 per 150 s per app and tenant)
/// waits before the quota is spent instead of earning 429s; unpaced, the same writes are
/// throttled (and then retried after `Retry-After`).
#[tokio::test]
async fn writes_paced_to_the_quota_are_never_throttled() {
    // A quota larger than a batch, as Graph's 3,000 is.
    let limit = hrsync_core::config::WriteLimit {
        writes: 10,
        window: Duration::from_secs(1),
    };
    let sandbox = Sandbox::start(SandboxConfig {
        write_limit: Some(hrsync_sandbox::WriteLimit {
            writes: limit.writes,
            window: limit.window,
        }),
        ..seeded()
    })
    .await
    .expect("sandbox starts");
    let unpaced = client_for(&sandbox, Credential::ClientSecret("s3cret".into()));
    let user = create(&unpaced, "paced@acme.example", "P1").await;
    let patches = |n: usize| {
        (0..n)
            .map(|i| {
                let mut properties = BTreeMap::new();
                properties.insert("jobTitle".to_owned(), json!(format!("Title {i}")));
                requests::update_user(&user.id, &properties).id(format!("p{i}"))
            })
            .collect::<Vec<_>>()
    };
    tokio::time::sleep(limit.window).await;
    for response in unpaced.batch(patches(16)).await.expect("batch") {
        assert!(response.is_success(), "{response:?}");
    }
    let throttled = sandbox.sandbox.stats().throttled;
    assert!(
        throttled > 0,
        "16 writes within a window of 10 are throttled"
    );

    let mut settings =
        GraphSettings::new(TENANT, CLIENT_ID, Credential::ClientSecret("s3cret".into()));
    settings.graph_endpoint = sandbox.url.clone();
    settings.authority_host = sandbox.url.clone();
    settings.retry = fast_retry();
    settings.write_limit = Some(limit);
    let paced = GraphClient::new(settings, reqwest::Client::new());
    tokio::time::sleep(limit.window).await;
    for request in patches(12) {
        send(&paced, &request).await;
    }
    for _ in 0..2 {
        for response in paced.batch(patches(8)).await.expect("batch") {
            assert!(response.is_success(), "{response:?}");
        }
    }
    assert_eq!(
        sandbox.sandbox.stats().throttled,
        throttled,
        "28 paced writes, none throttled"
    );
}
