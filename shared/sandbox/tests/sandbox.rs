//! The sandbox over HTTP, the way the Graph client and the local runtime use it.

use std::time::Duration;

use hrsync_sandbox::{
    Faults, RunningSandbox, Sandbox, SandboxConfig, SeedGroup, SeedSku, WriteLimit,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const TENANT: &str = "contoso-tenant";
const SKU_E3: &str = "05e9a617-0261-4cee-bb44-138d3ef5d965";
const SKU_E5: &str = "06ebc4ee-1bb5-47dd-8120-11324bc54e06";
const STAFF: &str = "8c3f9f5e-1b7a-4d7e-9a55-3f1f4a0c2b11";
const LEADS: &str = "0b9e2d51-6a1c-4c1e-8f5e-2d3c4b5a6978";

fn group(id: &str, name: &str) -> SeedGroup {
    SeedGroup {
        id: id.to_owned(),
        display_name: name.to_owned(),
        licenses: Vec::new(),
    }
}

fn sku(id: &str, part: &str, units: u32) -> SeedSku {
    SeedSku {
        id: id.to_owned(),
        part_number: part.to_owned(),
        units,
    }
}

/// A sandbox with the groups the scenarios use (`STAFF`, `LEADS`) and an E3 SKU.
fn seeded() -> SandboxConfig {
    SandboxConfig {
        groups: vec![group(STAFF, "Staff"), group(LEADS, "Leads")],
        skus: vec![sku(SKU_E3, "ENTERPRISEPACK", 100)],
        ..SandboxConfig::default()
    }
}

struct Env {
    sandbox: RunningSandbox,
    http: reqwest::Client,
    token: String,
}

async fn token(http: &reqwest::Client, sandbox: &RunningSandbox) -> String {
    let response = http
        .post(sandbox.token_url(TENANT))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "11111111-2222-3333-4444-555555555555"),
            ("scope", "https://graph.microsoft.com/.default"),
            ("client_secret", "anything goes"),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("token json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

async fn start(config: SandboxConfig) -> Env {
    let sandbox = Sandbox::start(config).await.expect("sandbox starts");
    let http = reqwest::Client::new();
    let token = token(&http, &sandbox).await;
    Env {
        sandbox,
        http,
        token,
    }
}

async fn start_default() -> Env {
    start(SandboxConfig::default()).await
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("json body")
    };
    (status, body)
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!(
            "{}/{}",
            self.sandbox.graph_url(),
            path.trim_start_matches('/')
        )
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.expect("request")).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// GET with a `$filter` (query-encoded by reqwest).
    async fn filter(&self, path: &str, filter: &str) -> (StatusCode, Value) {
        let url = format!(
            "{}?$filter={}&$select=id,employeeId,userPrincipalName",
            self.url(path),
            encode(filter)
        );
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        read(response).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// Creates a user and returns its id.
    async fn create(&self, upn: &str, employee_id: &str) -> String {
        let (status, body) = self.post("users", new_user(upn, employee_id)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }
}

/// Query-component percent-encoding (everything but unreserved characters).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn new_user(upn: &str, employee_id: &str) -> Value {
    let alias = upn.split('@').next().unwrap_or_default();
    json!({
        "accountEnabled": true,
        "displayName": alias,
        "mailNickname": alias.replace('\'', ""),
        "userPrincipalName": upn,
        "employeeId": employee_id,
        "passwordProfile": {"password": "Correct-Horse-9", "forceChangePasswordNextSignIn": true},
    })
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn error_message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

fn ids(body: &Value) -> Vec<String> {
    body["value"]
        .as_array()
        .map(|users| {
            users
                .iter()
                .filter_map(|u| u["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn token_then_create_user_201() {
    let env = start_default().await;
    assert_eq!(env.sandbox.sandbox.tokens_issued(), 1);
    let mut body = new_user("ada.lovelace@acme.example", "1001");
    body["mail"] = json!("Ada.Lovelace@acme.example");
    body["department"] = json!("Engineering");
    body["employeeHireDate"] = json!("2024-03-01T08:00:00Z");
    body["employeeOrgData"] = json!({"division": "R&D", "costCenter": "CC-1"});
    body["onPremisesExtensionAttributes"] = json!({"extensionAttribute1": "hrsync"});
    let (status, user) = env.post("users", body).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let id = user["id"].as_str().expect("id");
    assert_eq!(id.len(), 36);
    assert!(
        user.get("passwordProfile").is_none(),
        "the password is never returned"
    );
    assert!(
        user["@odata.context"]
            .as_str()
            .is_some_and(|c| c.ends_with("$metadata#users/$entity"))
    );
    // Graph answers a create with the default property set (learn.microsoft.com/graph/api/user-post-users).
    let mut keys: Vec<&str> = user
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .filter(|k| !k.starts_with('@'))
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "businessPhones",
            "displayName",
            "givenName",
            "id",
            "jobTitle",
            "mail",
            "mobilePhone",
            "officeLocation",
            "preferredLanguage",
            "surname",
            "userPrincipalName"
        ]
    );
    let (_, stored) = env
        .get(&format!(
            "users/{id}?$select=employeeId,department,employeeOrgData,proxyAddresses"
        ))
        .await;
    assert_eq!(stored["employeeId"], "1001");
    assert_eq!(stored["department"], "Engineering");
    assert_eq!(stored["employeeOrgData"]["costCenter"], "CC-1");
    assert_eq!(
        stored["proxyAddresses"],
        json!(["SMTP:Ada.Lovelace@acme.example"])
    );

    let (status, read) = env
        .get(&format!("users/{id}?$select=employeeId,department"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["id"], id);
    assert_eq!(read["employeeId"], "1001");
    assert!(
        read.get("displayName").is_none(),
        "only $select-ed properties (and id) come back"
    );

    let (status, by_upn) = env.get("users/ADA.LOVELACE@acme.example").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_upn["id"], id);
    assert_eq!(
        by_upn["businessPhones"],
        json!([]),
        "Graph's default property set"
    );
    assert!(
        by_upn.get("employeeId").is_none(),
        "employeeId is not in the default set"
    );
}

#[tokio::test]
async fn token_endpoint_speaks_the_identity_platform_shapes() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("starts");
    let http = reqwest::Client::new();
    let url = sandbox.token_url(TENANT);
    let scope = ("scope", "https://graph.microsoft.com/.default");
    let client = ("client_id", "app");

    let (status, body) = read(
        http.post(&url)
            .form(&[
                ("grant_type", "password"),
                client,
                scope,
                ("client_secret", "s"),
            ])
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("AADSTS70003:"))
    );
    assert_eq!(body["error_codes"], json!([70003]));

    let (status, body) = read(
        http.post(&url)
            .form(&[client, scope])
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("'grant_type'"))
    );

    let (status, body) = read(
        http.post(&url)
            .form(&[("grant_type", "client_credentials"), client, scope])
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("AADSTS7000218:"))
    );

    let assertion_type = (
        "client_assertion_type",
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    );
    let (status, body) = read(
        http.post(&url)
            .form(&[
                ("grant_type", "client_credentials"),
                client,
                scope,
                assertion_type,
                ("client_assertion", "nope"),
            ])
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // eyJhbGciOiJSUzI1NiJ9 = {"alg":"RS256"}, eyJzdWIiOiJ4In0 = {"sub":"x"}
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    let (status, body) = read(
        http.post(&url)
            .form(&[
                ("grant_type", "client_credentials"),
                client,
                scope,
                assertion_type,
                ("client_assertion", jwt),
            ])
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        sandbox.sandbox.tokens_issued(),
        1,
        "only successful requests issue tokens"
    );
}

#[tokio::test]
async fn requests_without_a_token_it_issued_get_401() {
    let env = start_default().await;
    let (status, body) = read(
        env.http
            .get(env.url("users"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "InvalidAuthenticationToken");
    assert!(body["error"]["innerError"]["request-id"].is_string());
    assert!(body["error"]["innerError"]["date"].is_string());

    let forged = format!("{}x", env.token);
    let (status, body) = read(
        env.http
            .get(env.url("users"))
            .bearer_auth(forged)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "InvalidAuthenticationToken");

    let (status, _) = env.get("users").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn duplicate_upn_mail_and_validation_errors() {
    let env = start_default().await;
    let mut first = new_user("grace@acme.example", "2001");
    first["mail"] = json!("grace.hopper@acme.example");
    assert_eq!(env.post("users", first).await.0, StatusCode::CREATED);

    let (status, body) = env
        .post("users", new_user("GRACE@acme.example", "2002"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "Request_BadRequest");
    assert_eq!(
        error_message(&body),
        "Another object with the same value for property userPrincipalName already exists."
    );
    assert_eq!(body["error"]["details"][0]["code"], "ObjectConflict");

    // A UPN equal to someone's mail (proxy address) is taken too.
    let (status, body) = env
        .post("users", new_user("grace.hopper@acme.example", "2003"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "Request_BadRequest");

    let (status, body) = env
        .post("users", new_user("alan@elsewhere.example", "2004"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("verified domain"), "{body}");

    let mut missing = new_user("alan@acme.example", "2005");
    missing
        .as_object_mut()
        .expect("object")
        .remove("mailNickname");
    let (status, body) = env.post("users", missing).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "Request_BadRequest");
    assert!(error_message(&body).contains("mailNickname"), "{body}");

    let mut no_password = new_user("alan@acme.example", "2005");
    no_password["passwordProfile"] = json!({"forceChangePasswordNextSignIn": true});
    let (status, body) = env.post("users", no_password).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_message(&body).contains("passwordProfile.password"),
        "{body}"
    );

    let mut too_long = new_user("alan@acme.example", "12345678901234567");
    too_long["employeeId"] = json!("12345678901234567");
    let (status, body) = env.post("users", too_long).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("'employeeId'"), "{body}");

    let mut typo = new_user("alan@acme.example", "2005");
    typo["departmnet"] = json!("Ops");
    let (status, body) = env.post("users", typo).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("'departmnet'"), "{body}");

    assert_eq!(
        env.sandbox.sandbox.users().len(),
        1,
        "no failed create left anything behind"
    );
}

#[tokio::test]
async fn patch_updates_clears_and_rechecks_uniqueness() {
    let env = start_default().await;
    let a = env.create("a@acme.example", "3001").await;
    env.create("b@acme.example", "3002").await;

    let (status, _) = env
        .patch(
            &format!("users/{a}"),
            json!({"jobTitle": "Engineer", "usageLocation": "gb"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, user) = env
        .get(&format!("users/{a}?$select=jobTitle,usageLocation"))
        .await;
    assert_eq!(user["jobTitle"], "Engineer");
    assert_eq!(user["usageLocation"], "GB");

    let (status, _) = env
        .patch(&format!("users/{a}"), json!({"jobTitle": null}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, user) = env.get(&format!("users/{a}?$select=jobTitle")).await;
    assert_eq!(user["jobTitle"], Value::Null);

    let (status, body) = env
        .patch(
            &format!("users/{a}"),
            json!({"userPrincipalName": "B@acme.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_message(&body),
        "Another object with the same value for property userPrincipalName already exists."
    );

    let (status, _) = env
        .patch(&format!("users/{a}"), json!({"mail": "a.new@acme.example"}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, user) = env
        .get(&format!("users/{a}?$select=mail,proxyAddresses"))
        .await;
    assert_eq!(user["proxyAddresses"], json!(["SMTP:a.new@acme.example"]));

    let (status, body) = env
        .patch(
            "users/00000000-0000-0000-0000-000000000000",
            json!({"jobTitle": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "Request_ResourceNotFound");
    assert_eq!(
        error_message(&body),
        "Resource '00000000-0000-0000-0000-000000000000' does not exist or one of its queried reference-property objects are not present."
    );

    let (status, body) = env
        .post(&format!("users/{a}/revokeSignInSessions"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], true);
    let (_, user) = env
        .get(&format!(
            "users/{a}?$select=signInSessionsValidFromDateTime"
        ))
        .await;
    assert!(user["signInSessionsValidFromDateTime"].is_string());
}

#[tokio::test]
async fn manager_references() {
    let env = start_default().await;
    let boss = env.create("boss@acme.example", "4001").await;
    let worker = env.create("worker@acme.example", "4002").await;

    let (status, body) = env.get(&format!("users/{worker}/manager")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "Request_ResourceNotFound");

    let reference = json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/users/{boss}")});
    let (status, _) = env
        .put(&format!("users/{worker}/manager/$ref"), reference)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, manager) = env
        .get(&format!(
            "users/{worker}/manager?$select=id,userPrincipalName"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(manager["id"], boss.as_str());
    assert_eq!(env.sandbox.sandbox.manager_of(&worker), Some(boss.clone()));

    let ghost = json!({"@odata.id": "https://graph.microsoft.com/v1.0/users/00000000-0000-0000-0000-000000000001"});
    let (status, body) = env
        .put(&format!("users/{worker}/manager/$ref"), ghost)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "Request_ResourceNotFound");

    assert_eq!(
        env.delete(&format!("users/{worker}/manager/$ref")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        env.delete(&format!("users/{worker}/manager/$ref")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn licenses_need_a_usage_location_and_a_known_sku() {
    let env = start(SandboxConfig {
        skus: vec![sku(SKU_E3, "ENTERPRISEPACK", 10)],
        ..SandboxConfig::default()
    })
    .await;
    let id = env.create("lic@acme.example", "5001").await;
    let assign =
        json!({"addLicenses": [{"skuId": SKU_E3, "disabledPlans": []}], "removeLicenses": []});

    let (status, body) = env
        .post(&format!("users/{id}/assignLicense"), assign.clone())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "Request_BadRequest");
    assert_eq!(
        error_message(&body),
        "License assignment cannot be done for user with invalid usage location."
    );

    assert_eq!(
        env.patch(&format!("users/{id}"), json!({"usageLocation": "US"}))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (status, user) = env.post(&format!("users/{id}/assignLicense"), assign).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["id"], id.as_str());
    let (_, user) = env
        .get(&format!("users/{id}?$select=assignedLicenses"))
        .await;
    assert_eq!(user["assignedLicenses"][0]["skuId"], SKU_E3);

    let (status, details) = env.get(&format!("users/{id}/licenseDetails")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(details["value"][0]["skuPartNumber"], "ENTERPRISEPACK");

    let unknown = json!({"addLicenses": [{"skuId": "c42b9cae-ea4f-4ab7-9717-81576235ccac"}], "removeLicenses": []});
    let (status, body) = env
        .post(&format!("users/{id}/assignLicense"), unknown)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "Request_BadRequest");
    assert_eq!(
        error_message(&body),
        "License c42b9cae-ea4f-4ab7-9717-81576235ccac does not correspond to a valid company License."
    );

    let remove = json!({"addLicenses": [], "removeLicenses": [SKU_E3]});
    assert_eq!(
        env.post(&format!("users/{id}/assignLicense"), remove.clone())
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = env.post(&format!("users/{id}/assignLicense"), remove).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, details) = env.get(&format!("users/{id}/licenseDetails")).await;
    assert_eq!(details["value"], json!([]));
}

#[tokio::test]
async fn group_membership() {
    let group = "8c3f9f5e-1b7a-4d7e-9a55-3f1f4a0c2b11";
    let env = start(SandboxConfig {
        groups: vec![SeedGroup {
            id: group.to_owned(),
            display_name: "Engineering".to_owned(),
            licenses: Vec::new(),
        }],
        ..SandboxConfig::default()
    })
    .await;
    let id = env.create("member@acme.example", "6001").await;
    let other = env.create("other@acme.example", "6002").await;
    let reference =
        json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")});

    let (status, _) = env
        .post(&format!("groups/{group}/members/$ref"), reference.clone())
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = env
        .post(&format!("groups/{group}/members/$ref"), reference.clone())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "Request_BadRequest");
    assert_eq!(
        error_message(&body),
        "One or more added object references already exist for the following modified properties: 'members'."
    );
    assert_eq!(env.sandbox.sandbox.group_members(group), vec![id.clone()]);

    let (status, groups) = env.get(&format!("users/{id}/memberOf?$select=id")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&groups), vec![group.to_owned()]);

    let (status, body) = env
        .post(
            "groups/00000000-0000-0000-0000-00000000000a/members/$ref",
            reference,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "seeded groups: an unknown group is 404"
    );
    assert_eq!(error_code(&body), "Request_ResourceNotFound");

    let (status, body) = env
        .delete(&format!("groups/{group}/members/{other}/$ref"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "Request_ResourceNotFound");
    assert_eq!(
        env.delete(&format!("groups/{group}/members/{id}/$ref"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert!(env.sandbox.sandbox.group_members(group).is_empty());
}

/// Nothing creates a group: an unknown group is 404, as in Graph, seeded or not.
#[tokio::test]
async fn unknown_groups_are_404_even_with_no_groups_seeded() {
    let env = start_default().await;
    let id = env.create("auto@acme.example", "6101").await;
    let reference =
        json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")});
    let (status, body) = env.post(&format!("groups/{STAFF}/members/$ref"), reference).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "Request_ResourceNotFound");
    assert!(env.sandbox.sandbox.group_members(STAFF).is_empty());
    let (status, _) = env.get(&format!("groups/{STAFF}/members")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn filter_literals_are_data_not_syntax() {
    let env = start_default().await;
    let obrien = env.create("obrien@acme.example", "o'brien").await;
    env.create("obrian@acme.example", "obrien").await;
    env.create("y@acme.example", "y").await;

    let (status, body) = env.filter("users", "employeeId eq 'o''brien'").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), vec![obrien]);
    assert_eq!(body["value"][0]["employeeId"], "o'brien");
    assert!(body["value"][0].get("displayName").is_none());

    // What a client that quotes its literals (hrsync's odata::eq) sends for a hostile employee
    // id: `x' or employeeId ne 'y` with every quote doubled.
    let injected = "employeeId eq 'x'' or employeeId ne ''y'";
    let (status, body) = env.filter("users", injected).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], json!([]));

    for malformed in [
        "employeeId eq 'x",
        "employeeId eq",
        "employeeId = 'x'",
        "(employeeId eq 'x'",
        "employeeId eq 'x' garbage",
        "",
    ] {
        let (status, body) = env.filter("users", malformed).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{malformed:?} -> {body}");
        assert!(
            body.get("value").is_none(),
            "{malformed:?} must never list users"
        );
        assert!(
            matches!(error_code(&body), "BadRequest" | "Request_UnsupportedQuery"),
            "{malformed:?} -> {body}"
        );
    }

    let (status, body) = env
        .filter("users", "employeeId eq 'x' or employeeId ne 'y'")
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "ne needs an advanced query: {body}"
    );
    assert_eq!(error_code(&body), "Request_UnsupportedQuery");

    let (status, body) = env.filter("users", "favouriteColour eq 'red'").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("favouriteColour"), "{body}");
}

#[tokio::test]
async fn filter_by_mail_upn_and_proxy_addresses_ignores_case() {
    let env = start_default().await;
    let mut body = new_user("mixed.case@acme.example", "7001");
    body["mail"] = json!("Mixed.Case@Acme.example");
    let (_, created) = env.post("users", body).await;
    let id = created["id"].as_str().expect("id").to_owned();
    env.create("someone.else@acme.example", "7002").await;

    for filter in [
        "proxyAddresses/any(p:p eq 'smtp:mixed.case@acme.example')",
        "proxyAddresses/any(p:p eq 'SMTP:MIXED.CASE@ACME.EXAMPLE')",
        "mail eq 'mixed.case@acme.example'",
        "userPrincipalName eq 'MIXED.CASE@acme.example'",
        "startswith(userPrincipalName,'mixed.')",
        "(employeeId eq 'nope' or employeeId eq '7001') and accountEnabled eq true",
        "employeeId in ('7001','9999')",
    ] {
        let (status, body) = env.filter("users", filter).await;
        assert_eq!(status, StatusCode::OK, "{filter}: {body}");
        assert_eq!(ids(&body), vec![id.clone()], "{filter}");
    }
}

#[tokio::test]
async fn top_pages_with_next_links() {
    let env = start_default().await;
    for n in 0..5 {
        env.create(&format!("page{n}@acme.example"), &format!("80{n}"))
            .await;
    }
    let (status, page) = env.get("users?$top=2&$select=id").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&page).len(), 2);
    let mut seen = ids(&page);
    let mut next = page["@odata.nextLink"].as_str().map(str::to_owned);
    while let Some(link) = next {
        let (status, page) = read(
            env.http
                .get(&link)
                .bearer_auth(&env.token)
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(ids(&page));
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(env.get("users?$top=0").await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn soft_deleted_users_keep_their_names_and_can_be_found_and_restored() {
    let env = start_default().await;
    let id = env.create("leaver@acme.example", "9001").await;
    assert_eq!(
        env.delete(&format!("users/{id}")).await.0,
        StatusCode::NO_CONTENT
    );

    assert_eq!(
        env.get(&format!("users/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, live) = env.filter("users", "employeeId eq '9001'").await;
    assert_eq!(live["value"], json!([]));

    let (status, deleted) = env
        .filter(
            "directory/deletedItems/microsoft.graph.user",
            "employeeId eq '9001'",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(ids(&deleted), vec![id.clone()]);
    let snapshot = env.sandbox.sandbox.users();
    assert!(snapshot[0]["deletedDateTime"].is_string());

    let (status, restored) = env
        .post(&format!("directory/deletedItems/{id}/restore"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(env.get(&format!("users/{id}")).await.0, StatusCode::OK);
    assert_eq!(restored["userPrincipalName"], "leaver@acme.example");
}

/// A soft-deleted user's UPN is free for a new account at once; restoring the old user then
/// conflicts unless it gets a new UPN (support.microsoft.com/kb/2619308;
/// learn.microsoft.com/graph/api/directory-deleteditems-restore: newUserPrincipalName).
#[tokio::test]
async fn a_soft_deleted_upn_is_free_and_restoring_over_it_conflicts() {
    let env = start_default().await;
    let old = env.create("reused@acme.example", "9101").await;
    assert_eq!(
        env.delete(&format!("users/{old}")).await.0,
        StatusCode::NO_CONTENT
    );
    let new = env.create("reused@acme.example", "9102").await;
    assert_ne!(old, new);

    let (status, body) = env
        .post(&format!("directory/deletedItems/{old}/restore"), json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        error_message(&body),
        "Another object with the same value for property userPrincipalName already exists."
    );
    assert_eq!(
        env.get(&format!("users/{old}")).await.0,
        StatusCode::NOT_FOUND,
        "a refused restore changes nothing"
    );

    let (status, restored) = env
        .post(
            &format!("directory/deletedItems/{old}/restore"),
            json!({"newUserPrincipalName": "reused.old@acme.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(restored["userPrincipalName"], "reused.old@acme.example");
    let (_, by_upn) = env.get("users/reused@acme.example").await;
    assert_eq!(by_upn["id"], new.as_str());
}

#[tokio::test]
async fn batch_depends_on_failure_is_424_and_inner_requests_are_logged() {
    let env = start_default().await;
    env.sandbox.sandbox.clear_requests();
    let batch = json!({"requests": [
        {"id": "1", "method": "POST", "url": "/users", "headers": {"Content-Type": "application/json"},
         "body": {"displayName": "no upn"}},
        {"id": "2", "method": "GET", "url": "/users?$select=id", "dependsOn": ["1"]},
        {"id": "3", "method": "POST", "url": "/users", "headers": {"Content-Type": "application/json"},
         "body": new_user("batched@acme.example", "1201")},
    ]});
    let (status, body) = env.post("$batch", batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let responses = body["responses"].as_array().expect("responses");
    let status_of = |id: &str| {
        responses
            .iter()
            .find(|r| r["id"] == id)
            .and_then(|r| r["status"].as_u64())
            .expect("response")
    };
    assert_eq!(status_of("1"), 400);
    assert_eq!(status_of("2"), 424);
    assert_eq!(status_of("3"), 201);
    assert_eq!(responses[0]["body"]["error"]["code"], "Request_BadRequest");
    assert_eq!(
        responses[2]["body"]["userPrincipalName"],
        "batched@acme.example"
    );

    let log = env.sandbox.sandbox.requests();
    let inner: Vec<_> = log.iter().filter(|r| r.in_batch).collect();
    assert_eq!(inner.len(), 3, "{log:#?}");
    assert_eq!(inner[0].path, "/v1.0/users");
    assert_eq!(inner[0].status, 400);
    assert_eq!(inner[1].status, 424);
    assert_eq!(inner[1].path_and_query(), "/v1.0/users?$select=id");
    let outer = log.last().expect("outer");
    assert!(!outer.in_batch);
    assert_eq!(outer.path, "/v1.0/$batch");
}

/// A write step without a body (or its Content-Type) refuses the whole batch before anything
/// runs, as Graph does (microsoftgraph/msgraph-sdk-dotnet#2628): the leaver's disable beside a
/// bodyless revokeSignInSessions never happens.
#[tokio::test]
async fn a_bodyless_write_step_refuses_the_whole_batch() {
    let env = start_default().await;
    let (_, created) = env
        .post("users", new_user("leaver@acme.example", "1301"))
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    env.sandbox.sandbox.clear_requests();
    let disable = json!({"id": "1", "method": "PATCH", "url": format!("/users/{id}"),
        "headers": {"Content-Type": "application/json"}, "body": {"accountEnabled": false}});
    for revoke in [
        json!({"id": "2", "method": "POST", "url": format!("/users/{id}/revokeSignInSessions"), "dependsOn": ["1"]}),
        json!({"id": "2", "method": "POST", "url": format!("/users/{id}/revokeSignInSessions"), "dependsOn": ["1"], "body": {}}),
    ] {
        let (status, body) = env
            .post("$batch", json!({"requests": [disable.clone(), revoke]}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            body["error"]["message"],
            "Write request id : 2 does not contain Content-Type header or body."
        );
    }
    assert!(
        env.sandbox.sandbox.requests().iter().all(|r| !r.in_batch),
        "nothing inside ran"
    );
    let enabled = env.sandbox.sandbox.users()[0]["accountEnabled"].clone();
    assert_eq!(enabled, json!(true));

    let revoke = json!({"id": "2", "method": "POST", "url": format!("/users/{id}/revokeSignInSessions"),
        "dependsOn": ["1"], "headers": {"Content-Type": "application/json"}, "body": {}});
    let (status, body) = env
        .post("$batch", json!({"requests": [disable, revoke]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["responses"][1]["status"], 200, "{body}");
    assert_eq!(
        env.sandbox.sandbox.users()[0]["accountEnabled"],
        json!(false)
    );
}

#[tokio::test]
async fn batch_of_21_is_rejected() {
    let env = start_default().await;
    let requests: Vec<Value> = (1..=21)
        .map(|n| json!({"id": n.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    let (status, body) = env.post("$batch", json!({"requests": requests})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "BadRequest");
    assert!(
        env.sandbox.sandbox.requests().iter().all(|r| !r.in_batch),
        "nothing inside ran"
    );

    let requests: Vec<Value> = (1..=20)
        .map(|n| json!({"id": n.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    assert_eq!(
        env.post("$batch", json!({"requests": requests})).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn throttling_answers_429_with_retry_after_and_changes_nothing() {
    let env = start_default().await;
    env.sandbox.sandbox.set_faults(Faults {
        throttle_rate: 1.0,
        retry_after_secs: 7,
        seed: 1,
        ..Faults::default()
    });
    for _ in 0..3 {
        let response = env
            .http
            .post(env.url("users"))
            .bearer_auth(&env.token)
            .json(&new_user("throttled@acme.example", "1301"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("7")
        );
        let (_, body) = read(response).await;
        assert_eq!(error_code(&body), "TooManyRequests");
    }
    assert!(env.sandbox.sandbox.users().is_empty());
    assert!(
        env.sandbox
            .sandbox
            .requests()
            .iter()
            .filter(|r| r.path == "/v1.0/users")
            .all(|r| r.faulted)
    );

    // The token endpoint is never faulted.
    token(&env.http, &env.sandbox).await;

    let batch = json!({"requests": [{"id": "a", "method": "GET", "url": "/users"}]});
    let (status, body) = env.post("$batch", batch).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the batch itself is a request too"
    );
    assert_eq!(error_code(&body), "TooManyRequests");
}

#[tokio::test]
async fn inner_batch_faults_are_independent() {
    let env = start_default().await;
    // With a 50% rate and a fixed seed, some of 20 inner requests are throttled and some not,
    // and the outer batch (drawn first) is retried until it gets through.
    env.sandbox.sandbox.set_faults(Faults {
        throttle_rate: 0.5,
        retry_after_secs: 2,
        seed: 42,
        ..Faults::default()
    });
    let requests: Vec<Value> = (1..=20)
        .map(|n| json!({"id": n.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    let mut body = Value::Null;
    for _ in 0..20 {
        let (status, b) = env.post("$batch", json!({"requests": requests})).await;
        if status == StatusCode::OK {
            body = b;
            break;
        }
    }
    let responses = body["responses"].as_array().expect("a batch got through");
    let throttled: Vec<_> = responses.iter().filter(|r| r["status"] == 429).collect();
    assert!(!throttled.is_empty() && throttled.len() < 20, "{body}");
    assert!(throttled.iter().all(|r| r["headers"]["Retry-After"] == "2"));
}

#[tokio::test]
async fn server_errors_are_503_or_504() {
    let env = start_default().await;
    env.sandbox.sandbox.set_faults(Faults {
        error_rate: 1.0,
        seed: 3,
        ..Faults::default()
    });
    for _ in 0..10 {
        let (status, body) = env
            .post("users", new_user("flaky@acme.example", "1401"))
            .await;
        assert!(matches!(status.as_u16(), 503 | 504), "{status}");
        assert!(matches!(
            error_code(&body),
            "ServiceUnavailable" | "GatewayTimeout"
        ));
    }
    assert!(env.sandbox.sandbox.users().is_empty());
}

#[tokio::test]
async fn replication_lag_hides_new_users_from_references_until_it_passes() {
    let env = start(seeded()).await;
    let worker = env.create("report@acme.example", "1501").await;
    env.sandbox.sandbox.set_faults(Faults {
        replication_lag: Duration::from_millis(200),
        ..Faults::default()
    });
    let boss = env.create("newboss@acme.example", "1502").await;

    assert_eq!(
        env.get(&format!("users/{boss}")).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, found) = env.filter("users", "employeeId eq '1502'").await;
    assert_eq!(found["value"], json!([]));
    let reference = json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/users/{boss}")});
    let (status, body) = env
        .put(&format!("users/{worker}/manager/$ref"), reference.clone())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "Request_ResourceNotFound");
    let member =
        json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{boss}")});
    let (status, body) = env.post(&format!("groups/{LEADS}/members/$ref"), member).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "Request_BadRequest");
    // Uniqueness sees the lagging user: a retried create does not make a twin.
    assert_eq!(
        env.post("users", new_user("newboss@acme.example", "1502"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );

    tokio::time::sleep(Duration::from_millis(250)).await;
    let (status, _) = env
        .put(&format!("users/{worker}/manager/$ref"), reference)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(env.get(&format!("users/{boss}")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("directory.json");
    let config = || SandboxConfig {
        data: Some(data.clone()),
        ..seeded()
    };

    let env = start(config()).await;
    let id = env.create("durable@acme.example", "1601").await;
    let reference =
        json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")});
    assert_eq!(
        env.post(&format!("groups/{STAFF}/members/$ref"), reference)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let old_token = env.token.clone();
    env.sandbox.stop().await.expect("stops");


    let restarted = Sandbox::start(config()).await.expect("restarts");
    assert_eq!(restarted.sandbox.users().len(), 1);
    assert_eq!(restarted.sandbox.group_members(STAFF), vec![id.clone()]);
    let env = Env {
        sandbox: restarted,
        http: reqwest::Client::new(),
        token: old_token,
    };
    let (status, user) = env.get(&format!("users/{id}?$select=employeeId")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a token issued before the restart is still valid: {user}"
    );
    assert_eq!(user["employeeId"], "1601");
    assert!(
        env.sandbox
            .sandbox
            .requests()
            .iter()
            .all(|r| r.path != "/v1.0/users" || r.method != "POST"),
        "the request log is not persisted"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_graph_errors() {
    let env = start_default().await;
    let (status, body) = env.get("me/drive").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "BadRequest");
    let (status, _) = env.put("users", json!({})).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, body) = env.get("users?$orderby=displayName").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("$orderby"));
}

#[tokio::test]
async fn advanced_queries_need_consistency_level_and_count() {
    let env = start_default().await;
    let a = env.create("adv.a@acme.example", "1701").await;
    env.create("adv.b@acme.example", "1702").await;
    let filter = encode("employeeId ne '1702'");
    let url = env.url(&format!("users?$filter={filter}&$count=true&$select=id"));

    let (status, body) = read(
        env.http
            .get(&url)
            .bearer_auth(&env.token)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "Request_UnsupportedQuery");

    let response = env
        .http
        .get(&url)
        .bearer_auth(&env.token)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .expect("request");
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), vec![a]);
    assert_eq!(body["@odata.count"], 1);
}
